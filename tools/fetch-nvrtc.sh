#!/usr/bin/env bash
# Fetches NVRTC (NVIDIA's run-time CUDA compiler) from PyPI's nvidia-cuda-nvrtc wheel into a
# cache folder and prints that folder, so that the engine's tests compile the CUDA kernels
# on machines without a GPU or a CUDA toolkit. Prints nothing and exits 1 when it cannot
# (no network, another architecture): the kernel test then says it was skipped.
#
# usage: tools/fetch-nvrtc.sh [cache-dir]
set -euo pipefail

VERSION=13.5.37
case "$(uname -m)" in
  x86_64) PLATFORM=manylinux2010_x86_64.manylinux_2_12_x86_64
          SHA256=86b4d68058807988b7d9af5b44917a0601e9c337f35ccd657bfb3c759ff8d8bc ;;
  *) echo "fetch-nvrtc: no pinned wheel for $(uname -m)" >&2; exit 1 ;;
esac
WHEEL=nvidia_cuda_nvrtc-$VERSION-py3-none-$PLATFORM.whl
DEST=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/rustkeras/nvrtc-$VERSION}
LIB=$DEST/nvidia/cu13/lib

if [ -f "$LIB/libnvrtc.so.13" ]; then echo "$LIB"; exit 0; fi
mkdir -p "$DEST"
# The file's address comes from PyPI's simple index (the JSON API may be proxied).
URL=$(curl -fsSL --retry 2 "https://pypi.org/simple/nvidia-cuda-nvrtc/" \
  | grep -o "https://[^\"#]*/$WHEEL" | head -n1) || true
if [ -z "$URL" ]; then echo "fetch-nvrtc: $WHEEL not found on PyPI" >&2; exit 1; fi
curl -fsSL --retry 2 -o "$DEST/$WHEEL.part" "$URL"
echo "$SHA256  $DEST/$WHEEL.part" | sha256sum -c --quiet - >&2
# R is always here (it builds the package); unzip(1) may not be.
Rscript -e 'utils::unzip(commandArgs(TRUE)[1], exdir = commandArgs(TRUE)[2], files = c(
  "nvidia/cu13/lib/libnvrtc.so.13", "nvidia/cu13/lib/libnvrtc-builtins.so.13.5"))' \
  "$DEST/$WHEEL.part" "$DEST" >&2
rm -f "$DEST/$WHEEL.part"
echo "$LIB"
