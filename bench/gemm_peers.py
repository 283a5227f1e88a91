#!/usr/bin/env python3
"""GFLOP/s of engine::gemm::sgemm next to its peers, at 1 and 2 rayon threads.

Builds src/rust/engine/examples/gemm_bench.rs in a scratch crate outside the repo (so the
engine never depends on the peers) whose lib is src/rust/engine/src/gemm.rs, with the
`gemm` crate as a dev-dependency and the `bench-peers` feature on, and runs it with
GEMM_BENCH_ALL=1. Columns: sgemm (what the engine uses), mm+rayon (matrixmultiply split
over rayon, the portable fallback), mm whole (one matrixmultiply call), gemm crate 0.19.
Pass --mm-threading to turn on matrixmultiply's own thread pool for 'mm whole'.

--shapes cnn times the im2col GEMMs of the workshop CNN (per 64-sample shard) instead of
the MLP's. With a Python that has NumPy (--numpy PYTHON; by default the peers' venv,
$RUSTKERAS_PEERS_VENV or /tmp/rustkeras-peers, when it exists), each table gets two more
columns: numpy (np.matmul on float32, i.e. OpenBLAS's SGEMM, with OPENBLAS_NUM_THREADS set
to the same thread count, transposes passed as views) and sgemm/numpy in percent (issue
3's bar: 85 %). Both sides are timed alike: the best of about 15 batches of repetitions
(about 0.3 s in all) after a warm-up call.

    python3 bench/gemm_peers.py [--shapes mlp|cnn] [--mm-threading] [--dir /tmp/gemm_peers]
                                [--numpy PYTHON | --no-numpy] [--sgemm-only]
"""
import argparse, json, math, os, pathlib, re, subprocess, sys, time

repo = pathlib.Path(__file__).resolve().parent.parent
engine = repo / "src" / "rust" / "engine"
ROW = re.compile(r"^(?P<label>.*?)\s+(?P<m>\d+)x(?P<n>\d+)x(?P<k>\d+) \((?P<ta>[nt])(?P<tb>[nt])\)\s+(?P<rest>.*)$")


def numpy_child(threads):
    """Reads [[label, ta, tb, m, n, k], ...] on stdin; prints {label: GFLOP/s} for np.matmul.
    Runs in its own process so that OPENBLAS_NUM_THREADS is set before NumPy loads."""
    import numpy as np
    rng = np.random.default_rng(1)
    out = {}
    for label, ta, tb, m, n, k in json.load(sys.stdin):
        a = (rng.random((k, m) if ta else (m, k), dtype=np.float32) - 0.5)
        b = (rng.random((n, k) if tb else (k, n), dtype=np.float32) - 0.5)
        A = a.T if ta else a
        B = b.T if tb else b
        c = np.empty((m, n), dtype=np.float32)

        def f():
            np.matmul(A, B, out=c)

        f()
        t = time.perf_counter(); f(); once = max(time.perf_counter() - t, 1e-7)
        reps = min(max(int(0.3 / once), 5), 20000)
        batch = max(reps // 15, 1)
        samples = []
        for _ in range(math.ceil(reps / batch)):
            t = time.perf_counter()
            for _ in range(batch):
                f()
            samples.append((time.perf_counter() - t) / batch)
        out[label] = 2.0 * m * n * k / min(samples) / 1e9
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} x{d.get('num_threads')}"
                for d in threadpool_info() if d.get("user_api") == "blas"]
    except Exception:
        blas = []
    print(json.dumps({"numpy": np.__version__, "blas": blas, "gflops": out}))


def build(d, mm_threading):
    (d / "src").mkdir(parents=True, exist_ok=True)
    (d / "Cargo.toml").write_text(f'''[package]
name = "gemm_peers"
version = "0.1.0"
edition = "2021"

[lib]
name = "engine"
path = "src/lib.rs"

[[example]]
name = "gemm_bench"
path = "{engine / 'examples' / 'gemm_bench.rs'}"

[features]
bench-peers = []
mm_threading = ["matrixmultiply/threading"]

[dependencies]
rayon = "1"
matrixmultiply = "0.3"

[dev-dependencies]
gemm = {{ version = "0.19", default-features = false, features = ["std", "rayon", "x86-v4"] }}

[profile.release]
opt-level = 3
codegen-units = 16
''')
    (d / "src" / "lib.rs").write_text(f'#[path = "{engine / "src" / "gemm.rs"}"]\npub mod gemm;\n')
    features = "bench-peers" + (",mm_threading" if mm_threading else "")
    subprocess.run(["cargo", "build", "-q", "--release", "--example", "gemm_bench", "--features", features], cwd=d, check=True)
    return d / "target" / "release" / "examples" / "gemm_bench"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mm-threading", action="store_true")
    ap.add_argument("--dir", default="/tmp/gemm_peers")
    ap.add_argument("--shapes", choices=["mlp", "cnn"], default="mlp")
    venv_py = pathlib.Path(os.environ.get("RUSTKERAS_PEERS_VENV", "/tmp/rustkeras-peers")) / "bin" / "python"
    ap.add_argument("--numpy", default=str(venv_py) if venv_py.exists() else None,
                    help="a Python with NumPy for the numpy column (default: the peers' venv when it exists)")
    ap.add_argument("--no-numpy", action="store_true")
    ap.add_argument("--sgemm-only", action="store_true", help="time the engine's sgemm only (no GEMM_BENCH_ALL)")
    ap.add_argument("--numpy-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.numpy_child:
        return numpy_child(args.numpy_child)

    exe = build(pathlib.Path(args.dir), args.mm_threading)
    for threads in (1, 2):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), GEMM_BENCH_SHAPES=args.shapes)
        if not args.sgemm_only:
            env["GEMM_BENCH_ALL"] = "1"
        if args.no_numpy or not args.numpy:
            subprocess.run([str(exe)], env=env, check=True)
            continue
        lines = subprocess.run([str(exe)], env=env, check=True, capture_output=True, text=True).stdout.splitlines()
        rows = [(ln, ROW.match(ln)) for ln in lines]
        shapes = [[m["label"], m["ta"] == "t", m["tb"] == "t", int(m["m"]), int(m["n"]), int(m["k"])]
                  for _, m in rows if m]
        # NumPy's OpenBLAS at the same thread count; processor overrides dropped as in peers.py.
        nenv = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                    MKL_NUM_THREADS=str(threads))
        nenv.pop("OPENBLAS_CORETYPE", None); nenv.pop("OPENBLAS_L2_SIZE", None)
        res = json.loads(subprocess.run([args.numpy, os.path.abspath(__file__), "--numpy-child", str(threads)],
                                        input=json.dumps(shapes), env=nenv, check=True, capture_output=True,
                                        text=True).stdout.strip().splitlines()[-1])
        for ln, m in rows:
            if m:
                ours = float(m["rest"].split()[0])
                np_g = res["gflops"][m["label"]]
                print(f"{ln} {np_g:>10.1f} {100 * ours / np_g:>11.0f}%")
            elif ln.startswith("shape"):
                print(ln.replace("   (GFLOP/s)", f" {'numpy':>10} {'sgemm/numpy':>12}   (GFLOP/s)"))
            else:
                print(ln)
        print(f"numpy {res['numpy']}: {', '.join(res['blas']) or 'BLAS unknown'}")


if __name__ == "__main__":
    sys.exit(main())
