"""Evaluation throughput of minisriem at DIGINETICA's shape: full ranking for Recall@20/MRR@20.

An evaluation batch: the session part, the scores of all 43,097 items
(eq. 8), and per example the rank of the true next item and the top 20
(``SRIEM.rank_topk``).

    python benchmarks/bench_eval.py --batches 30                  # Numba kernels
    python benchmarks/bench_eval.py --batches 5 --backend numpy   # the plain NumPy path

The breakdown times the three parts separately; the GEMM's floor is its
FLOP count at the BLAS's speed on a large square product. The last line
holds the figures as ``name=value`` pairs.
"""

import argparse
import time

import numpy as np
from _common import (
    N_TEST,
    environment,
    gemm_peak_gflops,
    get_data,
    median,
    peak_rss_mib,
    print_figures,
)

from minisriem import kernels, layers
from minisriem.model import SRIEM


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batches", type=int, default=30, help="batches per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--k", type=int, default=20, help="the K of Recall@K and MRR@K")
    p.add_argument("--backend", choices=["numba", "numpy"], default="numba")
    p.add_argument("--data", default=None, help=".npz with test_sessions/lengths/targets")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    seq, lens, targets, n_items = get_data(args.data, "test", N_TEST, seed=1)
    B = args.batch_size
    model = SRIEM(n_items, backend=args.backend)
    n_batches = len(targets) // B
    print(f"minisriem evaluation benchmark: backend={args.backend}")
    print(f"  n_items={n_items} d=200 l=100 L={seq.shape[1]} batch={B} float32 k={args.k}")
    print("  " + " ".join(f"{k}={v}" for k, v in environment().items()))

    def batch(i):
        s = slice((i % n_batches) * B, (i % n_batches + 1) * B)
        return seq[s], lens[s], targets[s]

    t0 = time.perf_counter()
    model.rank_topk(*batch(0), k=args.k)
    first_s = time.perf_counter() - t0
    print(f"  first batch (compile or cache load + one batch): {first_s:.2f} s")
    i = 1
    for _ in range(args.warmup):
        model.rank_topk(*batch(i), k=args.k)
        i += 1
    rates, hits, rr = [], 0, 0.0
    for r in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(args.batches):
            rank, _ = model.rank_topk(*batch(i), k=args.k)
            hits += int((rank <= args.k).sum())
            rr += float(np.where(rank <= args.k, 1.0 / rank, 0.0).sum())
            i += 1
        seconds = time.perf_counter() - t0
        rates.append(args.batches * B / seconds)
        print(
            f"  run {r + 1}: {args.batches} batches in {seconds:.2f} s, {rates[-1]:.0f} examples/s"
        )
    rate = median(rates)
    n_seen = args.repeats * args.batches * B
    print(
        f"  (untrained model: Recall@{args.k} {hits / n_seen:.4f}, MRR@{args.k} {rr / n_seen:.4f})"
    )

    # breakdown of one batch
    parts = {"session part": [], "GEMM scores": [], "rank + top-k": []}
    buf = np.empty((B, n_items), dtype=np.float32)
    E = model.params["E"]
    for _ in range(5):
        s, l, t = batch(i)
        i += 1
        if args.backend == "numba":  # as SRIEM.rank_topk does it
            with kernels.blas_single_thread():
                t0 = time.perf_counter()
                z_h, _ = model._session_forward_fast(s, l)
                t1 = time.perf_counter()
                kernels.matmul_items(np.ascontiguousarray(z_h), E[1:].T, buf, split="b_rows")
                t2 = time.perf_counter()
            kernels.rank_topk(buf, t - 1, args.k)
        else:
            t0 = time.perf_counter()
            z_h, _ = model.session_forward(s, l)
            t1 = time.perf_counter()
            buf, _ = layers.scores_forward(z_h, E)
            t2 = time.perf_counter()
            kernels.rank_topk_numpy(buf, t - 1, args.k)
        t3 = time.perf_counter()
        for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            parts[name].append(dt)
    batch_ms = 1e3 * B / rate
    parts = {name: 1e3 * median(v) for name, v in parts.items()}
    parts["Python overhead and the rest"] = max(batch_ms - sum(parts.values()), 0.0)
    peak = gemm_peak_gflops()
    floor_ms = 1e3 * 2.0 * B * 200 * n_items / (peak * 1e9)
    print(f"\n  one batch of {B}, by part (median of 5, in ms):")
    for name, ms in parts.items():
        floor = f"  floor {floor_ms:.1f} ({peak:.0f} GFLOP/s)" if name == "GEMM scores" else ""
        print(f"  {name:32s} {ms:7.1f} {ms / batch_ms:6.0%}{floor}")
    print(f"  {'batch':32s} {batch_ms:7.1f}")
    print_figures(
        {
            "backend": args.backend,
            "eval_examples_per_s": round(rate, 1),
            "batch_ms": round(batch_ms, 1),
            "gemm_ms": round(parts["GEMM scores"], 1),
            "rank_ms": round(parts["rank + top-k"], 1),
            "session_ms": round(parts["session part"], 1),
            "floor_batch_ms": round(floor_ms, 1),
            "first_batch_s": round(first_s, 2),
            "peak_rss_mib": round(peak_rss_mib()),
        }
    )


if __name__ == "__main__":
    main()
