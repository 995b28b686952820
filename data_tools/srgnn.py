"""Read and write the SR-GNN pickle format, safely.

SR-GNN's ``preprocess.py`` writes three pickles per dataset:

``train.txt``, ``test.txt``
    A tuple ``(prefixes, targets)``: ``prefixes[i]`` is a list of item ids,
    ``targets[i]`` the next item id, in prefix-augmentation order.
``all_train_seq.txt`` (optional here)
    A list of the training sessions before augmentation.

A pickle can run arbitrary code when loaded, so we read them with a
restricted unpickler: it admits lists, tuples and ints and refuses any other
type before it is built. Importing needs no raw item ids; the raw id of
SR-GNN item ``i`` is recorded as ``i``.
"""

import itertools
import os
import pickle
import warnings

import numpy as np

from .dataset import Dataset, check_n_items
from .errors import DataError
from .fileio import atomic_outputs, check_regular, fingerprint
from .split import Split, augment, sessions_of

TRAIN, TEST, ALL_TRAIN = "train.txt", "test.txt", "all_train_seq.txt"

# ``builtins.list`` is the one global we admit: our own writer streams long
# lists as ``list()`` followed by appends (see ``_StreamedList``).
_ALLOWED_GLOBALS = {("builtins", "list")}


class _ListsAndInts(pickle.Unpickler):
    """An unpickler that refuses every class and function except ``list``."""

    def __init__(self, file, path):
        super().__init__(file)
        self.path = path

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return list
        asked = " ".join(f"{module}.{name}".split())[:80]  # one line, however it is spelled
        raise DataError(
            f"{self.path}: refused to load: the pickle asks for {asked}, but "
            "SR-GNN data holds only lists, tuples and ints (the file may be unsafe)"
        )


def read_pickle(path):
    """Load a pickle that may hold only lists, tuples and ints.

    Parameters
    ----------
    path : str

    Returns
    -------
    object
        Nested lists/tuples of ints. Other types (str, float, dict, ...,
        or any class) raise :class:`DataError` naming the file.
    """
    check_regular(path)
    try:
        with open(path, "rb") as f:
            obj = _ListsAndInts(f, path).load()
    except DataError:
        raise
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    except Exception as e:  # noqa: BLE001 - any unpickling failure is bad input
        reason = " ".join(str(e).split())  # some unpickling errors span lines
        raise DataError(
            f"{path}: not a readable SR-GNN pickle ({type(e).__name__}: {reason})"
        ) from e
    return obj


def _sequences_to_csr(seqs, path, what):
    """Turn a list of lists of ids into CSR arrays, checking every type.

    Returns
    -------
    offsets : ndarray of shape (M + 1,), int64
    items : ndarray of shape (nnz,), int32
    """
    if type(seqs) not in (list, tuple):
        raise DataError(f"{path}: {what} must be a list, found {type(seqs).__name__}")
    bad = set(map(type, seqs)) - {list, tuple}
    if bad:
        raise DataError(f"{path}: {what} must hold lists of ints, found {_names(bad)}")
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    if int(lengths.sum()) > os.path.getsize(path):
        # Each int takes at least two bytes of pickle; more ints than bytes means the
        # file repeats one list many times (a memory bomb), which SR-GNN never writes.
        raise DataError(
            f"{path}: {what} refer to the same lists over and over ({int(lengths.sum()):,} ids "
            "from a smaller file); it is not an SR-GNN pickle"
        )
    if np.any(lengths == 0):
        raise DataError(f"{path}: {what} entry {int(np.argmin(lengths))} is empty")
    flat = itertools.chain.from_iterable(seqs)
    bad = set(map(type, flat)) - {int}
    if bad:
        raise DataError(f"{path}: {what} must hold lists of ints, found {_names(bad)}")
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = _ids(itertools.chain.from_iterable(seqs), int(offsets[-1]), path, what)
    return offsets, items


def _ids(values, count, path, what):
    """ndarray of shape (count,), int32: item ids, checked to be 1..2**31-1."""
    try:
        ids = np.fromiter(values, dtype=np.int64, count=count)
    except OverflowError:
        raise DataError(f"{path}: {what} has item ids outside 1..2**31-1") from None
    if count and (ids.min() < 1 or ids.max() >= 2**31):
        raise DataError(f"{path}: {what} has item ids outside 1..2**31-1")
    return ids.astype(np.int32)


def _names(types):
    return ", ".join(sorted(t.__name__ for t in types))


def _read_examples(path):
    """Read ``train.txt``/``test.txt`` into a Split with sessions recovered."""
    obj = read_pickle(path)
    if type(obj) not in (tuple, list) or len(obj) != 2:
        raise DataError(f"{path}: expected a pair (prefixes, targets) as SR-GNN writes it")
    prefixes, targets = obj
    offsets, items = _sequences_to_csr(prefixes, path, "prefixes")
    if type(targets) not in (list, tuple) or set(map(type, targets)) - {int}:
        raise DataError(f"{path}: targets must be a list of ints")
    if len(targets) != len(prefixes):
        raise DataError(
            f"{path}: {len(prefixes)} prefixes but {len(targets)} targets; the file is damaged"
        )
    targets = _ids(targets, len(targets), path, "targets")
    split = Split(offsets, items, targets, np.zeros(len(targets), dtype=np.int32))
    split.session, _ = sessions_of(split)
    return split


def import_srgnn(folder, name):
    """Import SR-GNN pickles from a folder into a :class:`Dataset`.

    Parameters
    ----------
    folder : str
        Holds ``train.txt`` and ``test.txt`` and optionally ``all_train_seq.txt``.
    name : str

    Returns
    -------
    Dataset
        ``n_items`` is the largest item id found. When ``all_train_seq.txt``
        is present and ``train.txt`` is the tail of its prefix augmentation
        (the whole of it for DIGINETICA; the last 1/64 or 1/4 for YOOCHOOSE),
        the training sessions and clicks come from it; otherwise (with a
        warning if the file disagrees) they are recovered from the examples.
    """
    train_path, test_path = os.path.join(folder, TRAIN), os.path.join(folder, TEST)
    train = _read_examples(train_path)
    test = _read_examples(test_path)
    sources = [train_path, test_path]

    sessions = None
    all_path = os.path.join(folder, ALL_TRAIN)
    if os.path.exists(all_path):
        sources.append(all_path)
        s_offsets, s_items = _sequences_to_csr(read_pickle(all_path), all_path, "sessions")
        sessions = _match_sessions(train, s_offsets, s_items)
        if sessions is None:
            warnings.warn(
                f"{all_path}: its prefix augmentation does not end with {train_path}; "
                "recovering training sessions from train.txt instead",
                stacklevel=2,
            )
    if sessions is None:
        # A session is its first (longest) prefix plus that example's target.
        first = np.flatnonzero(np.diff(train.session, prepend=-1) != 0)
        lengths = train.lengths[first] + 1
        s_offsets = np.zeros(len(first) + 1, dtype=np.int64)
        np.cumsum(lengths, out=s_offsets[1:])
        s_items = np.empty(int(s_offsets[-1]), dtype=np.int32)
        for k, i in enumerate(first):  # one short Python loop over sessions
            s_items[s_offsets[k] : s_offsets[k + 1] - 1] = train.items[
                train.offsets[i] : train.offsets[i + 1]
            ]
            s_items[s_offsets[k + 1] - 1] = train.targets[i]
    else:
        s_offsets, s_items = sessions

    n = max(int(a.max(initial=0)) for a in (train.items, train.targets, test.items, test.targets))
    n = max(n, int(s_items.max(initial=0)))
    check_n_items(n, folder)
    item_ids = np.arange(n + 1, dtype=np.int64)
    item_ids[0] = -1
    ds = Dataset(name, item_ids, train, test, s_offsets, s_items)
    ds.provenance = {
        "protocol": "SR-GNN pickles imported as they are",
        "source": fingerprint(sources),
    }
    return ds


def _match_sessions(train, s_offsets, s_items):
    """Check that ``train`` is the tail of the augmentation of the sessions.

    Returns
    -------
    (offsets, items) or None
        The sessions from the one holding ``train``'s first example on, with
        ``train.session`` renumbered to index them; None if they disagree.
    """
    if np.any(np.diff(s_offsets) < 2):
        return None
    full = augment(s_offsets, s_items)
    skip = len(full) - len(train)
    if skip < 0:
        return None
    tail = full.subset(np.arange(skip, len(full)))
    same = (
        np.array_equal(tail.offsets - tail.offsets[0], train.offsets)
        and np.array_equal(tail.items, train.items)
        and np.array_equal(tail.targets, train.targets)
    )
    if not same:
        return None
    first_session = int(tail.session[0]) if len(tail) else 0
    train.session = tail.session - first_session
    a = s_offsets[first_session]
    return s_offsets[first_session:] - a, s_items[a:]


class _StreamedList:
    """Pickles as a list whose items come from an iterator, one batch at a time.

    This keeps memory flat when writing millions of examples; the file loads
    as an ordinary list with :func:`pickle.load`.
    """

    def __init__(self, iterator):
        self.iterator = iterator

    def __reduce__(self):
        return list, (), None, self.iterator


def _rows(offsets, items, block=1 << 16):
    """Yield ``items[offsets[i]:offsets[i+1]]`` as Python lists, block by block."""
    for a in range(0, len(offsets) - 1, block):
        b = min(a + block, len(offsets) - 1)
        flat = items[offsets[a] : offsets[b]].tolist()
        local = (offsets[a : b + 1] - offsets[a]).tolist()
        for i in range(b - a):
            yield flat[local[i] : local[i + 1]]


def _ints(values, block=1 << 16):
    for a in range(0, len(values), block):
        yield from values[a : a + block].tolist()


def export_srgnn(ds, folder):
    """Write a dataset as SR-GNN pickles, atomically.

    Parameters
    ----------
    ds : Dataset
    folder : str
        Receives ``train.txt``, ``test.txt`` and ``all_train_seq.txt``;
        created if missing.
    """
    os.makedirs(folder, exist_ok=True)
    contents = {
        TRAIN: (
            _StreamedList(_rows(ds.train.offsets, ds.train.items)),
            _StreamedList(_ints(ds.train.targets)),
        ),
        TEST: (
            _StreamedList(_rows(ds.test.offsets, ds.test.items)),
            _StreamedList(_ints(ds.test.targets)),
        ),
        ALL_TRAIN: _StreamedList(_rows(ds.sessions_offsets, ds.sessions_items)),
    }
    paths = [os.path.join(folder, name) for name in contents]
    with atomic_outputs(paths) as temps:
        for temp, obj in zip(temps, contents.values(), strict=True):
            with open(temp, "wb") as f:
                pickler = pickle.Pickler(f, protocol=4)
                # Without the memo the pickler does not keep every list it wrote
                # alive; our data has no shared or recursive objects, so none is lost.
                pickler.fast = True
                pickler.dump(obj)
