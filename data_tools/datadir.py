"""Where datasets live, and where their prepared arrays are cached.

One rule, used by every command: a dataset named ``NAME`` is the folder
``DATA_DIR/NAME/``, where ``DATA_DIR`` is the ``--data-dir`` argument, else
the environment variable ``MINISRIEM_DATA``, else ``./data``. The first of
these that the folder holds is used:

1. SR-GNN pickles ``train.txt``, ``test.txt`` (and ``all_train_seq.txt``
   when there), for **any** ``NAME``: ``tmall``, ``nowplaying``,
   ``retailrocket``... as published by later papers' code (GCE-GNN,
   S2-DHCN). The number of items ``n`` is the largest item id found (ids
   run 1..n as in SR-GNN, some possibly unused).
2. For the names below, the raw file of the table.
3. RecBole's pre-split ``NAME.train.inter`` and ``NAME.test.inter`` (a
   ``NAME.valid.inter`` beside them joins the training examples), or
   its session log ``NAME.inter`` (prepared with the protocol, the last 7
   days for testing); see :mod:`data_tools.recbole`.
4. session-rec's ``NAME_train_full.txt`` and ``NAME_test.txt``; see
   :mod:`data_tools.sessionrec`.

=================  ========================  =======================================
NAME               raw file                  public source
=================  ========================  =======================================
``diginetica``     ``train-item-views.csv``  CIKM Cup 2016 (DIGINETICA)
``yoochoose1_64``  ``yoochoose-clicks.dat``  RecSys Challenge 2015 (YOOCHOOSE)
``yoochoose1_4``   ``yoochoose-clicks.dat``  RecSys Challenge 2015 (YOOCHOOSE)
``custom``         ``clicks.csv``            your own click log
=================  ========================  =======================================

A custom log ``DATA_DIR/custom/clicks.csv`` is comma-separated with the
header columns ``session_id,item_id,timestamp`` (integer ids; a time as
Unix seconds or ISO ``YYYY-MM-DD[ HH:MM:SS]``) and the last 7 days are the
test period. A ``DATA_DIR/custom/custom.json`` can change any of that, e.g.
``{"file": "log.tsv", "delimiter": "\\t", "session_col": "sid",
"item_col": "iid", "time_col": "ts", "time_format": "unix_ms",
"test_days": 1}``.

Prepared arrays go to ``DATA_DIR/NAME/prepared/``, or, when that folder
cannot be written or is marked read-only (no write permission bits), to
``$XDG_CACHE_HOME/minisriem/NAME/`` (default ``~/.cache/minisriem/NAME/``).
They are rebuilt when a source file changes: its size, modification time or
content (a sha256 of its bytes, computed as it is read in blocks).
"""

import json
import os

from .cliopts import check_test_days, check_time_format
from .errors import DataError
from .fileio import check_regular

RAW_FILES = {
    "diginetica": "train-item-views.csv",
    "yoochoose1_64": "yoochoose-clicks.dat",
    "yoochoose1_4": "yoochoose-clicks.dat",
    "custom": "clicks.csv",
}
PUBLIC_SOURCES = {
    "diginetica": (
        "the CIKM Cup 2016 DIGINETICA data (train-item-views.csv, from "
        "https://competitions.codalab.org/competitions/11161)"
    ),
    "yoochoose1_64": (
        "the RecSys Challenge 2015 YOOCHOOSE data (yoochoose-clicks.dat, from "
        "https://recsys.acm.org/recsys15/challenge/)"
    ),
    "yoochoose1_4": (
        "the RecSys Challenge 2015 YOOCHOOSE data (yoochoose-clicks.dat, from "
        "https://recsys.acm.org/recsys15/challenge/)"
    ),
}
CUSTOM_OPTIONS = ("session_col", "item_col", "time_col", "delimiter", "time_format")
SRGNN_FILES = ("train.txt", "test.txt")


def resolve_data_dir(data_dir=None):
    """The data folder: the argument, else ``$MINISRIEM_DATA``, else ``./data``.

    Parameters
    ----------
    data_dir : str, optional

    Returns
    -------
    str
        An absolute path (it need not exist).
    """
    chosen = data_dir or os.environ.get("MINISRIEM_DATA") or "data"
    return os.path.abspath(os.path.expanduser(chosen))


def user_cache_dir(name):
    """``$XDG_CACHE_HOME/minisriem/NAME`` (default ``~/.cache/minisriem/NAME``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "minisriem", name)


def writable(folder):
    """Whether we may write into ``folder`` (or create it).

    A folder whose write permission bits are all off counts as read-only
    even for a user, such as root, whom the system would let write.
    """
    while not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    mode = os.stat(folder).st_mode
    return os.path.isdir(folder) and os.access(folder, os.W_OK) and bool(mode & 0o222)


def find_source(name, folder):
    """What is in a dataset folder.

    Parameters
    ----------
    name : str
        A name in ``RAW_FILES``, or any folder name.
    folder : str
        ``DATA_DIR/NAME``.

    Returns
    -------
    kind : {"srgnn", "raw", "recbole", "recbole-inter", "session-rec"}
    paths : list of str
        The source files (for the fingerprint).
    options : dict
        For ``custom``: the reader options and ``test_days``.
    """
    pickles = [os.path.join(folder, f) for f in SRGNN_FILES]
    if all(os.path.isfile(p) for p in pickles):
        extra = os.path.join(folder, "all_train_seq.txt")
        return "srgnn", pickles + ([extra] if os.path.isfile(extra) else []), {}
    if name not in RAW_FILES or not os.path.isfile(os.path.join(folder, RAW_FILES[name])):
        exchange = _exchange_files(name, folder)
        if exchange is not None:
            return (*exchange, {})
    if name not in RAW_FILES:
        raise DataError(
            f"no data for {name!r}: {folder}/ holds none of SR-GNN's train.txt and test.txt, "
            f"RecBole's {name}.train.inter and {name}.test.inter or {name}.inter, or "
            f"session-rec's {name}_train_full.txt and {name}_test.txt; the data folder is "
            "--data-dir, else $MINISRIEM_DATA, else ./data"
        )
    options, paths = {}, []
    raw = os.path.join(folder, RAW_FILES[name])
    if name == "custom":
        config = os.path.join(folder, "custom.json")
        if os.path.isfile(config):
            options = _custom_options(config)
            paths.append(config)
            raw = os.path.join(folder, options.pop("file", RAW_FILES[name]))
    if os.path.isfile(raw):
        return "raw", [raw, *paths], options
    if name == "custom":
        raise DataError(
            f"no data for 'custom': put your click log at {raw} (columns session_id,item_id,"
            f"timestamp) or name another file and columns in {os.path.join(folder, 'custom.json')}"
        )
    raise DataError(
        f"no data for {name!r}: put {RAW_FILES[name]} (or SR-GNN's train.txt and test.txt) "
        f"in {folder}/; it is {PUBLIC_SOURCES[name]}; the data folder is --data-dir, "
        "else $MINISRIEM_DATA, else ./data"
    )


def _exchange_files(name, folder):
    """``(kind, paths)`` for RecBole or session-rec files named after the dataset, or None."""
    candidates = (
        ("recbole", [f"{name}.train.inter", f"{name}.test.inter"]),
        ("recbole-inter", [f"{name}.inter"]),
        ("session-rec", [f"{name}_train_full.txt", f"{name}_test.txt"]),
    )
    for kind, files in candidates:
        paths = [os.path.join(folder, f) for f in files]
        if all(os.path.isfile(p) for p in paths):
            valid = os.path.join(folder, f"{name}.valid.inter")  # read with the training file
            if kind == "recbole" and os.path.isfile(valid):
                paths.append(valid)
            return kind, paths
    return None


def _custom_options(path):
    check_regular(path)
    try:
        with open(path, encoding="utf-8") as f:
            options = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(options, dict):
        raise DataError(f"{path}: expected a JSON object of options")
    allowed = {"file", "test_days", *CUSTOM_OPTIONS}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise DataError(f"{path}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    for key in ("file", "session_col", "item_col", "time_col", "delimiter"):
        if key in options and (not isinstance(options[key], str) or not options[key]):
            raise DataError(f"{path}: {key} must be a non-empty string, got {options[key]!r}")
    if "delimiter" in options and (
        len(options["delimiter"]) != 1 or options["delimiter"] in "\r\n"
    ):
        raise DataError(
            f"{path}: delimiter must be one character (\\t for tab), got {options['delimiter']!r}"
        )
    if "test_days" in options:
        options["test_days"] = check_test_days(options["test_days"], f"{path}: test_days")
    if "time_format" in options:
        check_time_format(options["time_format"], f"{path}: time_format")
    return options
