"""Prepare a raw click log with the SR-GNN protocol.

Usage::

    python -m data_tools.preprocess --dataset diginetica --input train-item-views.csv --out DIR
    python -m data_tools.preprocess --dataset yoochoose --input yoochoose-clicks.dat --out DIR
    python -m data_tools.preprocess --dataset custom --input clicks.csv --out DIR \\
        --session-col session_id --item-col item_id --time-col timestamp --test-days 7

``diginetica`` and ``custom`` write ``DIR/dataset.npz`` and ``DIR/dataset.json``;
``yoochoose`` writes both fractions, into ``DIR/yoochoose1_64/`` and
``DIR/yoochoose1_4/``. With ``--format srgnn`` the same folders receive
SR-GNN pickles (``train.txt``, ``test.txt``, ``all_train_seq.txt``) instead.
Expected DIGINETICA figures: 982,961 clicks, 719,470 training and 60,858
test examples, 43,097 items, average length 5.125.
"""

import argparse
import os
import sys

from .cliopts import add_custom_log_options, check_test_days, run
from .fileio import fingerprint, regular_input
from .protocol import run_protocol, to_dataset
from .readers import read_custom, read_diginetica, read_yoochoose
from .srgnn import export_srgnn

YOOCHOOSE_FRACTIONS = {"yoochoose1_64": 64, "yoochoose1_4": 4}


def prepare_diginetica(path):
    """Run the protocol on ``train-item-views.csv``.

    Parameters
    ----------
    path : str

    Returns
    -------
    Dataset
    """
    source = {"source": fingerprint([path]), "input_format": "diginetica", "test_days": 7}
    prepared = run_protocol(read_diginetica(path), test_days=7, path=path)
    return to_dataset("diginetica", prepared, source)


def prepare_yoochoose(path, names=tuple(YOOCHOOSE_FRACTIONS), keep_times=False):
    """Run the protocol on ``yoochoose-clicks.dat`` and cut the fractions.

    Parameters
    ----------
    path : str
    names : tuple of str
        Which of ``"yoochoose1_64"``, ``"yoochoose1_4"`` to build.
    keep_times : bool
        Keep each click's timestamp (to the second) in the datasets.

    Returns
    -------
    dict of str to Dataset
        Both fractions share the test set and the item numbering.
    """
    source = {"source": fingerprint([path]), "input_format": "yoochoose", "test_days": 1}
    prepared = run_protocol(read_yoochoose(path), test_days=1, path=path, keep_times=keep_times)
    return {n: to_dataset(n, prepared, source, YOOCHOOSE_FRACTIONS[n]) for n in names}


def prepare_custom(path, test_days=7, name="custom", keep_times=False, **columns):
    """Run the protocol on a user's click log.

    Parameters
    ----------
    path : str
    test_days : float
        The last ``test_days`` days are the test period.
    name : str
    keep_times : bool
        Keep each click's time (to the second) in the dataset.
    **columns
        ``session_col``, ``item_col``, ``time_col``, ``delimiter``,
        ``time_format``: see :func:`data_tools.readers.read_custom`.

    Returns
    -------
    Dataset
    """
    test_days = check_test_days(test_days)
    source = {
        "source": fingerprint([path]),
        "input_format": "custom",
        "test_days": test_days,
        "columns": columns,
    }
    clicks = read_custom(path, **columns)
    prepared = run_protocol(clicks, test_days=test_days, path=path, keep_times=keep_times)
    return to_dataset(name, prepared, source)


def write(ds, folder, fmt):
    """Write a dataset in our format (``"npz"``) or as SR-GNN pickles (``"srgnn"``)."""
    if fmt == "srgnn":
        export_srgnn(ds, folder)
    else:
        ds.save(folder)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m data_tools.preprocess",
        description="Prepare a raw click log with the SR-GNN protocol.",
    )
    p.add_argument("--dataset", required=True, choices=["diginetica", "yoochoose", "custom"])
    p.add_argument("--input", required=True, help="the raw file (a pipe is copied once)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--format",
        default="npz",
        choices=["npz", "srgnn"],
        help="npz: our arrays (default); srgnn: train.txt, test.txt, all_train_seq.txt",
    )
    add_custom_log_options(p.add_argument_group("custom logs"), test_days_default=7.0)
    args = p.parse_args(argv)
    return run(lambda: _prepare(args))


def _prepare(args):
    with regular_input(args.input) as source:
        if args.dataset == "diginetica":
            outputs = {args.out: prepare_diginetica(source)}
        elif args.dataset == "yoochoose":
            fractions = prepare_yoochoose(source)
            outputs = {os.path.join(args.out, n): ds for n, ds in fractions.items()}
        else:
            ds = prepare_custom(
                source,
                test_days=args.test_days,
                session_col=args.session_col,
                item_col=args.item_col,
                time_col=args.time_col,
                delimiter=args.delimiter,
                time_format=args.time_format,
            )
            outputs = {args.out: ds}
    for folder, ds in outputs.items():
        write(ds, folder, args.format)
        s = ds.stats
        print(
            f"{folder}: {s['clicks']:,} clicks, {s['train_examples']:,} train / "
            f"{s['test_examples']:,} test examples, {s['items']:,} items "
            f"(n = {s['n_items']:,}), average length {s['avg_length']:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
