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
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        return None
    if not os.path.exists(os.path.join(folder, ARRAYS)):
        return None
    return info


def load_prepared(path):
    """Load a prepared dataset from its folder or its ``.npz`` file.

    Parameters
    ----------
    path : str
        A folder holding ``dataset.npz`` and ``dataset.json``, or the path
        of the ``.npz`` (the JSON is read from the same folder).

    Returns
    -------
    Dataset
    """
    folder = os.path.dirname(path) if path.endswith(".npz") else path
    npz_path = path if path.endswith(".npz") else os.path.join(folder, ARRAYS)
    info = read_info(folder)
    if info is None:
        raise DataError(
            f"{os.path.join(folder, INFO)}: missing or not a {FORMAT} file; "
            "prepare the data with `python -m data_tools.preprocess`"
        )
    try:
        with np.load(npz_path) as z:
            a = {key: z[key] for key in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{npz_path}: cannot read prepared arrays ({e}); prepare it again") from e

    def split(part):
        return Split(
            a[f"{part}_offsets"],
            a[f"{part}_items"],
            a[f"{part}_targets"],
            a[f"{part}_session"],
            a.get(f"{part}_noise"),
        )

    return Dataset(
        info["name"],
        a["item_ids"],
        split("train"),
        split("test"),
        a["sessions_offsets"],
        a["sessions_items"],
        stats=info["stats"],
        provenance=info["provenance"],
        item_tokens=a.get("item_tokens"),
        sessions_time=a.get("sessions_time"),
        test_sessions_time=a.get("test_sessions_time"),
    )


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
