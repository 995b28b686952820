"""What the command-line tools share: start-up, common options, help text, error lines.

Every tool (``train``, ``evaluate``, ``recommend``, ``experiments.reproduce``)
follows one pattern::

    parser = cli.parser("python -m minisriem.NAME", "what it does")
    cli.add_data_options(parser)        # --dataset/--data-dir, as needed
    cli.add_settings(group, Config, [...])  # options built from the dataclass fields
    cli.add_threads_option(parser)      # more than the cores: a warning, then the cores
    args = parser.parse_args(argv)      # ranges are checked here (exit 2)
    return cli.run(body, args.threads)  # threads limited before NumPy loads; body() imports
                                        # what it needs; DataError/ValueError/OSError ->
                                        # "error: ..." (one line), exit 2; Ctrl-C -> exit 130

The data tools have their own copy of these rules in :mod:`data_tools.cliopts`.

This module imports nothing heavy, so ``--threads`` can still limit BLAS.
"""

import argparse
import os
import sys
import warnings
from dataclasses import fields

from minisriem.config import check_value, option_name
from minisriem.threads import limit_threads


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: ...)`` after an option's help, unless the help already says it."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def fail(message):
    """Print ``error: message`` on stderr and return the exit status for bad input, 2."""
    text = " ".join(str(message).split("\n"))  # one line, whatever the message holds
    print(f"error: {text}", file=sys.stderr)
    return 2


def parser(prog, description):
    """An argument parser with the tools' help format."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )


def plain_number(text):
    """Whether ``text`` is written with ASCII characters and no ``_`` (Python reads ``1_0``
    as 10 and the Arabic-Indic ``٣`` as 3; the options accept neither)."""
    return text.isascii() and "_" not in text


def _value_parser(f):
    """argparse ``type=`` for a numeric or string field: converts, then checks the range."""
    kind = type(f.default)

    def parse(text):
        try:
            if kind is not str and not plain_number(text):
                raise ValueError(text)  # int() and float() read "1_0" and other scripts' digits
            value = kind(text) if kind is str else (int(text) if kind is int else float(text))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        try:
            return check_value(f, value)
        except ValueError as e:
            message = str(e)  # "lr (--lr) must be ...": argparse names the option itself
            raise argparse.ArgumentTypeError(message[message.find("must") :]) from None

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def add_settings(group, cls, names=None, defaults=None, flags=None):
    """Add one option per field of a settings dataclass, from the field's own definition.

    Parameters
    ----------
    group : argparse parser or argument group
    cls : :class:`~minisriem.config.Config` or :class:`~minisriem.config.TrainOptions`
    names : iterable of str, optional; only these fields (in the class's order)
    defaults : dict, optional; a default other than the field's for some names
        (``{"epochs": None}``: the dataset decides)

    flags : dict, optional; other option names for some fields
        (``{"eval_batch_size": ("--batch-size",)}``), the range staying the field's

    The option's ``dest`` is the field's name, so ``vars(args)`` can be passed
    as settings. Booleans get ``--name/--no-name``.
    """
    defaults = defaults or {}
    other_flags = flags or {}
    for f in fields(cls):
        if names is not None and f.name not in names:
            continue
        names_ = other_flags.get(f.name) or f.metadata.get("flags") or (option_name(f),)
        kw = {
            "dest": f.name,
            "default": defaults.get(f.name, f.default),
            "help": f.metadata["help"],
        }
        if isinstance(f.default, bool):
            group.add_argument(*names_, action=argparse.BooleanOptionalAction, **kw)
        elif "choices" in f.metadata:
            group.add_argument(*names_, choices=f.metadata["choices"], **kw)
        else:
            group.add_argument(*names_, type=_value_parser(f), **kw)


def given_settings(args, cls):
    """``{name: value}`` of the fields of ``cls`` that ``args`` holds and that are not None."""
    return {
        f.name: getattr(args, f.name)
        for f in fields(cls)
        if getattr(args, f.name, None) is not None
    }


def _threads(text):
    try:
        if not plain_number(text):
            raise ValueError(text)
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    cores = os.cpu_count() or 1
    if n > cores:
        print(
            f"warning: --threads {n} is more than this machine's {cores} cores; using {cores}",
            file=sys.stderr,
        )
        n = cores
    return n


def add_threads_option(p):
    p.add_argument(
        "--threads",
        type=_threads,
        default=None,
        help="threads for BLAS and Numba (default: all cores; more than the cores: the cores)",
    )


def add_data_options(p, dataset_default=None, dataset_help=None):
    """``--dataset`` and ``--data-dir``, as every tool that reads data names them."""
    p.add_argument(
        "--dataset",
        default=dataset_default,
        help=dataset_help or "dataset name, or a prepared dataset.npz / its folder",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding DATASET/ (default: $MINISRIEM_DATA, else ./data)",
    )


def add_model_option(p):
    p.add_argument("--model", required=True, help="a model.npz or the run directory holding it")


def check_output_path(output, *inputs):
    """Refuse an output file that is one of the inputs (writing it would destroy the input).

    Raises
    ------
    ValueError
        Naming both and the fix.
    """
    if output is None or not os.path.exists(output):
        return
    if os.path.isdir(output):
        raise ValueError(f"{output} is a folder: give a file name to write")
    for given in inputs:
        if given is not None and os.path.exists(given) and os.path.samefile(output, given):
            raise ValueError(f"{output} is also an input ({given}): write to another file")


def run(body, threads=None):
    """Start a command: limit threads (before NumPy loads), run ``body()``, map errors.

    Parameters
    ----------
    body : callable returning the exit status; it imports what it needs itself
    threads : int or None, from ``--threads``

    Returns
    -------
    int, the exit status: ``body``'s; 2 with ``error: ...`` for bad input
    (``DataError``, ``ValueError``, ``OSError``); 130 on Ctrl-C
    """
    try:
        if threads is not None:
            limit_threads(threads)
        from data_tools import DataError  # NumPy loads here, after limit_threads
        from data_tools.errors import one_line_warning

        warnings.formatwarning = one_line_warning

        try:
            return body()
        except (DataError, ValueError, OSError) as e:
            return fail(e)
        except MemoryError:
            return fail("out of memory: use smaller settings (--d, --batch-size) or data")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
