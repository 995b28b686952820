"""How fast BLAS runs the item passes' block products, against a square sgemm.

    python benchmarks/bench_block_gemm.py            # one thread, DIGINETICA's shape

A training step's item work is three (B x d x n) products done block by block
(``kernels.item_pass_forward`` and ``ItemGradient.adam_step``, blocks of
``kernels.ITEM_BLOCK`` items). This times each product over all blocks on one
thread, in the layout the kernels use and transposed, and a 2048^3 sgemm as
the machine's best case, so that the distance between a step and the floor
``bench_train.py`` prints can be split into BLAS efficiency and the rest.
BLAS is kept to one thread (:func:`minisriem.kernels.blas_single_thread`).
Times are medians of ``--repeats`` calls; the square product takes the best.
The last line holds the figures as ``name=value`` pairs.
"""

import argparse

import numpy as np
from _common import N_ITEMS, median, median_times, print_figures

from minisriem import kernels


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--block", type=int, default=kernels.ITEM_BLOCK)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    B, d, n, blk = args.batch_size, args.d, N_ITEMS, args.block
    rng = np.random.default_rng(0)
    z = rng.standard_normal((B, d), dtype=np.float32)
    zT = np.ascontiguousarray(z.T)
    E = rng.standard_normal((n, d), dtype=np.float32)
    blocks = [E[lo : lo + blk] for lo in range(0, n, blk)]
    S = np.empty((B, blk), np.float32)
    ST = np.empty((blk, B), np.float32)
    acc = np.empty((B, d), np.float32)
    accT = np.empty((d, B), np.float32)
    G = np.empty((blk, d), np.float32)
    square = rng.standard_normal((2048, 2048), dtype=np.float32)
    flop = 2.0 * B * d * n  # one product over all items
    cases = {
        "scores S = z E_blk^T": lambda: [np.matmul(z, e.T, out=S[:, : len(e)]) for e in blocks],
        "scores transposed S^T = E_blk z^T": lambda: [
            np.matmul(e, zT, out=ST[: len(e)]) for e in blocks
        ],
        "dz_h part P E_blk": lambda: [np.matmul(S[:, : len(e)], e, out=acc) for e in blocks],
        "dz_h part transposed E_blk^T P^T": lambda: [
            np.matmul(e.T, ST[: len(e)], out=accT) for e in blocks
        ],
        "dE rows dS^T z": lambda: [np.matmul(S[:, : len(e)].T, z, out=G[: len(e)]) for e in blocks],
    }
    figures = {}
    with kernels.blas_single_thread():
        sq = min(median_times(lambda: square @ square, args.repeats))
        peak = 2.0 * 2048**3 / sq / 1e9
        print(f"sgemm 2048^3, one thread: {peak:.0f} GFLOP/s")
        figures["sgemm_gflops"] = round(peak, 1)
        print(f"B={B} d={d} n={n} block={blk}, all blocks, one thread:")
        for name, run in cases.items():
            run()
            t = median(median_times(run, args.repeats))
            rate = flop / t / 1e9
            print(
                f"  {name:36s} {t * 1e3:6.1f} ms  {rate:5.0f} GFLOP/s"
                f"  ({rate / peak:.0%} of square)"
            )
            key = name.split(" ")[0] + ("_T" if "transposed" in name else "")
            figures[f"{key}_ms"] = round(t * 1e3, 2)
    print_figures(figures)


if __name__ == "__main__":
    main()
