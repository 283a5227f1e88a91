#!/usr/bin/env bash
# Creates (or completes) the Python venv with the peers that bench/mlp.R compares against:
# Keras 3 on JAX (CPU) and on torch, plain PyTorch with torchvision (bench/resnet50.R's
# peer), numpy, psutil, threadpoolctl. Idempotent:
# a venv that already imports everything is left alone (pass --upgrade to refresh it).
#
#   bash bench/setup-peers.sh [--upgrade]        # venv: $RUSTKERAS_PEERS_VENV or /tmp/rustkeras-peers
#
# torch: PyPI's Linux x86_64 wheel is the CUDA build, and `pip install torch` also pulls
# the NVIDIA runtime wheels (cuBLAS, cuDNN, NCCL, ... about 4 GB installed, ~1 min here). A
# `--no-deps` install without them does not import (torch preloads libcudart/libcublasLt at
# import), and the CPU-only wheels live on PyTorch's own index, which is not reachable
# here; so the full wheel is installed and simply runs on the CPU. Set
# RUSTKERAS_TORCH_INDEX=<url> to use a CPU-only index where one is reachable.
set -euo pipefail
VENV="${RUSTKERAS_PEERS_VENV:-/tmp/rustkeras-peers}"
PY="${PYTHON:-python3}"
upgrade=""
[ "${1:-}" = "--upgrade" ] && upgrade="--upgrade"

check='import os; os.environ.setdefault("KERAS_BACKEND", "jax")
import numpy, keras, jax, jaxlib, torch, torchvision, psutil, threadpoolctl
assert keras.__version__.startswith("3."), keras.__version__
print("numpy", numpy.__version__, "| keras", keras.__version__, "| jax", jax.__version__, "| torch", torch.__version__)'

if [ -z "$upgrade" ] && [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$check" 2>/dev/null; then
  echo "peer venv ready: $VENV"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    echo "python3 -m venv failed; installing python3-venv" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y --no-install-recommends python3-venv || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends python3-venv; }
    rm -rf "$VENV"; "$PY" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" $upgrade numpy "keras>=3,<4" "jax[cpu]" psutil threadpoolctl
if [ -n "${RUSTKERAS_TORCH_INDEX:-}" ]; then
  "${PIP[@]}" $upgrade --index-url "$RUSTKERAS_TORCH_INDEX" torch torchvision
else
  # One resolve for both, so that pip picks a torchvision whose requirement admits this torch.
  "${PIP[@]}" $upgrade torch torchvision
fi
"$VENV/bin/python" -c "$check"
echo "peer venv ready: $VENV ($(du -sh "$VENV" | cut -f1))"
