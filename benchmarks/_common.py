"""Shared by the benchmark scripts: data at DIGINETICA's shape, timers, memory, output.

Not part of the package. Each script puts its figures on its last line as
``name=value`` pairs so that other scripts (``compare_torch.py``) and humans
can read them.
"""

import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

N_ITEMS = 43_097  # DIGINETICA after preprocessing (docs/MODEL.md, Table 1)
N_TRAIN = 719_470
N_TEST = 60_858
L = 10
# how many training examples of DIGINETICA's shape have length 1, 2, ..., 10 (10 = "10 or more")
LENGTH_COUNTS = np.array([107622, 104391, 90812, 74508, 59923, 48040, 38649, 31229, 25449, 138847])


def synthetic_split(n_examples, n_items=N_ITEMS, seed=0):
    """Random sessions with DIGINETICA's length profile and a Zipf-like popularity.

    The speed of a step does not depend on what the items are, only on the
    shapes; this is enough to time training and evaluation.

    Returns
    -------
    item_seq : int32 array of shape (n_examples, L), left-aligned, 0-padded
    item_seq_len : int32 array of shape (n_examples,)
    targets : int32 array of shape (n_examples,), item ids 1..n
    """
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.6
    cdf = np.cumsum(rng.permutation(popularity))
    cdf /= cdf[-1]

    def draw(size):
        return (np.searchsorted(cdf, rng.random(size), side="right") + 1).clip(1, n_items)

    item_seq_len = rng.choice(np.arange(1, L + 1), size=n_examples, p=LENGTH_COUNTS / N_TRAIN)
    item_seq = draw((n_examples, L))
    item_seq[np.arange(L)[None, :] >= item_seq_len[:, None]] = 0
    targets = draw(n_examples)
    return item_seq.astype(np.int32), item_seq_len.astype(np.int32), targets.astype(np.int32)


def load_split(path, split):
    """``(item_seq, item_seq_len, targets)`` of ``split`` ("train"/"test") from an ``.npz``
    with arrays ``{split}_sessions``, ``{split}_lengths``, ``{split}_targets``
    and ``n_items`` (the layout the PyTorch reference's data uses)."""
    with np.load(path) as z:
        arrays = tuple(z[f"{split}_{k}"] for k in ("sessions", "lengths", "targets"))
        return (*arrays, int(z["n_items"]))


def get_data(path, split, n_examples, seed=0):
    """Data from ``path`` when given, else synthetic; returns ``(seq, lens, targets, n)``."""
    if path:
        return load_split(path, split)
    return (*synthetic_split(n_examples, seed=seed), N_ITEMS)


def median_times(fn, repeats):
    """Seconds of ``fn()`` for each of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median(values):
    return statistics.median(values)


def peak_rss_mib():
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gemm_peak_gflops(size=2048, repeats=5, dtype=np.float32):
    """The BLAS's speed on a large square product: the roofline for the GEMMs."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    seconds = median(median_times(lambda: np.matmul(a, a, out=out), repeats))
    return 2.0 * size**3 / seconds / 1e9


def environment():
    """What decides the speed: threads, BLAS kernel, and the OpenBLAS variables."""
    import numba

    from minisriem import kernels

    info = {
        "numba_threads": numba.get_num_threads(),
        "numba_layer": numba.config.THREADING_LAYER,
        "threadpoolctl": kernels.ThreadpoolController is not None,
        "blas_one_thread_in_steps": kernels.blas_can_be_limited(),  # else BLAS's own threads
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "unset"),
        "cpus": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],  # other processes on the cores make timings noisy
    }
    return info


def print_figures(figures):
    """The last line of every benchmark: ``name=value`` pairs."""
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
