#!/usr/bin/env python3
"""Damages a Keras .h5 file in many ways and loads each variant in its own process,
counting clean loads, clean errors, hangs and crashes (the HDF5 guard's check).

    cd src/rust && cargo build --release --example load_file
    python3 tools/fuzz-h5.py N SEED [FILE]

FILE defaults to tests/testthat/fixtures/keras-functional/nested.h5. Variant k flips one
bit (k % 3 == 0), sets one byte at random (1) or zeroes 16 bytes (2), at offsets drawn
from random.Random(SEED). A hang is a load that takes over 5 s (set
RUSTKERAS_H5_TIMEOUT below that to see the guard turn hangs into errors); a crash is a
process killed by a signal. Variants that hang or crash are kept in the current folder.
"""
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOADER = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "src/rust/target")),
                      "release/examples/load_file")


def main():
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else os.path.join(
        ROOT, "tests/testthat/fixtures/keras-functional/nested.h5")
    base = open(path, "rb").read()
    rng = random.Random(seed)
    counts = {"ok": 0, "error": 0}
    hangs, crashes = [], []
    for k in range(n):
        b = bytearray(base)
        mode = k % 3
        if mode == 0:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif mode == 1:
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        else:
            i = rng.randrange(len(b) - 16)
            b[i:i + 16] = bytes(16)
        variant = f"fuzz{seed}_{k}.h5"
        with open(variant, "wb") as f:
            f.write(b)
        r = subprocess.run(["timeout", "5", LOADER, variant], capture_output=True, text=True,
                           errors="replace")
        if r.returncode == 124:
            hangs.append((variant, mode, i))
        elif r.returncode != 0:
            crashes.append((variant, mode, i, r.returncode))
        else:
            os.remove(variant)
            counts["ok" if r.stdout.startswith("ok") else "error"] += 1
    print(f"{n} variants: {counts['ok']} loaded, {counts['error']} clean errors, "
          f"{len(hangs)} hangs {hangs}, {len(crashes)} crashes {crashes}")


if __name__ == "__main__":
    main()
