#!/usr/bin/env python3
"""The workshop MLP or CNN, or ResNet50, in the peers, measured the way bench/mlp.R,
bench/cnn.R and bench/resnet50.R measure rustkeras.

    python bench/peers.py [--model mlp] [--epochs 5] [--threads 2] [--only keras-jax,keras-torch,torch]
    python bench/peers.py --model cnn [--epochs 2] [--quick] [--only keras-jax,torch]
    python bench/peers.py --model resnet50 [--reps 3] [--batch 32] [--only keras-jax,keras-torch,torch]

Each peer runs in its own child process (so peak RSS, threads and imports are its own):
Keras 3 on JAX, Keras 3 on torch, and plain PyTorch (eager). Each prints one line

    PEER_RESULT {"peer": ..., "epoch_s": ..., ...}

(JSON after the prefix), which bench/mlp.R, bench/cnn.R and bench/resnet50.R parse;
everything else is commentary.

The models (--model), both with categorical cross-entropy, accuracy, batch 128,
validation_split 0.2 (the last 20 % of the training images, as Keras takes them), shuffled
each epoch, Fashion-MNIST from Debian's dataset-fashion-mnist:
  mlp  784 -> Dense 256 relu -> Dropout 0.4 -> Dense 128 relu -> Dropout 0.3 -> Dense 10
       softmax; RMSprop (lr 1e-3, rho 0.9, eps 1e-7). Default peers: all three.
  cnn  28x28x1 -> Conv2D 32 3x3 relu -> MaxPooling 2 -> Conv2D 64 3x3 relu -> MaxPooling 2
       -> Flatten -> Dense 64 relu -> Dense 10 softmax; Adam (lr 1e-3, betas 0.9/0.999,
       eps 1e-7). Default peers: keras-jax and torch (Keras-torch is far slower; add it with
       --only). --quick trains on the first 12000 training images (9600 + 2400 for
       validation) instead of 60000: an epoch is then a fifth of the full one.

resnet50 (no data set, no epochs): keras.applications.ResNet50(weights=None) (224x224x3,
1000 classes, softmax; Keras 3 on JAX and on torch) and torchvision.models.resnet50(
weights=None) (PyTorch eager, NCHW, the softmax folded into CrossEntropyLoss), Adam (lr
1e-3, betas 0.9/0.999, eps 1e-7), sparse categorical cross-entropy, on one random batch of
--batch (32) images x ~ N(0, 1) with random labels:
  predict_img_s  batch / the best of --reps timed predict(x, batch_size=batch) calls, after
             one warm-up call (predict1_s: its time, compile included). PyTorch: eval mode,
             no_grad, softmax.
  train_step_s   the best of --reps timed training steps on the batch, after one warm-up
             step (train_step1_s, compile included). Keras: fit(x, y, batch_size=batch,
             epochs=1, verbose=0), as bench/resnet50.R times rustkeras; PyTorch: train mode,
             zero_grad, forward, loss, backward, Adam step.
  peak_rss_mb    VmHWM of the child at the end (after the training steps, which need the
             most); predict_peak_rss_mb: VmHWM after the predict calls, before training.
Keras's ResNet50 has 25,636,712 parameters, torchvision's 25,557,032 (its convolutions have
no bias; Keras's ResNet v1 convolutions do); the compute is the same within 0.1 %.

What is timed for mlp and cnn (identical in mlp.R):
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
DEFAULT_PEERS = {"mlp": PEERS, "cnn": ["keras-jax", "torch"], "resnet50": PEERS}
DEFAULT_EPOCHS = {"mlp": 5, "cnn": 2, "resnet50": 1}
QUICK_TRAIN = 12000


def load(model="mlp", n_train=None):
    """Fashion-MNIST as float32 in [0, 1]: (n, 784) for the MLP, (n, 28, 28, 1) for the CNN
    (channels_last; PyTorch transposes to channels_first itself); labels as int64."""
    import numpy as np

    def idx(name):
        with gzip.open(os.path.join(FMNIST, name), "rb") as f:
            data = f.read()
        ndim = struct.unpack(">I", data[:4])[0] & 0xFF
        dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)

    shape = (-1, 784) if model == "mlp" else (-1, 28, 28, 1)
    xtr = idx("train-images-idx3-ubyte.gz").reshape(shape).astype("float32") / 255
    xte = idx("t10k-images-idx3-ubyte.gz").reshape(shape).astype("float32") / 255
    ytr = idx("train-labels-idx1-ubyte.gz").astype("int64")
    if n_train:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    return (xtr, ytr), (xte, idx("t10k-labels-idx1-ubyte.gz").astype("int64"))


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


def keras_model(keras, model):
    L = keras.layers
    if model == "mlp":
        net = keras.Sequential([keras.Input((784,)), L.Dense(256, activation="relu"), L.Dropout(0.4),
                                L.Dense(128, activation="relu"), L.Dropout(0.3), L.Dense(10, activation="softmax")])
        return net, keras.optimizers.RMSprop()
    net = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
                            L.Conv2D(64, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)), L.Flatten(),
                            L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")])
    return net, keras.optimizers.Adam()


def torch_model(torch, model):
    """The same network in plain PyTorch, with Keras's initialisation (glorot_uniform
    kernels, zero biases) and optimizer defaults; the softmax is folded into the loss."""
    nn = torch.nn
    if model == "mlp":
        net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.4), nn.Linear(256, 128), nn.ReLU(),
                            nn.Dropout(0.3), nn.Linear(128, 10))
    else:  # channels_first: (n, 1, 28, 28)
        net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10))
    for m in net:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)
    if model == "mlp":
        opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    return net, opt


def run_keras(backend, model_name, epochs, threads, n_train):
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
    (xtr, ytr), (xte, yte) = load(model_name, n_train)
    ytr1 = keras.utils.to_categorical(ytr, 10); yte1 = keras.utils.to_categorical(yte, 10)
    model, opt = keras_model(keras, model_name)
    model.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
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


def run_torch(model_name, epochs, threads, n_train):
    t0 = time.perf_counter()
    import torch, torch.nn as nn
    import_s = time.perf_counter() - t0
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    (xtr, ytr), (xte, yte) = load(model_name, n_train)
    if model_name == "cnn":  # NHWC -> NCHW, contiguous (PyTorch's layout)
        xtr = xtr.transpose(0, 3, 1, 2).copy(); xte = xte.transpose(0, 3, 1, 2).copy()
    n_val = len(xtr) - int(len(xtr) * 0.8)  # the last 20 %, as Keras's validation_split takes them
    xtr = torch.from_numpy(xtr); ytr = torch.from_numpy(ytr); xte = torch.from_numpy(xte); yte = torch.from_numpy(yte)
    xv, yv, xtr, ytr = xtr[-n_val:], ytr[-n_val:], xtr[:-n_val], ytr[:-n_val]
    model, opt = torch_model(torch, model_name)
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


def best_of(fn, reps):
    """fn() once as a warm-up, then reps timed calls: (warm-up seconds, [seconds])."""
    t = time.perf_counter(); fn(); first = time.perf_counter() - t
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return first, ts


def resnet_batch(batch, channels_first=False):
    """The random batch every engine gets: x ~ N(0, 1) float32 (NHWC, or NCHW for
    PyTorch, the same numbers transposed), labels uniform in 0..999 (int64)."""
    import numpy as np
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, 224, 224, 3), dtype=np.float32)
    y = rng.integers(0, 1000, batch).astype("int64")
    if channels_first:
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x, y


def resnet_result(first_pred, pred_ts, rss_pred, first_step, step_ts, batch, **extra):
    return dict(predict_img_s=batch / min(pred_ts), predict1_s=round(first_pred, 3),
                predict_times=[round(t, 4) for t in pred_ts], predict_peak_rss_mb=round(rss_pred),
                train_step_s=min(step_ts), train_step1_s=round(first_step, 3),
                train_times=[round(t, 4) for t in step_ts], **extra)


def run_keras_resnet(backend, threads, reps, batch):
    os.environ["KERAS_BACKEND"] = backend
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
    x, y = resnet_batch(batch)
    model = keras.applications.ResNet50(weights=None)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    first_pred, pred_ts = best_of(lambda: model.predict(x, batch_size=batch, verbose=0), reps)
    rss_pred = vmhwm_mb()
    losses = []
    first_step, step_ts = best_of(
        lambda: losses.append(model.fit(x, y, batch_size=batch, epochs=1, verbose=0).history["loss"][0]), reps)
    return resnet_result(first_pred, pred_ts, rss_pred, first_step, step_ts, batch, version=version,
                         import_s=round(import_s, 2), params=int(model.count_params()),
                         losses=[round(float(v), 4) for v in losses])


def run_torch_resnet(threads, reps, batch):
    t0 = time.perf_counter()
    import torch, torch.nn as nn, torchvision
    import_s = time.perf_counter() - t0
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x, y = resnet_batch(batch, channels_first=True)
    x = torch.from_numpy(x); y = torch.from_numpy(y)
    model = torchvision.models.resnet50(weights=None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    lossf = nn.CrossEntropyLoss()

    def predict():
        model.eval()
        with torch.no_grad():
            return torch.softmax(model(x), 1)

    losses = []

    def step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y); loss.backward(); opt.step()
        losses.append(loss.item())

    first_pred, pred_ts = best_of(predict, reps)
    rss_pred = vmhwm_mb()
    first_step, step_ts = best_of(step, reps)
    return resnet_result(first_pred, pred_ts, rss_pred, first_step, step_ts, batch,
                         version=f"torch {torch.__version__}, torchvision {torchvision.__version__}",
                         import_s=round(import_s, 2), params=sum(p.numel() for p in model.parameters()),
                         losses=[round(v, 4) for v in losses], torch_threads=torch.get_num_threads())


def child(peer, model, epochs, threads, n_train, reps=3, batch=32):
    if model == "resnet50":
        if peer == "torch":
            r = run_torch_resnet(threads, reps, batch)
        else:
            r = run_keras_resnet(peer.split("-")[1], threads, reps, batch)
        r.update(peer=peer, model=model, threads=threads, batch=batch, reps=reps, peak_rss_mb=round(vmhwm_mb()),
                 numpy_blas=blas_info(), python=platform.python_version())
        for k in ("predict_img_s", "train_step_s"):
            r[k] = round(r[k], 4)
        print("PEER_RESULT " + json.dumps(r), flush=True)
        return
    if peer == "keras-jax":
        r = run_keras("jax", model, epochs, threads, n_train)
    elif peer == "keras-torch":
        r = run_keras("torch", model, epochs, threads, n_train)
    else:
        r = run_torch(model, epochs, threads, n_train)
    r.update(peer=peer, model=model, epochs=epochs, threads=threads, n_train=n_train or 60000,
             peak_rss_mb=round(vmhwm_mb()), numpy_blas=blas_info(), python=platform.python_version())
    for k in ("epoch1_s", "epoch_s", "epoch_s_median_cb", "predict_img_s", "test_acc", "val_acc"):
        if isinstance(r.get(k), float):
            r[k] = round(r[k], 4)
    print("PEER_RESULT " + json.dumps(r), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["mlp", "cnn", "resnet50"], default="mlp")
    ap.add_argument("--epochs", type=int, help="default: 5 for the MLP, 2 for the CNN (not used by resnet50)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", help="comma-separated subset of " + ",".join(PEERS) +
                    " (default: all for the MLP and ResNet50, keras-jax,torch for the CNN)")
    ap.add_argument("--quick", action="store_true", help="train on the first %d training images" % QUICK_TRAIN)
    ap.add_argument("--train-size", type=int, help="train on the first N training images (default 60000)")
    ap.add_argument("--reps", type=int, default=3, help="resnet50: timed repetitions after the warm-up (default 3)")
    ap.add_argument("--batch", type=int, default=32, help="resnet50: batch size (default 32)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    epochs = a.epochs or DEFAULT_EPOCHS[a.model]
    n_train = a.train_size or (QUICK_TRAIN if a.quick else None)
    if a.child:
        return child(a.child, a.model, epochs, a.threads, n_train, a.reps, a.batch)
    only = a.only.split(",") if a.only else DEFAULT_PEERS[a.model]
    th = str(a.threads)
    env = dict(os.environ, OMP_NUM_THREADS=th, MKL_NUM_THREADS=th, OPENBLAS_NUM_THREADS=th,
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true").strip(),
               JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    # Set on some processors for old OpenBLAS builds; they slow a current numpy's kernels.
    env.pop("OPENBLAS_CORETYPE", None); env.pop("OPENBLAS_L2_SIZE", None)
    status = 0
    for peer in only:
        if a.model == "resnet50":
            print(f"# peer {peer}: resnet50, batch {a.batch}, 1 warm-up + best of {a.reps}, {a.threads} threads",
                  flush=True)
        else:
            print(f"# peer {peer}: {a.model}, {epochs} epochs, {a.threads} threads"
                  + (f", first {n_train} training images" if n_train else ""), flush=True)
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", peer, "--model", a.model,
                            "--epochs", str(epochs), "--threads", th, "--reps", str(a.reps), "--batch", str(a.batch)]
                           + (["--train-size", str(n_train)] if n_train else []), env=env)
        if p.returncode != 0:
            print(f"# peer {peer} failed with exit status {p.returncode}", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
