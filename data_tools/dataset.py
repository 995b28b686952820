"""The :class:`Dataset` object and our on-disk format.

A prepared dataset is two files in one folder:

``dataset.npz`` (uncompressed NumPy arrays, loads in a fraction of a second)
    ``item_ids``        (n + 1,) int64: raw id of internal item ``i``; entry 0
                        is the padding slot and holds -1.
    ``{split}_offsets`` (N + 1,) int64, ``{split}_items`` (nnz,) int32,
    ``{split}_targets`` (N,) int32, ``{split}_session`` (N,) int32 and, for
    the synthetic dataset only, ``{split}_noise`` (nnz,) bool: one
    :class:`~data_tools.split.Split` each for ``split`` in ``train``, ``test``.
    ``sessions_offsets`` (S + 1,) int64, ``sessions_items`` (clicks,) int32:
                        the training sessions before augmentation (SR-GNN's
                        ``all_train_seq.txt``); ``train_session`` indexes them.
    ``sessions_time``   (clicks,) float64 and ``test_sessions_time`` (test clicks,)
                        float64, only when the source had click times and
                        they were kept: the time (Unix seconds) of each click
                        of ``sessions_items``, and of each click of the test
                        sessions (each one's first example plus its target).
    ``item_tokens``     (n + 1,) str, only when the source named items by
                        text (RecBole or session-rec tokens that are not all
                        integers): the token of internal item ``i``.

``dataset.json``
    ``name``, ``stats`` (clicks, train_examples, test_examples, items,
    avg_length, n_items, train_sessions, test_sessions) and ``provenance``
    (protocol, source files with size and mtime, tool version).

Raw ids are int64. For SR-GNN pickles, which carry no raw ids, and for
files that name items by text tokens (kept in ``item_tokens``), the raw id
of item ``i`` is ``i``.
"""

import json
import os
import struct
import zipfile
import zlib

import numpy as np

from .errors import DataError
from .fileio import atomic_outputs
from .split import Split

FORMAT = "minisriem-dataset"
VERSION = 1
ARRAYS = "dataset.npz"
INFO = "dataset.json"


class Dataset:
    """Training and test examples of one dataset, ready for the model.

    Parameters
    ----------
    name : str
    item_ids : ndarray of shape (n_items + 1,), int64
        Raw id of each internal item id; index 0 is padding (-1).
    train, test : Split
    sessions_offsets : ndarray of shape (S + 1,), int64
    sessions_items : ndarray of shape (clicks,), int32
        The training sessions before prefix augmentation; ``train.session``
        indexes them.
    stats : dict, optional
        Table 1's figures; computed from the arrays when not given.
    provenance : dict, optional
        Where the data came from and how it was processed.
    item_tokens : ndarray of shape (n_items + 1,), str, optional
        The text name of each item, when the source had text tokens.
    sessions_time : ndarray of shape (clicks,), float64, optional
        Unix seconds of each click of ``sessions_items``.
    test_sessions_time : ndarray of shape (test clicks,), float64, optional
        Unix seconds of each click of the test sessions, in order (a test
        session is its first example's prefix plus its target).
    """

    def __init__(
        self,
        name,
        item_ids,
        train,
        test,
        sessions_offsets,
        sessions_items,
        stats=None,
        provenance=None,
        item_tokens=None,
        sessions_time=None,
        test_sessions_time=None,
    ):
        self.name = name
        self.loaded_from = None  # the prepared folder it was read from, when given as a path
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self.train = train
        self.test = test
        self.sessions_offsets = np.asarray(sessions_offsets, dtype=np.int64)
        self.sessions_items = np.asarray(sessions_items, dtype=np.int32)
        self.stats = compute_stats(self) if stats is None else dict(stats)
        self.provenance = dict(provenance or {})
        self.item_tokens = None if item_tokens is None else np.asarray(item_tokens, dtype=str)
        if self.item_tokens is not None and self.item_tokens.shape != self.item_ids.shape:
            raise ValueError("item_tokens must have one entry per item id (n + 1)")
        self.sessions_time = _times(sessions_time, len(self.sessions_items), "sessions_time")
        test_clicks = int((test.lengths[_first_examples(test)] + 1).sum())
        self.test_sessions_time = _times(test_sessions_time, test_clicks, "test_sessions_time")

    @property
    def n_items(self):
        """int: the number of items ``n``; item ids run 1..n."""
        return len(self.item_ids) - 1

    def item_labels(self):
        """list of str: how each item id (0..n) is written in exchange files.

        The item's token when the source had text tokens, else its raw id.
        """
        if self.item_tokens is not None:
            return self.item_tokens.tolist()
        return [str(x) for x in self.item_ids.tolist()]

    def __repr__(self):
        s = self.stats
        return (
            f"Dataset({self.name!r}: {s['train_examples']} train / {s['test_examples']} test "
            f"examples, {self.n_items} items)"
        )

    def save(self, folder):
        """Write ``dataset.npz`` and ``dataset.json`` into ``folder`` atomically.

        Parameters
        ----------
        folder : str
            Created if missing.
        """
        os.makedirs(folder, exist_ok=True)
        arrays = {
            "item_ids": self.item_ids,
            "sessions_offsets": self.sessions_offsets,
            "sessions_items": self.sessions_items,
        }
        for key in ("item_tokens", "sessions_time", "test_sessions_time"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        for part, split in (("train", self.train), ("test", self.test)):
            for field in ("offsets", "items", "targets", "session", "noise"):
                value = getattr(split, field)
                if value is not None:
                    arrays[f"{part}_{field}"] = value
        info = {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "stats": self.stats,
            "provenance": self.provenance,
        }
        paths = [os.path.join(folder, ARRAYS), os.path.join(folder, INFO)]
        with atomic_outputs(paths) as (npz_tmp, json_tmp):
            with open(npz_tmp, "wb") as f:
                np.savez(f, **arrays)
            with open(json_tmp, "w") as f:
                json.dump(info, f, indent=2)
                f.write("\n")


def read_info(folder):
    """The JSON half of a prepared dataset, or None when it is absent or unreadable.

    Parameters
    ----------
    folder : str

    Returns
    -------
    dict or None
    """
    try:
        with open(os.path.join(folder, INFO)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        return None
    if not isinstance(info.get("name"), str) or not isinstance(info.get("provenance"), dict):
        return None
    if not os.path.isfile(os.path.join(folder, ARRAYS)):
        return None
    return info


MAX_N_ITEMS = 2**24
"""The most item ids a dataset may have (16,777,216; the largest catalogue of the
field's benchmarks is under a million). A larger ``n`` means one id far above
the others, which would size the model (and the id table) by it."""

# The arrays of the format: name -> dtype kinds allowed ("i" signed, "u" unsigned int,
# "b" bool, "f" float, "U" text). Anything else in the file is ignored.
_REQUIRED = {
    "item_ids": "iu",
    "sessions_offsets": "iu",
    "sessions_items": "iu",
    **{f"{part}_{field}": "iu" for part in ("train", "test") for field in
       ("offsets", "items", "targets", "session")},
}  # fmt: skip
_OPTIONAL = {
    "train_noise": "b",
    "test_noise": "b",
    "item_tokens": "U",
    "sessions_time": "fiu",
    "test_sessions_time": "fiu",
}
ZIP_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # a member "needs" a zip feature we lack (a flipped version byte)
    RuntimeError,  # a member marked encrypted
    struct.error,
)
"""What reading a damaged ``.npz`` can raise, from zipfile, zlib and NumPy."""
MAX_EXPANSION = 64
"""A member of ``dataset.npz`` may unpack to at most this many times the file's size
(our files are stored uncompressed; a compressed one holding far more is refused)."""


def npy_header(zf, info):
    """``(shape, dtype)`` of one ``.npy`` member of an open zip, checked to fit in the member.

    The header is read without the data; a header claiming more data than
    the member holds (which would make NumPy allocate it all) raises ValueError.
    """
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    size = int(np.prod(shape, dtype=object)) * max(dtype.itemsize, 1)
    if size > info.file_size:
        raise ValueError(
            f"{info.filename} claims {size:,} bytes of data but holds {info.file_size:,}"
        )
    return tuple(shape), dtype


def check_n_items(n, path):
    """Refuse a number of items above :data:`MAX_N_ITEMS`, naming the file."""
    if n > MAX_N_ITEMS:
        raise DataError(
            f"{path}: the largest item id is {n:,}, more than the {MAX_N_ITEMS:,} this tool "
            "handles (the model is sized by it): number the items 1..n (convert the data "
            "without --keep-ids)"
        )


def _read_arrays(npz_path):
    """The format's arrays of a ``dataset.npz``, read without pickle, sizes checked first."""
    try:
        size = os.path.getsize(npz_path)
        with zipfile.ZipFile(npz_path) as zf:
            members = {info.filename: info for info in zf.infolist()}
        limit = MAX_EXPANSION * size + (1 << 20)
        for info in members.values():
            if info.file_size > limit:
                raise DataError(
                    f"{npz_path}: member {info.filename} unpacks to {info.file_size:,} bytes, "
                    "far more than the file; it is not one of ours: prepare the data again"
                )
        missing = [k for k in _REQUIRED if k + ".npy" not in members]
        if missing:
            raise DataError(
                f"{npz_path}: incomplete, no {', '.join(missing)}; prepare the data again"
            )
        out = {}
        with zipfile.ZipFile(npz_path) as zf, np.load(npz_path, allow_pickle=False) as z:
            for key, kinds in {**_REQUIRED, **_OPTIONAL}.items():
                if key + ".npy" not in members:
                    continue
                npy_header(zf, members[key + ".npy"])
                value = z[key]
                if value.ndim != 1 or value.dtype.kind not in kinds:
                    raise DataError(
                        f"{npz_path}: {key} must be a 1-D array of "
                        f"{'integers' if kinds == 'iu' else kinds}, found {value.dtype} "
                        f"of shape {value.shape}; prepare the data again"
                    )
                out[key] = value
        return out
    except DataError:
        raise
    except ZIP_ERRORS as e:
        raise DataError(
            f"{npz_path}: cannot read prepared arrays ({type(e).__name__}: {e}); prepare it again"
        ) from e


def _checked_split(a, part, n_items, path):
    where = f"{path}: {part} examples"
    offsets, items = a[f"{part}_offsets"], a[f"{part}_items"]
    targets, session = a[f"{part}_targets"], a[f"{part}_session"]
    if len(offsets) != len(targets) + 1 or len(session) != len(targets):
        raise DataError(f"{where}: offsets, targets and session disagree in length")
    if offsets[0] != 0 or offsets[-1] != len(items) or np.any(np.diff(offsets) < 1):
        raise DataError(f"{where}: offsets must rise from 0 to the number of items")
    for what, ids in (("items", items), ("targets", targets)):
        if len(ids) and (ids.min() < 1 or ids.max() > n_items):
            raise DataError(f"{where}: {what} hold ids outside 1..{n_items}")
    if len(session) and (session.min() < 0 or np.any(np.diff(session) < 0)):
        raise DataError(f"{where}: session indices must be non-negative and nondecreasing")
    if session.max(initial=0) >= 2**31 or len(items) >= 2**62:
        raise DataError(f"{where}: session indices too large")
    noise = a.get(f"{part}_noise")
    if noise is not None and noise.shape != items.shape:
        raise DataError(f"{where}: noise is not aligned with the items")
    return Split(offsets, items, targets, session, noise)


def load_prepared(path):
    """Load a prepared dataset from its folder or its ``.npz`` file, checking every array.

    Parameters
    ----------
    path : str
        A folder holding ``dataset.npz`` and ``dataset.json``, or the path
        of the ``.npz`` (the JSON is read from the same folder).

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Naming the file and what is wrong: missing, truncated or incomplete
        files, arrays of the wrong type or shape, ids out of range.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path) if path.endswith(".npz") else path
    npz_path = path if path.endswith(".npz") else os.path.join(folder, ARRAYS)
    info = read_info(folder)
    if info is None:
        raise DataError(
            f"{os.path.join(folder, INFO)}: missing or not a {FORMAT} file; "
            "prepare the data with `python -m data_tools.preprocess`"
        )
    a = _read_arrays(npz_path)
    item_ids = a["item_ids"]
    if len(item_ids) < 2:
        raise DataError(f"{npz_path}: item_ids holds no item; prepare the data again")
    n_items = len(item_ids) - 1
    check_n_items(n_items, npz_path)
    if len(np.unique(item_ids[1:])) != n_items:
        raise DataError(f"{npz_path}: item_ids has duplicate raw ids; prepare the data again")
    train = _checked_split(a, "train", n_items, npz_path)
    test = _checked_split(a, "test", n_items, npz_path)
    s_offsets, s_items = a["sessions_offsets"], a["sessions_items"]
    if (
        len(s_offsets) < 1
        or s_offsets[0] != 0
        or s_offsets[-1] != len(s_items)
        or np.any(np.diff(s_offsets) < 0)
    ):
        raise DataError(f"{npz_path}: sessions_offsets must rise from 0 to len(sessions_items)")
    if len(s_items) and (s_items.min() < 1 or s_items.max() > n_items):
        raise DataError(f"{npz_path}: sessions_items hold ids outside 1..{n_items}")
    if len(train.session) and train.session.max() >= len(s_offsets) - 1:
        raise DataError(f"{npz_path}: train_session points past the training sessions")
    try:
        ds = Dataset(
            info["name"],
            item_ids,
            train,
            test,
            s_offsets,
            s_items,
            provenance=info["provenance"],
            item_tokens=a.get("item_tokens"),
            sessions_time=a.get("sessions_time"),
            test_sessions_time=a.get("test_sessions_time"),
        )
    except ValueError as e:
        raise DataError(f"{npz_path}: {e}; prepare the data again") from e
    for t in (ds.sessions_time, ds.test_sessions_time):
        if t is not None and not np.all(np.isfinite(t)):
            raise DataError(f"{npz_path}: click times must be finite; prepare the data again")
    return ds


def compute_stats(ds):
    """Table 1's figures for a dataset.

    Parameters
    ----------
    ds : Dataset

    Returns
    -------
    dict
        ``clicks``: clicks of the training sessions (``sessions_items``) plus
        those of the test sessions (a test session's first, longest prefix
        plus its target). ``train_examples``, ``test_examples``. ``items``:
        distinct item ids in the examples (prefixes and targets, train and
        test). ``avg_length``: mean length of an example counting its
        target, over train and test (the paper's "average length").
        ``n_items``: the model's output count ``n``. ``train_sessions``,
        ``test_sessions``.
    """
    test = ds.test
    first = np.flatnonzero(np.diff(test.session, prepend=-1) != 0)  # first example per session
    test_clicks = int(test.lengths[first].sum()) + len(first)
    n_examples = len(ds.train) + len(test)
    seen = np.zeros(ds.n_items + 1, dtype=bool)
    for split in (ds.train, test):
        seen[split.items] = True
        seen[split.targets] = True
    length_sum = len(ds.train.items) + len(test.items) + n_examples
    return {
        "clicks": len(ds.sessions_items) + test_clicks,
        "train_examples": len(ds.train),
        "test_examples": len(test),
        "items": int(seen[1:].sum()),
        "avg_length": round(length_sum / n_examples, 4) if n_examples else 0.0,
        "n_items": ds.n_items,
        "train_sessions": len(ds.sessions_offsets) - 1,
        "test_sessions": len(first),
    }


def _first_examples(split):
    """bool array of shape (N,): the first example of each session."""
    return np.diff(split.session, prepend=-1) != 0


def _times(values, count, what):
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (count,):
        raise ValueError(f"{what} must hold one time per click ({count}), not {values.shape}")
    return values
