"""What learnable importance weights buy on the synthetic data: paper vs released code.

Trains SR-IEM exactly as the quick start does (``python -m minisriem.train``
on synthetic data: the paper's hyper-parameters, 3 epochs, 10% of the
training sessions held out, the test figures of the epoch with the best
validation Recall@20), once per variant and seed, and reports:

* test Recall@20 and MRR@20 of ``--variant paper`` (weights exactly 1/t, in
  effect mean pooling, tutorial step 13) and ``--variant official`` (weights
  that learn), per seed and as mean +- std over seeds;
* the gain, official minus paper, in points of Recall@20, per seed and as
  mean +- std;
* how the official variant weighs the planted noise clicks: the mean of
  ``t * beta`` over noise clicks and over clean clicks of the test prefixes
  (1 = the mean-pooling weight), and the share of test prefixes in which a
  noise click gets the lowest weight (tutorial step 12).

The figures are measured at the validation-selected epoch of a run on the
training sessions minus the validation split (what ``minisriem.train``
reports today), not after a refit on all training sessions.

    python benchmarks/synthetic_importance.py                 # 3 seeds, ~1 minute per run
    python benchmarks/synthetic_importance.py --seeds 0 1 2 3 4

The last line holds the figures as ``name=value`` pairs.
"""

import argparse
import statistics
import tempfile
import time

from _common import ROOT, print_figures  # noqa: F401 (puts the repository on sys.path)

from data_tools import load_dataset
from minisriem.workflow import SYNTHETIC_EPOCHS, train


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--epochs", type=int, default=SYNTHETIC_EPOCHS, help="epochs per run")
    p.add_argument("--threads", type=int, default=None, help="threads for BLAS and Numba")
    p.add_argument(
        "--l2",
        type=float,
        default=None,
        help="L2 penalty instead of the paper's 1e-5 (a probe: does the coupled L2 "
        "keep the released code's Wq, Wk at zero?)",
    )
    return p.parse_args(argv)


def noise_weights(model, split, L=10):
    """Mean ``t * beta`` on noise and on clean clicks, and the noise-lowest share."""
    import numpy as np

    seq, lens, _ = split.padded(L)
    kept = np.minimum(split.lengths, L)
    first = split.offsets[1:] - kept
    cols = np.arange(L)
    real = cols[None, :] < kept[:, None]
    noise = real & split.noise[np.where(real, first[:, None] + cols[None, :], 0)]
    beta = model.item_weights(seq, lens)
    both = (noise.sum(axis=1) > 0) & ((real & ~noise).sum(axis=1) > 0)
    tb = beta * lens[:, None]
    rows = both[:, None]
    lowest_noise = np.where(noise, beta, np.inf).min(axis=1)
    lowest_clean = np.where(real & ~noise, beta, np.inf).min(axis=1)
    share = float(np.mean((lowest_noise < lowest_clean)[both]))
    return float(tb[rows & noise].mean()), float(tb[rows & real & ~noise].mean()), share


def mean_std(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main(argv=None):
    args = parse_args(argv)
    ds = load_dataset("synthetic")
    l2 = "" if args.l2 is None else f", l2 = {args.l2:g}"
    print(f"{ds}; quick-start settings{l2}, {args.epochs} epochs, seeds {args.seeds}")
    runs = {}
    for seed in args.seeds:
        for variant in ("paper", "official"):
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                result = train(
                    ds,
                    out=out,
                    threads=args.threads,
                    progress=False,
                    log=lambda line: None,
                    variant=variant,
                    seed=seed,
                    epochs=args.epochs,
                    **({} if args.l2 is None else {"l2": args.l2}),
                )
                model = result.load_model().model
            sel = result.summary["selected"]
            noisy, clean, share = noise_weights(model, ds.test)
            runs[variant, seed] = {
                "recall": 100 * sel["test"]["Recall@20"],
                "mrr": 100 * sel["test"]["MRR@20"],
                "epoch": sel["epoch"],
                "noisy": noisy,
                "clean": clean,
                "share": share,
            }
            r = runs[variant, seed]
            print(
                f"seed {seed} {variant:8s} epoch {r['epoch']}: test Recall@20 {r['recall']:.2f} "
                f"MRR@20 {r['mrr']:.2f}; t*beta noise {noisy:.3f} clean {clean:.3f}; "
                f"noise lowest {share:.3f}  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )

    gains = [runs["official", s]["recall"] - runs["paper", s]["recall"] for s in args.seeds]
    figures = {}
    for variant in ("paper", "official"):
        for key in ("recall", "mrr"):
            m, s = mean_std([runs[variant, seed][key] for seed in args.seeds])
            figures[f"{variant}_{key}20_mean"], figures[f"{variant}_{key}20_std"] = m, s
    figures["gain_mean"], figures["gain_std"] = mean_std(gains)
    figures["gain_min"] = min(gains)
    for key in ("noisy", "clean", "share"):
        figures[f"official_{key}_mean"] = statistics.mean(
            [runs["official", s][key] for s in args.seeds]
        )
    print()
    for variant in ("paper", "official"):
        print(
            f"{variant:8s} test Recall@20 {figures[f'{variant}_recall20_mean']:.2f} +- "
            f"{figures[f'{variant}_recall20_std']:.2f}, MRR@20 "
            f"{figures[f'{variant}_mrr20_mean']:.2f} +- {figures[f'{variant}_mrr20_std']:.2f}"
        )
    print(
        f"gain of official over paper: {figures['gain_mean']:+.2f} +- {figures['gain_std']:.2f} "
        f"points of Recall@20 (per seed: {', '.join(f'{g:+.2f}' for g in gains)})"
    )
    print(
        f"official's t*beta: noise clicks {figures['official_noisy_mean']:.3f}, clean clicks "
        f"{figures['official_clean_mean']:.3f}; noise lowest in "
        f"{figures['official_share_mean']:.1%} of test prefixes with both"
    )
    print_figures({k: round(v, 4) for k, v in figures.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
