#!/usr/bin/env python3
"""GFLOP/s of engine::gemm::sgemm next to its peers, at 1 and 2 rayon threads.

Builds src/rust/engine/examples/gemm_bench.rs in a scratch crate outside the repo (so the
engine never depends on the peers) whose lib is src/rust/engine/src/gemm.rs, with the
`gemm` crate as a dev-dependency and the `bench-peers` feature on, and runs it with
GEMM_BENCH_ALL=1. Columns: sgemm (what the engine uses), mm+rayon (matrixmultiply split
over rayon, the portable fallback), mm whole (one matrixmultiply call), gemm crate 0.19.
Pass --mm-threading to turn on matrixmultiply's own thread pool for 'mm whole'.

    python3 bench/gemm_peers.py [--mm-threading] [--dir /tmp/gemm_peers]
"""
import argparse, os, pathlib, subprocess

repo = pathlib.Path(__file__).resolve().parent.parent
engine = repo / "src" / "rust" / "engine"
ap = argparse.ArgumentParser()
ap.add_argument("--mm-threading", action="store_true")
ap.add_argument("--dir", default="/tmp/gemm_peers")
args = ap.parse_args()

d = pathlib.Path(args.dir)
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
features = "bench-peers" + (",mm_threading" if args.mm_threading else "")
subprocess.run(["cargo", "build", "-q", "--release", "--example", "gemm_bench", "--features", features], cwd=d, check=True)
for threads in (1, 2):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), GEMM_BENCH_ALL="1")
    subprocess.run([str(d / "target" / "release" / "examples" / "gemm_bench")], env=env, check=True)
