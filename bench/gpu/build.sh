#!/usr/bin/env bash
# Builds, here, what bench/gpu/run.sh runs on a GPU machine (which has no Rust): the
# engine's device suite, its unit tests (the NVRTC compile test among them) and the
# epoch benchmark, copied into bench/gpu/bin (ignored by git; the device tool's `carry`
# takes it along).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:$HOME/.cargo/bin"
cd src/rust
test_bin() { # the test binary cargo built for a target, from its JSON messages
  cargo test --release -p rustkeras-engine "$@" --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | sed 's/"executable":"//; s/"$//' | tail -n1
}
devices=$(test_bin --test devices)
unit=$(test_bin --lib)
cargo build --release -p rustkeras-engine --example gpu_epoch
mkdir -p ../../bench/gpu/bin
cp "$devices" ../../bench/gpu/bin/devices
cp "$unit" ../../bench/gpu/bin/engine-unit
cp target/release/examples/gpu_epoch ../../bench/gpu/bin/gpu_epoch
ls -la ../../bench/gpu/bin
