"""Numba's compile time is paid once: a second run starts from the cache.

    python benchmarks/bench_startup.py

Runs the same small program twice, each time in a fresh process, with
``NUMBA_CACHE_DIR`` pointing at a new, empty directory: the first process
compiles every kernel and writes the cache, the second loads it. The
program imports minisriem and makes one training step (loss, gradients,
Adam) and one ranking call, in float32 as training does. The last line
holds the figures as ``name=value`` pairs.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """
import time
t0 = time.perf_counter()
import numpy as np
from minisriem.model import SRIEM
from minisriem.optim import Adam
t1 = time.perf_counter()
rng = np.random.default_rng(0)
model = SRIEM(100, d=16, l=8)
opt = Adam(model.params, lr=1e-3, l2=1e-5)
item_seq = rng.integers(1, 101, size=(8, 10))
item_seq_len = np.full(8, 10)
targets = rng.integers(1, 101, size=8)
loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
opt.step(model.params, grads)
model.rank_topk(item_seq, item_seq_len, targets, k=20)
t2 = time.perf_counter()
print(f"import_s={t1 - t0:.2f} first_calls_s={t2 - t1:.2f}")
"""


def main():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        figures = {}
        for run in ("cold", "cached"):
            out = subprocess.run(
                [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True
            )
            pairs = dict(p.split("=") for p in out.stdout.split())
            imported, first = pairs["import_s"], pairs["first_calls_s"]
            print(f"{run:6s} start: import {imported} s, first calls {first} s")
            figures[f"{run}_first_calls_s"] = float(pairs["first_calls_s"])
        n_files = sum(len(files) for _, _, files in os.walk(cache))
    print(f"({n_files} files in the cache)")
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
