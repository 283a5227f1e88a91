#!/usr/bin/env bash
# On a GPU machine: the device suite and the GPU benchmark in one command, with the
# binaries bench/gpu/build.sh made (copied over with the repository).
#
#   bench/gpu/run.sh [epochs]
#
# CUDA's libraries come from the PyTorch virtual environment's NVIDIA wheels
# (TORCH_VENV, default /opt/torch/.venv); the driver from the system. Prints every
# figure; writes the whole log to $OUT/gpu-run.log when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${1:-4}
VENV=${TORCH_VENV:-/opt/torch/.venv}
PY="$VENV/bin/python"
LOG=${OUT:-/tmp}/gpu-run.log
SITE=$("$PY" -c 'import site; print(site.getsitepackages()[0])')
for d in "$SITE"/nvidia/*/lib; do LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
export LD_LIBRARY_PATH
B=bench/gpu/bin
{
  echo "== $(date -u) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)"
  echo "== device suite (CPU against GPU, 1e-4)"
  "$B/devices" --test-threads=1 --nocapture 2>&1
  echo "== engine unit tests: NVRTC compile, kernels emulated, probe"
  "$B/engine-unit" cuda --test-threads=1 --nocapture 2>&1
  for model in mlp cnn; do
    echo "== $model: rustkeras on the GPU, then PyTorch eager on the GPU"
    "$B/gpu_epoch" "$model" gpu "$EPOCHS" 2>&1
    "$PY" bench/gpu/torch_peer.py "$model" "$EPOCHS" 2>&1
  done
} | tee "$LOG"
