"""Train SR-IEM from the command line: ``python -m minisriem.train [options]``.

A thin wrapper over :func:`minisriem.workflow.train`. NumPy is imported only
after the options are read, so ``--threads`` can limit BLAS threads too.

Exit status: 0 when the run finished or stopped early, 2 on bad input or a
diverged loss (``error: ...`` on stderr), 128 + the signal number when it was
interrupted (the checkpoint is saved; continue with ``--resume RUN_DIR``).
"""

import argparse
import sys

from minisriem.cli import HelpFormatter, fail, limit_threads
from minisriem.config import Config

DATASETS = ("synthetic", "diginetica", "yoochoose1_64", "yoochoose1_4", "custom")
IMPORTANCE = ("iem", "stamp", "sat")


def build_parser():
    """The argument parser; every default comes from :class:`~minisriem.config.Config`."""
    c = Config()
    p = argparse.ArgumentParser(
        prog="python -m minisriem.train",
        description=(
            "Train SR-IEM. The epoch is chosen on a validation split (the most recent "
            "training sessions) and the test figures of that epoch are reported, beside "
            "the authors' best-test-over-epochs figures and a popularity baseline. "
            "Everything is written to a run directory."
        ),
        formatter_class=HelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="synthetic",
        help=f"dataset name ({', '.join(DATASETS)}) or a prepared dataset.npz / its folder",
    )
    data.add_argument(
        "--data-dir",
        default=None,
        help="folder holding DATASET/ (default: $MINISRIEM_DATA, else ./data)",
    )
    data.add_argument(
        "--valid-fraction",
        type=float,
        default=0.1,
        help="share of the most recent training sessions held out to choose the epoch; "
        "0 trains on all and keeps the last epoch",
    )

    model = p.add_argument_group("model")
    model.add_argument("--d", type=int, default=c.d, help="embedding size")
    model.add_argument("--l", type=int, default=c.l, help="query/key size (paper variant)")
    model.add_argument("--L", type=int, default=c.L, help="most recent items of a session read")
    model.add_argument(
        "--variant",
        choices=("paper", "official"),
        default=c.variant,
        help="the paper's equations or the authors' released code (model only)",
    )
    model.add_argument(
        "--importance", choices=IMPORTANCE, default=c.importance, help="importance module"
    )

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--lr", type=float, default=c.lr, help="Adam learning rate")
    opt.add_argument(
        "--lr-decay", type=float, default=c.lr_decay, help="learning-rate factor per step"
    )
    opt.add_argument(
        "--lr-step", type=int, default=c.lr_step, help="epochs between learning-rate decays"
    )
    opt.add_argument("--l2", type=float, default=c.l2, help="L2 penalty (coupled weight decay)")
    opt.add_argument("--batch-size", type=int, default=c.batch_size, help="training batch size")
    opt.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shuffle the training examples every epoch (the authors' code does not)",
    )
    opt.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="most epochs to run (default: 10; 3 for synthetic, about a minute on 2 cores)",
    )
    opt.add_argument(
        "--patience",
        type=int,
        default=3,
        help="stop after this many epochs without a better validation Recall@20",
    )
    opt.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")

    run = p.add_argument_group("run")
    run.add_argument("--out", default=None, help="run directory (default: runs/DATASET-TIME/)")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue this run with its own settings (config.json); other model, "
        "optimisation and data options are ignored",
    )
    run.add_argument(
        "--threads", type=int, default=None, help="threads for BLAS and Numba (default: all)"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)
    return p


def warn_ignored_on_resume(args):
    """Say which settings a ``--resume`` ignores (the run keeps its config.json)."""
    from dataclasses import fields

    from minisriem.trainer import TrainOptions  # imports NumPy: after limit_threads

    defaults = build_parser().parse_args([])
    names = [f.name for f in fields(Config) + fields(TrainOptions) if hasattr(args, f.name)]
    given = [name for name in names if getattr(args, name) != getattr(defaults, name)]
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        print(
            f"warning: --resume continues the run with its own settings; ignored: {options}",
            file=sys.stderr,
        )


def main(argv=None):
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None:
            limit_threads(args.threads)
        from data_tools import DataError  # NumPy loads here, after limit_threads
        from minisriem.workflow import train
    except ValueError as e:
        return fail(e)

    if args.resume is not None:
        warn_ignored_on_resume(args)
    settings = {}
    if args.resume is None:
        settings = dict(
            d=args.d,
            l=args.l,
            L=args.L,
            variant=args.variant,
            importance=args.importance,
            lr=args.lr,
            lr_decay=args.lr_decay,
            lr_step=args.lr_step,
            l2=args.l2,
            batch_size=args.batch_size,
            shuffle=args.shuffle,
            patience=args.patience,
            seed=args.seed,
            valid_fraction=args.valid_fraction,
        )
        if args.epochs is not None:
            settings["epochs"] = args.epochs
    try:
        result = train(
            args.dataset,
            data_dir=args.data_dir,
            out=args.out,
            resume=args.resume,
            threads=args.threads,
            progress=not args.no_progress,
            stop_after_steps=args.stop_after_steps,
            **settings,
        )
    except (DataError, ValueError, OSError) as e:
        return fail(e)
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130
    if result.status == "interrupted":
        print(
            f"interrupted: checkpoint saved in {result.run_dir}; continue with "
            f"python -m minisriem.train --resume {result.run_dir}",
            file=sys.stderr,
        )
        return 128 + int(result.signal)
    print(f"run directory: {result.run_dir} (model.npz is the selected epoch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
