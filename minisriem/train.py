"""Train SR-IEM from the command line: ``python -m minisriem.train [options]``.

A thin wrapper over :func:`minisriem.workflow.train`. Every model and
training option is built from the fields of :class:`~minisriem.config.Config`
and :class:`~minisriem.config.TrainOptions` (name, type, default, range,
help), so a default is written once. NumPy is imported only after the
options are read, so ``--threads`` can limit BLAS threads too.

Exit status: 0 when the run finished or stopped early, 2 on bad input or a
diverged loss (``error: ...`` on stderr), 128 + the signal number when it was
interrupted (the checkpoint is saved; continue with ``--resume RUN_DIR``).
"""

import argparse
import sys
from dataclasses import fields

from minisriem import cli
from minisriem.config import PRESETS, Config, Limits, TrainOptions, flag_words, option_name

DATASETS = ("synthetic", "diginetica", "yoochoose1_64", "yoochoose1_4", "custom")
FIELDS = {f.name: f for f in fields(Config) + fields(TrainOptions)}


def build_parser():
    """The argument parser; every default comes from the settings' dataclasses."""
    p = cli.parser(
        "python -m minisriem.train",
        "Train SR-IEM. The number of epochs is chosen on a validation split (the most "
        "recent training sessions), then a fresh model is trained on every training "
        "session for that many epochs (refit) and its test figures are reported, beside "
        "the validation-selected epoch's, the authors' best-test-over-epochs figures and "
        "a popularity baseline. Everything is written to a run directory.",
    )
    data = p.add_argument_group("data")
    cli.add_data_options(
        data,
        dataset_default="synthetic",
        dataset_help=f"dataset name ({', '.join(DATASETS)}) or a prepared dataset.npz / its folder",
    )
    cli.add_settings(data, TrainOptions, ["valid_fraction"])
    cli.add_settings(
        p.add_argument_group("model"), Config, ["d", "l", "L", "variant", "importance"]
    )
    plus = p.add_argument_group(
        "SR-IEM+ (each addition off by default; --preset sriem-plus turns on the recommended set)"
    )
    plus.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="a named set of settings; options given explicitly override it. sriem-plus: "
        + " ".join(
            word
            for k, v in PRESETS["sriem-plus"].items()
            for word in flag_words(option_name(FIELDS[k]), v)
        ),
    )
    cli.add_settings(plus, Config, ["scale", "dropout", "affinity"])
    opt = p.add_argument_group("optimisation")
    cli.add_settings(opt, Config, ["lr", "lr_decay", "lr_step", "l2", "batch_size"])
    cli.add_settings(
        opt,
        TrainOptions,
        ["shuffle", "epochs", "patience", "seed", "refit"],
        defaults={"epochs": None},
    )

    run = p.add_argument_group("run")
    run.add_argument("--out", default=None, help="run directory (default: runs/DATASET-TIME/)")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue this run with its own settings (config.json); other model, "
        "optimisation and data options are ignored",
    )
    cli.add_threads_option(run)
    cli.add_settings(run, Limits)
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)
    return p


def apply_preset(args, argv):
    """Fill in ``args.preset``'s settings, except those given explicitly in ``argv``.

    An option is explicit when parsing ``argv`` again with every default
    replaced by a marker yields something other than the marker.
    """
    if args.preset is None:
        return args
    unset = object()
    probe = build_parser()
    probe.set_defaults(**{name: unset for name in vars(args)})
    given = probe.parse_args(argv)
    for name, value in PRESETS[args.preset].items():
        if getattr(given, name) is unset:
            setattr(args, name, value)
    return args


def settings_given(args):
    """The model and training settings of the command line, as keyword settings."""
    return {**cli.given_settings(args, Config), **cli.given_settings(args, TrainOptions)}


def warn_ignored_on_resume(args):
    """Say which settings a ``--resume`` ignores (the run keeps its config.json)."""
    defaults = settings_given(build_parser().parse_args([]))
    given = [name for name, value in settings_given(args).items() if defaults.get(name) != value]
    if given:
        flags = {f.name: option_name(f) for f in fields(Config) + fields(TrainOptions)}
        options = ", ".join(flags[name] for name in given)
        print(
            f"warning: --resume continues the run with its own settings; ignored: {options}",
            file=sys.stderr,
        )


def main(argv=None):
    """Run the command; returns the exit status."""
    args = apply_preset(build_parser().parse_args(argv), argv)

    def body():
        from minisriem.workflow import train

        if args.resume is not None:
            warn_ignored_on_resume(args)
        settings = {} if args.resume is not None else settings_given(args)
        try:
            result = train(
                args.dataset,
                data_dir=args.data_dir,
                out=args.out,
                resume=args.resume,
                threads=args.threads,
                progress=not args.no_progress,
                stop_after_steps=args.stop_after_steps,
                max_memory_gb=args.max_memory_gb,
                **settings,
            )
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
        print(f"run directory: {result.run_dir} ({result.model_note()})")
        return 0

    return cli.run(body, args.threads)


if __name__ == "__main__":
    sys.exit(main())
