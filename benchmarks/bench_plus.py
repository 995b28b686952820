"""Training speed of SR-IEM+ relative to SR-IEM, side by side, at DIGINETICA's shape.

Each model (SR-IEM, each addition of SR-IEM+ alone, and SR-IEM+ with all of
them) is built with the same backend and does, in every round, ``--steps``
trainer steps (``loss_and_grads`` with a step for the dropout masks, then
``Adam.step``) on the same batches; the rounds interleave the models, so a
change in the machine's load falls on all of them alike. The median round's
milliseconds per step are reported, and each model's ratio to SR-IEM: the
median over rounds of the ratio within a round (a round's models ran within
seconds of each other, so a load change between rounds cancels).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \\
        python benchmarks/bench_plus.py --steps 5 --rounds 20

The last line holds the figures as ``name=value`` pairs.
"""

import argparse
import time

from _common import N_TRAIN, environment, get_data, median, print_figures

from minisriem.config import PRESETS
from minisriem.model import SRIEM
from minisriem.optim import Adam

PLUS = PRESETS["sriem-plus"]
MODELS = {
    "sriem": {},
    "norm-only": {"scale": PLUS["scale"]},
    "dropout-only": {"dropout": PLUS["dropout"]},
    "affinity-only": {"affinity": PLUS["affinity"]},
    "sriem-plus": dict(PLUS),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=5, help="steps per model and round")
    p.add_argument("--rounds", type=int, default=20, help="rounds; medians are reported")
    p.add_argument("--backend", choices=["numba", "numpy"], default="numba")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data", default=None, help=".npz with train_sessions/lengths/targets")
    p.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}"
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    seq, lens, targets, n_items = get_data(args.data, "train", N_TRAIN)
    B = args.batch_size
    print(f"SR-IEM+ training speed: backend={args.backend} n_items={n_items} batch={B}")
    print("  " + " ".join(f"{k}={v}" for k, v in environment().items()))
    trainers = {}
    for name in names:
        model = SRIEM(n_items, backend=args.backend, seed=0, **MODELS[name])
        trainers[name] = (model, Adam(model.params, lr=1e-3, l2=1e-5, backend=args.backend))
    order = [list(range(k * B, (k + 1) * B)) for k in range(args.steps + 1)]

    def step(name, k):
        model, opt = trainers[name]
        idx = order[k]
        _, grads = model.loss_and_grads(seq[idx], lens[idx], targets[idx], (0, k))
        opt.step(model.params, grads)

    for name in names:  # warm up: compile or load the kernels, allocate the buffers
        step(name, args.steps)
    ms = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names:
            t0 = time.perf_counter()
            for k in range(args.steps):
                step(name, k)
            ms[name].append(1e3 * (time.perf_counter() - t0) / args.steps)
        print(f"  round {r + 1}: " + ", ".join(f"{n} {ms[n][-1]:.1f}" for n in names) + " ms/step")
    figures = {"backend": args.backend}
    base = ms[names[0]]
    for name in names:  # the ratio within each round, then the median over rounds
        figures[f"{name}_ms"] = round(median(ms[name]), 1)
        ratios = [t / b for t, b in zip(ms[name], base, strict=True)]
        figures[f"{name}_vs_{names[0]}"] = round(median(ratios), 3)
    print_figures(figures)


if __name__ == "__main__":
    main()
