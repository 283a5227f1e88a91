#!/usr/bin/env python3
"""The workshop MLP in the peers, measured the way bench/mlp.R measures rustkeras.

    python bench/peers.py [--epochs 5] [--threads 2] [--only keras-jax,keras-torch,torch]

Each peer runs in its own child process (so peak RSS, threads and imports are its own):
Keras 3 on JAX, Keras 3 on torch, and plain PyTorch (eager). Each prints one line

    PEER_RESULT {"peer": ..., "epoch_s": ..., ...}

(JSON after the prefix), which bench/mlp.R parses; everything else is commentary.

The model: 784 -> Dense 256 relu -> Dropout 0.4 -> Dense 128 relu -> Dropout 0.3 -> Dense 10
softmax, RMSprop (lr 1e-3, rho 0.9, eps 1e-7), categorical cross-entropy, accuracy, batch
128, validation_split 0.2 (the last 12000 of the 60000 training images, as Keras takes them),
shuffled each epoch, Fashion-MNIST from Debian's dataset-fashion-mnist.

What is timed (identical in mlp.R):
  epoch1_s   wall time of a first fit() call of 1 epoch (includes compile / warm-up).
  epoch_s    wall time of a second fit() call running epochs 2..E, divided by E-1 (each
             epoch trains on 48000 images and validates on 12000; the call's own data
             handling is included, amortised over its E-1 epochs).
  epoch_s_median_cb  (Keras and torch only) median of per-epoch times inside that call,
             from an epoch-begin/epoch-end callback: data handling excluded.
  predict_img_s  10000 test images / wall time of predict(x_test, batch_size=128), median
             of 3 runs after a warm-up predict of 256 images.
  test_acc   evaluate() on the 10000 test images after E epochs.
  peak_rss_mb  VmHWM of the child process at the end (/proc/self/status).
"""
import argparse, gzip, json, os, platform, struct, subprocess, sys, time

FMNIST = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
PEERS = ["keras-jax", "keras-torch", "torch"]


def load():
    import numpy as np

    def idx(name):
        with gzip.open(os.path.join(FMNIST, name), "rb") as f:
            data = f.read()
        ndim = struct.unpack(">I", data[:4])[0] & 0xFF
        dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

    xtr = idx("train-images-idx3-ubyte.gz").reshape(-1, 784).astype("float32") / 255
    xte = idx("t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype("float32") / 255
    return (xtr, idx("train-labels-idx1-ubyte.gz").astype("int64")), (xte, idx("t10k-labels-idx1-ubyte.gz").astype("int64"))


def vmhwm_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def blas_info():
    try:
        from threadpoolctl import threadpool_info
        return [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for d in threadpool_info()]
    except Exception as e:  # threadpoolctl missing
        return str(e)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def time_predict(fn, xte):
    fn(xte[:256])
    ts = []
    for _ in range(3):
        t = time.perf_counter(); fn(xte); ts.append(time.perf_counter() - t)
    return len(xte) / median(ts)


def run_keras(backend, epochs, threads):
    os.environ["KERAS_BACKEND"] = backend
    if backend == "torch":
        import torch
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    import keras
    import_s = time.perf_counter() - t0
    if backend == "torch":
        import torch
        torch.set_num_threads(threads)
        version = f"keras {keras.__version__}, torch {torch.__version__}"
    else:
        import jax
        version = f"keras {keras.__version__}, jax {jax.__version__} ({jax.devices()[0].platform})"
    keras.utils.set_random_seed(1)
    (xtr, ytr), (xte, yte) = load()
    ytr1 = keras.utils.to_categorical(ytr, 10); yte1 = keras.utils.to_categorical(yte, 10)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dropout(0.4),
                              keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.3),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(), metrics=["accuracy"])
    times = []

    class T(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
        def on_epoch_end(self, e, logs=None): times.append(time.perf_counter() - self.t)

    kw = dict(batch_size=128, validation_split=0.2, verbose=0, callbacks=[T()])
    t = time.perf_counter(); model.fit(xtr, ytr1, epochs=1, **kw); epoch1 = time.perf_counter() - t
    rest = None
    if epochs > 1:
        t = time.perf_counter(); h = model.fit(xtr, ytr1, epochs=epochs, initial_epoch=1, **kw)
        rest = (time.perf_counter() - t) / (epochs - 1)
        val_acc = h.history["val_accuracy"][-1]
    _, acc = model.evaluate(xte, yte1, batch_size=128, verbose=0)
    pred = time_predict(lambda x: model.predict(x, batch_size=128, verbose=0), xte)
    return dict(version=version, import_s=round(import_s, 2), epoch1_s=epoch1, epoch_s=rest,
                epoch_s_median_cb=median(times[1:]) if len(times) > 1 else None,
                epoch_times_cb=[round(x, 3) for x in times], test_acc=float(acc),
                val_acc=float(val_acc) if epochs > 1 else None, predict_img_s=pred)


def run_torch(epochs, threads):
    t0 = time.perf_counter()
    import torch, torch.nn as nn
    import_s = time.perf_counter() - t0
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    (xtr, ytr), (xte, yte) = load()
    xtr = torch.from_numpy(xtr); ytr = torch.from_numpy(ytr); xte = torch.from_numpy(xte); yte = torch.from_numpy(yte)
    xv, yv, xtr, ytr = xtr[48000:], ytr[48000:], xtr[:48000], ytr[:48000]
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.4), nn.Linear(256, 128), nn.ReLU(),
                          nn.Dropout(0.3), nn.Linear(128, 10))  # softmax folded into the loss
    # Keras's Dense init: glorot_uniform kernels, zero biases.
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    lossf = nn.CrossEntropyLoss()
    times = []
    n = len(xtr)

    def fit(e0, e1):
        va = None
        for _ in range(e0, e1):
            t = time.perf_counter(); model.train()
            perm = torch.randperm(n)
            loss_sum = torch.zeros(()); hit = torch.zeros((), dtype=torch.long)
            for i in range(0, n, 128):
                idx = perm[i:i + 128]
                xb, yb = xtr[idx], ytr[idx]
                opt.zero_grad(set_to_none=True)
                out = model(xb); loss = lossf(out, yb); loss.backward(); opt.step()
                with torch.no_grad():  # running training metrics, as Keras keeps them
                    loss_sum += loss.detach() * len(yb); hit += (out.argmax(1) == yb).sum()
            _ = (loss_sum / n).item(), hit.item() / n
            model.eval()
            with torch.no_grad():
                hits = 0
                for i in range(0, len(xv), 128):
                    out = model(xv[i:i + 128]); lossf(out, yv[i:i + 128]); hits += (out.argmax(1) == yv[i:i + 128]).sum().item()
                va = hits / len(xv)
            times.append(time.perf_counter() - t)
        return va

    t = time.perf_counter(); fit(0, 1); epoch1 = time.perf_counter() - t
    rest = va = None
    if epochs > 1:
        t = time.perf_counter(); va = fit(1, epochs); rest = (time.perf_counter() - t) / (epochs - 1)
    model.eval()

    def predict(x):
        with torch.no_grad():
            return torch.cat([torch.softmax(model(x[i:i + 128]), 1) for i in range(0, len(x), 128)])

    with torch.no_grad():
        acc = (predict(xte).argmax(1) == yte).float().mean().item()
    pred = time_predict(predict, xte)
    return dict(version=f"torch {torch.__version__}", import_s=round(import_s, 2), epoch1_s=epoch1, epoch_s=rest,
                epoch_s_median_cb=median(times[1:]) if len(times) > 1 else None,
                epoch_times_cb=[round(x, 3) for x in times], test_acc=acc, val_acc=va, predict_img_s=pred,
                torch_threads=torch.get_num_threads())


def child(peer, epochs, threads):
    if peer == "keras-jax":
        r = run_keras("jax", epochs, threads)
    elif peer == "keras-torch":
        r = run_keras("torch", epochs, threads)
    else:
        r = run_torch(epochs, threads)
    r.update(peer=peer, epochs=epochs, threads=threads, peak_rss_mb=round(vmhwm_mb()), numpy_blas=blas_info(),
             python=platform.python_version())
    for k in ("epoch1_s", "epoch_s", "epoch_s_median_cb", "predict_img_s", "test_acc", "val_acc"):
        if isinstance(r.get(k), float):
            r[k] = round(r[k], 4)
    print("PEER_RESULT " + json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=",".join(PEERS), help="comma-separated subset of " + ",".join(PEERS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.epochs, a.threads)
    th = str(a.threads)
    env = dict(os.environ, OMP_NUM_THREADS=th, MKL_NUM_THREADS=th, OPENBLAS_NUM_THREADS=th,
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true").strip(),
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    # Set on some processors for old OpenBLAS builds; they slow a current numpy's kernels.
    env.pop("OPENBLAS_CORETYPE", None); env.pop("OPENBLAS_L2_SIZE", None)
    status = 0
    for peer in a.only.split(","):
        print(f"# peer {peer}: {a.epochs} epochs, {a.threads} threads", flush=True)
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", peer, "--epochs", str(a.epochs),
                            "--threads", th], env=env)
        if p.returncode != 0:
            print(f"# peer {peer} failed with exit status {p.returncode}", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
