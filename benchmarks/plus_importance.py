"""Which importance form SR-IEM+ uses: the paper's, the released code's, or the scaled one.

Trains as the quick start does (``python -m minisriem.train`` on synthetic data:
3 epochs chosen on the validation split, then the refit), with SR-IEM+'s other
additions on (``--scale`` and ``--dropout`` of the preset), once per
importance form (``--affinity``) and seed, and reports per run:

* the refit's test Recall@20 and MRR@20;
* how the model weighs the planted noise clicks: mean ``t * beta`` over noise
  and over clean clicks of the test prefixes (1 = mean pooling) and the share
  of test prefixes in which a noise click gets the lowest weight (as
  ``benchmarks/synthetic_importance.py`` measures it);
* the mean ``|Wq|`` at the end (the paper's form: it decays towards 0 under L2
  when its gradient vanishes, tutorial step 13).

    python benchmarks/plus_importance.py --threads 1                  # seeds 0 1
    python benchmarks/plus_importance.py --forms paper official --seeds 0 1 2

The last line holds the figures as ``name=value`` pairs.
"""

import argparse
import statistics
import tempfile
import time

from _common import ROOT, print_figures  # noqa: F401 (puts the repository on sys.path)
from synthetic_importance import noise_weights

from data_tools import load_dataset
from minisriem.config import PRESETS
from minisriem.workflow import SYNTHETIC_EPOCHS, train


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    p.add_argument(
        "--forms", nargs="+", default=["paper", "official", "scaled"], help="--affinity values"
    )
    p.add_argument("--epochs", type=int, default=SYNTHETIC_EPOCHS, help="most epochs, phase 1")
    p.add_argument("--threads", type=int, default=None, help="threads for BLAS and Numba")
    return p.parse_args(argv)


def main(argv=None):
    import numpy as np

    args = parse_args(argv)
    ds = load_dataset("synthetic")
    plus = {k: v for k, v in PRESETS["sriem-plus"].items() if k != "affinity"}
    print(f"{ds}; quick-start settings with {plus}, forms {args.forms}, seeds {args.seeds}")
    runs = {}
    for seed in args.seeds:
        for form in args.forms:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                result = train(
                    ds,
                    out=out,
                    threads=args.threads,
                    progress=False,
                    log=lambda line: None,
                    seed=seed,
                    epochs=args.epochs,
                    affinity=form,
                    **plus,
                )
                model = result.load_model().model
            test = result.summary["refit"]["test"]
            noisy, clean, share = noise_weights(model, ds.test)
            r = runs[form, seed] = {
                "recall": 100 * test["Recall@20"],
                "mrr": 100 * test["MRR@20"],
                "noisy": noisy,
                "clean": clean,
                "share": share,
                "wq": float(np.abs(model.params["Wq"]).mean()),
            }
            print(
                f"seed {seed} {form:8s} E*={result.summary['selected']['epoch']}: test R@20 "
                f"{r['recall']:.2f} MRR@20 {r['mrr']:.2f}; t*beta noise {noisy:.3f} clean "
                f"{clean:.3f}; noise lowest {share:.3f}; mean |Wq| {r['wq']:.2e} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    figures = {}
    print()
    for form in args.forms:
        for key in ("recall", "mrr", "noisy", "clean", "share", "wq"):
            figures[f"{form}_{key}"] = statistics.mean(runs[form, s][key] for s in args.seeds)
        print(
            f"{form:8s} R@20 {figures[f'{form}_recall']:.2f} MRR@20 {figures[f'{form}_mrr']:.2f} "
            f"t*beta noise {figures[f'{form}_noisy']:.3f} clean {figures[f'{form}_clean']:.3f} "
            f"noise lowest {figures[f'{form}_share']:.3f} (mean over seeds)"
        )
    print_figures({k: round(v, 4) if v > 1e-3 else float(f"{v:.3g}") for k, v in figures.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
