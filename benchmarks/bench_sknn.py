"""Speed of V-SKNN and STAN on a real dataset: fit, then rank the whole test set.

    python benchmarks/bench_sknn.py --data-dir DATA --threads 1
    python benchmarks/bench_sknn.py --data-dir DATA --dataset yoochoose1_64

For each method, timed side by side in one run: building the index
(``fit``), ranking every test example with the Numba loop without a score
matrix (``ranks``), the same through the (B, n) score matrix and
:func:`minisriem.metrics.model_ranks` (``scores``), and the plain NumPy twin
on the first ``--twin-examples`` examples, from which its speed ratio is
reported. Ranks from the three paths are checked to agree. Settings are the
classes' defaults unless given. The last line holds the figures as
``name=value`` pairs.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="diginetica")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--twin-examples", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=2048)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from minisriem.cli import limit_threads

    limit_threads(args.threads)  # before NumPy is imported
    import numpy as np
    from _common import environment, print_figures

    from data_tools import load_dataset
    from minisriem.metrics import model_ranks
    from minisriem.sknn import VSKNN
    from minisriem.stan import STAN

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    item_seq, item_seq_len, targets = ds.test.padded(int(ds.test.lengths.max()))
    B = args.batch_size
    print(f"{ds}; whole sessions (L = {item_seq.shape[1]})")
    print("  " + " ".join(f"{k}={v}" for k, v in environment().items()))
    figures = {}
    for name, make in (("vsknn", VSKNN), ("stan", STAN)):
        model = make()
        model.fit(ds.train, ds.n_items)  # warm-up: compile or load Numba's cache
        model.ranks(item_seq[:10], item_seq_len[:10], targets[:10])
        model.scores(item_seq[:10], item_seq_len[:10])
        t0 = time.perf_counter()
        model.fit(ds.train, ds.n_items)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = np.concatenate(
            [
                model.ranks(item_seq[s : s + B], item_seq_len[s : s + B], targets[s : s + B])
                for s in range(0, len(targets), B)
            ]
        )
        ranks_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        dense = model_ranks(model, item_seq, item_seq_len, targets, batch_size=256)
        scores_s = time.perf_counter() - t0
        n = min(args.twin_examples, len(targets))
        twin = make(backend="numpy").fit(ds.train, ds.n_items)
        t0 = time.perf_counter()
        slow = twin.ranks(item_seq[:n], item_seq_len[:n], targets[:n])
        twin_s = time.perf_counter() - t0
        if not (np.array_equal(fast, dense) and np.array_equal(fast[:n], slow)):
            print(f"error: {name}: the three ranking paths disagree", file=sys.stderr)
            return 1
        per_example_fast = ranks_s / len(targets)
        ratio = (twin_s / n) / per_example_fast
        print(
            f"  {model.name}: fit {fit_s:.2f}s, ranks {ranks_s:.2f}s for {len(targets)} examples "
            f"({len(targets) / ranks_s:.0f}/s), through scores {scores_s:.2f}s, NumPy twin "
            f"{twin_s:.2f}s for {n} ({ratio:.0f}x slower per example)"
        )
        figures |= {
            f"{name}_fit_s": round(fit_s, 2),
            f"{name}_ranks_s": round(ranks_s, 2),
            f"{name}_scores_s": round(scores_s, 2),
            f"{name}_twin_ratio": round(ratio, 1),
        }
    print_figures(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
