"""Convert a dataset between the field's formats.

Usage::

    python -m data_tools.convert --from FORMAT --input PATH --to FORMAT --out FOLDER [--name NAME]

``--from``:

``srgnn``        a folder of SR-GNN pickles: ``train.txt``, ``test.txt`` (and
                 ``all_train_seq.txt`` when there)
``recbole``      RecBole atomic files: ``NAME.train.inter`` + ``NAME.test.inter``
                 (pre-split, read as examples) or ``NAME.inter`` (a raw
                 session log, prepared with our SR-GNN protocol); PATH is
                 one of the files or the folder holding them
``session-rec``  ``PREFIX_train_full.txt`` + ``PREFIX_test.txt``; PATH is one
                 of them, the path PREFIX, or the folder holding them
``raw``          a raw click log prepared with the SR-GNN protocol
                 (``--raw-format diginetica|yoochoose1_64|yoochoose1_4|custom``;
                 custom logs take the column options of ``data_tools.preprocess``)
``npz``          our prepared ``dataset.npz`` or its folder

``--to``: ``npz`` (our format: train with ``--dataset FOLDER``), ``srgnn``,
``recbole`` (pre-split: ``NAME.train.inter``, ``NAME.test.inter``) or
``session-rec`` (``NAME_train_full.txt``, ``NAME_test.txt``; the clicks' times when
they are known, i.e. read from session-rec files, a RecBole ``.inter`` or a raw log
with timestamps, else synthetic ones).

Items read from RecBole or session-rec files are numbered 1..n by first
appearance, training data first (for files written from SR-GNN pickles,
the pickles' own ids); ``--keep-ids`` keeps integer item ids as they are,
which a round trip of pickles with unused ids (YOOCHOOSE) needs to keep
the same ``n``.

Every run prints the examples' counts and two digests: ``ids`` (sha256 of
the examples in our ids) and ``items`` (the same in the items' own names,
equal across numberings). A round trip that gives identical examples gives
identical digests.
"""

import argparse
import glob
import hashlib
import os
import sys

import numpy as np

from .cliopts import add_custom_log_options, run
from .dataset import ARRAYS, load_prepared
from .errors import DataError
from .fileio import regular_input
from .recbole import (
    RAW_SUFFIX,
    TEST_SUFFIX,
    TRAIN_SUFFIX,
    export_recbole,
    prepare_recbole_inter,
    read_recbole_split,
)
from .sessionrec import TEST_SUFFIX as SR_TEST
from .sessionrec import TRAIN_SUFFIX as SR_TRAIN
from .sessionrec import export_sessionrec, read_sessionrec
from .srgnn import export_srgnn, import_srgnn

FROM = ("srgnn", "recbole", "session-rec", "raw", "npz")
TO = ("npz", "srgnn", "recbole", "session-rec")
RAW_FORMATS = ("custom", "diginetica", "yoochoose1_64", "yoochoose1_4")


def examples_digest(ds, labels=False):
    """sha256 of a dataset's training and test examples (prefixes and targets, in order).

    Parameters
    ----------
    ds : Dataset
    labels : bool
        False: the examples in our ids 1..n (for SR-GNN pickles, the ids in
        the files). True: in the items' own names (tokens or raw ids), so
        that two numberings of the same data give the same digest.

    Returns
    -------
    str
        64 hex digits.
    """
    if labels:
        names = ds.item_labels()
        code = np.array(
            [
                int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
                for s in names
            ],
            dtype=np.uint64,
        )
    else:
        code = np.arange(ds.n_items + 1, dtype=np.uint64)
    h = hashlib.sha256()
    for split in (ds.train, ds.test):
        h.update(np.int64(len(split)).tobytes())
        h.update(split.offsets.astype("<i8").tobytes())
        h.update(code[split.items].astype("<u8").tobytes())
        h.update(code[split.targets].astype("<u8").tobytes())
    return h.hexdigest()


def _find_pair(path, first_suffix, second_suffix, what):
    """``(first, second, name)`` for a file of a pair, a prefix, or a folder holding one pair."""
    for suffix in (first_suffix, second_suffix):
        if path.endswith(suffix) and os.path.isfile(path):
            stem = path[: -len(suffix)]
            break
    else:
        if os.path.isdir(path):
            stems = sorted(
                p[: -len(first_suffix)] for p in glob.glob(os.path.join(path, "*" + first_suffix))
            )
            if len(stems) != 1:
                found = "none" if not stems else ", ".join(os.path.basename(s) for s in stems)
                raise DataError(
                    f"{path}: expected one {what} pair (*{first_suffix} and *{second_suffix}), "
                    f"found {found}; give one file as --input"
                )
            stem = stems[0]
        else:
            stem = path
    first, second = stem + first_suffix, stem + second_suffix
    for p in (first, second):
        if not os.path.isfile(p):
            raise DataError(
                f"{p}: file not found; {what} needs *{first_suffix} and *{second_suffix}"
            )
    return first, second, os.path.basename(stem)


def read_input(
    fmt, path, name=None, keep_ids=False, raw_format="custom", test_days=None, columns=None
):
    """Read a dataset in any supported format.

    Parameters
    ----------
    fmt : one of :data:`FROM`
    path : str
    name : str, optional
        The dataset's name (default: from the file or folder name).
    keep_ids : bool
        For recbole and session-rec files: keep integer item ids.
    raw_format : one of :data:`RAW_FORMATS`
        For ``fmt == "raw"``.
    test_days : float, optional
        Length of the test period for logs run through the protocol
        (default: 7; YOOCHOOSE 1).
    columns : dict, optional
        Custom log options (``session_col``, ``item_col``, ``time_col``,
        ``delimiter``, ``time_format``).

    Returns
    -------
    Dataset
    """
    if fmt == "srgnn":
        if not os.path.isdir(path):
            raise DataError(f"{path}: expected the folder holding SR-GNN's train.txt and test.txt")
        return import_srgnn(path, name or os.path.basename(os.path.abspath(path)))
    if fmt == "recbole":
        if path.endswith(RAW_SUFFIX) and not path.endswith((TRAIN_SUFFIX, TEST_SUFFIX)):
            return prepare_recbole_inter(path, 7 if test_days is None else test_days, name, True)
        if os.path.isdir(path) and not glob.glob(os.path.join(path, "*" + TRAIN_SUFFIX)):
            raws = sorted(glob.glob(os.path.join(path, "*" + RAW_SUFFIX)))
            if len(raws) == 1:
                days = 7 if test_days is None else test_days
                return prepare_recbole_inter(raws[0], days, name, keep_times=True)
        train, test, stem = _find_pair(path, TRAIN_SUFFIX, TEST_SUFFIX, "RecBole's pre-split form")
        return read_recbole_split(train, test, name or stem, keep_ids)
    if fmt == "session-rec":
        train, test, stem = _find_pair(path, SR_TRAIN, SR_TEST, "session-rec's split")
        return read_sessionrec(train, test, name or stem, keep_ids)
    if fmt == "npz":
        if not (os.path.isfile(path) or os.path.isfile(os.path.join(path, ARRAYS))):
            raise DataError(f"{path}: expected a prepared dataset.npz or the folder holding it")
        return load_prepared(path)
    if fmt == "raw":
        from .preprocess import prepare_custom, prepare_diginetica, prepare_yoochoose

        if raw_format == "diginetica":
            ds = prepare_diginetica(path)
        elif raw_format.startswith("yoochoose"):
            ds = prepare_yoochoose(path, names=(raw_format,), keep_times=True)[raw_format]
        else:
            days = 7 if test_days is None else test_days
            ds = prepare_custom(path, days, keep_times=True, **(columns or {}))
        if name:
            ds.name = name
        return ds
    raise ValueError(f"unknown input format {fmt!r}; use one of {', '.join(FROM)}")


def write_output(ds, fmt, folder, name=None, report=None):
    """Write a dataset in one of :data:`TO`; returns the paths written.

    ``report``, when given, receives notes (for session-rec: which times were written).
    """
    name = name or ds.name
    if fmt == "npz":
        ds.save(folder)
        return [os.path.join(folder, ARRAYS)]
    if fmt == "srgnn":
        export_srgnn(ds, folder)
        return [os.path.join(folder, f) for f in ("train.txt", "test.txt", "all_train_seq.txt")]
    if fmt == "recbole":
        return export_recbole(ds, folder, name)
    if fmt == "session-rec":
        return export_sessionrec(ds, folder, name, report=report)
    raise ValueError(f"unknown output format {fmt!r}; use one of {', '.join(TO)}")


def describe(ds):
    """One line: counts and both digests."""
    return (
        f"{ds.name}: {len(ds.train):,} training examples "
        f"({ds.stats['train_sessions']:,} sessions), "
        f"{len(ds.test):,} test examples, n = {ds.n_items:,} items; sha256 ids "
        f"{examples_digest(ds)[:16]}, items {examples_digest(ds, labels=True)[:16]}"
    )


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m data_tools.convert",
        description="Convert a dataset between SR-GNN pickles, RecBole atomic files, "
        "session-rec files, raw click logs and our npz format.",
    )
    p.add_argument("--from", dest="source", required=True, choices=FROM)
    p.add_argument("--input", required=True, help="file, prefix or folder (see the module help)")
    p.add_argument("--to", required=True, choices=TO)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", default=None, help="dataset name (default: from the input's name)")
    p.add_argument(
        "--keep-ids",
        action="store_true",
        help="recbole/session-rec input: keep integer item ids instead of numbering items 1..n",
    )
    g = p.add_argument_group("logs run through the SR-GNN protocol (--from raw, a RecBole .inter)")
    g.add_argument("--raw-format", default="custom", choices=RAW_FORMATS)
    add_custom_log_options(g, test_days_default=None)
    args = p.parse_args(argv)
    return run(lambda: _convert(args))


def _convert(args):
    columns = {
        "session_col": args.session_col,
        "item_col": args.item_col,
        "time_col": args.time_col,
        "delimiter": args.delimiter,
        "time_format": args.time_format,
    }
    with regular_input(args.input) as source:
        ds = read_input(
            args.source, source, args.name, args.keep_ids, args.raw_format, args.test_days, columns
        )
    print(f"read {args.source} {args.input}\n  {describe(ds)}")
    notes = []
    paths = write_output(ds, args.to, args.out, args.name, report=notes.append)
    print(f"wrote {args.to}: " + ", ".join(paths))
    for note in notes:
        print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
