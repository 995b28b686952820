"""The SR-GNN preprocessing protocol, on arrays.

This follows CRIPAC-DIG/SR-GNN's ``datasets/preprocess.py`` step by step,
with NumPy sorts in place of its dicts so that 33 M YOOCHOOSE rows fit in
memory:

1. Group the rows by session; order clicks within a session by the order
   key (stable, so ties keep file order) or keep file order. A session's
   date is the date of its **last row in file order**.
2. Drop sessions of length 1; count item occurrences in the rest; drop items
   seen fewer than 5 times; drop sessions now shorter than 2.
3. Split by date: training sessions are dated strictly before
   ``max_date - test_days``, test sessions strictly after; sessions dated
   exactly on the boundary are dropped. Each side is sorted by date with a
   stable sort. SR-GNN keeps sessions in a dict filled in file order, where
   a session enters at the end of its first contiguous block of rows; blocks
   do not overlap, so that is the order of first appearance in the file,
   which is how we break date ties.
4. Number items 1..n by first appearance in the date-ordered training
   sessions; drop test clicks on other items, then test sessions shorter
   than 2.
5. Prefix augmentation (:func:`~data_tools.split.augment`). For YOOCHOOSE,
   a fraction keeps the most recent ``1/divisor`` of the training examples
   (``int(E / divisor)`` of them), with the item numbering of the full
   training set and the same test set.
"""

import numpy as np

from .cliopts import check_test_days
from .dataset import Dataset
from .errors import DataError
from .split import Split, augment

PROTOCOL = "SR-GNN datasets/preprocess.py (CRIPAC-DIG/SR-GNN), reimplemented on arrays"
MIN_ITEM_COUNT = 5
DAY = 86400


class Sessions:
    """Sessions of item ids in CSR layout.

    Attributes
    ----------
    offsets : ndarray of shape (S + 1,), int64
    items : ndarray of shape (nnz,), int32
    times : ndarray of shape (nnz,), int64, or None
        Seconds since 1970 of each click, when kept.
    """

    def __init__(self, offsets, items, times=None):
        self.offsets, self.items, self.times = offsets, items, times

    def __len__(self):
        return len(self.offsets) - 1


class Prepared:
    """The protocol's result before augmentation.

    Attributes
    ----------
    item_ids : ndarray of shape (n + 1,), int64
        Raw id of item ``i``; entry 0 (padding) is -1.
    train, test : Sessions
        In date order, items numbered 1..n.
    split_date : int
        Seconds since 1970 of ``max_date - test_days``.
    """

    def __init__(self, item_ids, train, test, split_date):
        self.item_ids, self.train, self.test = item_ids, train, test
        self.split_date = split_date


def _csr_take(offsets, items, which):
    """The sessions ``which`` (in that order) of a CSR table."""
    lengths = np.diff(offsets)[which]
    new_offsets = np.zeros(len(which) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    starts = np.repeat(offsets[:-1][which] - new_offsets[:-1], lengths)  # nnz
    return new_offsets, items[np.arange(len(starts), dtype=np.int64) + starts]


def run_protocol(clicks, test_days, path="input", keep_times=False):
    """Steps 1-4 of the protocol.

    Parameters
    ----------
    clicks : Clicks
        Consumed: its arrays are released as the work proceeds, to bound
        peak memory. Do not use it afterwards.
    test_days : float
        Length of the test period (DIGINETICA 7, YOOCHOOSE 1).
    path : str
        Input name for error messages.
    keep_times : bool
        Keep each click's ``date`` (its time, for logs with timestamps) in
        the sessions' ``times``; costs 8 more bytes per row.

    Returns
    -------
    Prepared
    """
    test_days = check_test_days(test_days)
    # 1. group rows by session (then by order key); stable sorts keep file order for ties
    if clicks.order is None:
        rows = np.argsort(clicks.session, kind="stable")
    else:
        rows = np.lexsort((clicks.order, clicks.session))
        clicks.order = None
    session = clicks.session[rows]
    clicks.session = None
    starts = np.flatnonzero(np.concatenate(([True], session[1:] != session[:-1])))
    del session
    lengths = np.diff(np.append(starts, len(rows)))  # S
    first_row = np.minimum.reduceat(rows, starts)  # S: first appearance in the file
    date = clicks.date[np.maximum.reduceat(rows, starts)]  # S: date of the last row in the file
    row_time = clicks.date[rows] if keep_times else None
    clicks.date = None
    items = clicks.item[rows]  # item codes, grouped by session
    del rows
    clicks.item = None

    # 2. drop length-1 sessions, then rare items, then sessions shorter than 2
    in_long = np.repeat(lengths > 1, lengths)
    counts = np.bincount(items[in_long], minlength=len(clicks.item_raw))
    keep_row = in_long & (counts >= MIN_ITEM_COUNT)[items]
    del in_long
    kept_len = np.add.reduceat(keep_row, starts, dtype=np.int64)
    keep = kept_len >= 2
    keep_row &= np.repeat(keep, lengths)
    items = items[keep_row]
    if row_time is not None:
        row_time = row_time[keep_row]
    del keep_row
    lengths, date, first_row = kept_len[keep], date[keep], first_row[keep]
    if len(lengths) == 0:
        raise DataError(
            f"{path}: no session is left after dropping items seen fewer than "
            f"{MIN_ITEM_COUNT} times and sessions shorter than 2; the input is too small"
        )
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    # 3. split by date; stable order by date, ties by first appearance in the file
    split_date = int(date.max()) - int(round(test_days * DAY))
    by_date = np.lexsort((first_row, date))
    train_s = by_date[date[by_date] < split_date]
    test_s = by_date[date[by_date] > split_date]
    if len(train_s) == 0 or len(test_s) == 0:
        side = "training" if len(train_s) == 0 else "test"
        raise DataError(
            f"{path}: the {side} set is empty after splitting off the last {test_days:g} "
            "days; the input covers too short a period"
        )
    train_offsets, train_codes = _csr_take(offsets, items, train_s)
    test_offsets, test_codes = _csr_take(offsets, items, test_s)
    del items
    train_time = test_time = None
    if row_time is not None:
        train_time = _csr_take(offsets, row_time, train_s)[1]
        test_time = _csr_take(offsets, row_time, test_s)[1]

    # 4. number items by first appearance in training; drop unseen test clicks
    n_codes = len(clicks.item_raw)
    first_seen = np.full(n_codes, len(train_codes), dtype=np.int64)
    np.minimum.at(first_seen, train_codes, np.arange(len(train_codes), dtype=np.int64))
    seen = np.flatnonzero(first_seen < len(train_codes))
    seen = seen[np.argsort(first_seen[seen])]  # codes in order of first appearance
    new_id = np.zeros(n_codes, dtype=np.int32)
    new_id[seen] = np.arange(1, len(seen) + 1, dtype=np.int32)
    item_ids = np.concatenate(([-1], clicks.item_raw[seen]))
    train = Sessions(train_offsets, new_id[train_codes], train_time)

    test_items = new_id[test_codes]
    known = test_items > 0
    test_len = np.add.reduceat(known, test_offsets[:-1], dtype=np.int64)
    long_enough = test_len >= 2
    known &= np.repeat(long_enough, np.diff(test_offsets))
    test_len = test_len[long_enough]
    test_offsets = np.zeros(len(test_len) + 1, dtype=np.int64)
    np.cumsum(test_len, out=test_offsets[1:])
    test = Sessions(
        test_offsets, test_items[known], None if test_time is None else test_time[known]
    )
    if len(test) == 0:
        raise DataError(f"{path}: no test session is left after dropping unseen items")
    return Prepared(item_ids, train, test, split_date)


def _drop_first(split, k):
    """The examples of ``split`` from index ``k`` on, sharing memory."""
    a = split.offsets[k]
    noise = None if split.noise is None else split.noise[a:]
    return Split(
        split.offsets[k:] - a, split.items[a:], split.targets[k:], split.session[k:], noise
    )


def to_dataset(name, prepared, provenance, divisor=1):
    """Step 5: augment, and for YOOCHOOSE keep the most recent fraction.

    Parameters
    ----------
    name : str
    prepared : Prepared
    provenance : dict
        Source description; protocol details are added.
    divisor : int
        Keep the last ``int(E / divisor)`` training examples (64 for
        YOOCHOOSE 1/64); 1 keeps everything.

    Returns
    -------
    Dataset
        Its training sessions (``sessions_*``) run from the session of the
        first kept example, whole, like SR-GNN's ``all_train_seq.txt``.
    """
    train = prepared.train
    n_examples = np.diff(train.offsets) - 1  # S
    total = int(n_examples.sum())
    keep = total // divisor
    if keep == 0:
        raise DataError(
            f"{name}: only {total} training examples, too few to keep 1/{divisor} of them"
        )
    first_kept = total - keep
    ends = np.cumsum(n_examples)
    s0 = int(np.searchsorted(ends, first_kept, side="right"))  # session of the first kept example
    a = train.offsets[s0]
    s_offsets, s_items = train.offsets[s0:] - a, train.items[a:]
    examples = _drop_first(augment(s_offsets, s_items), first_kept - int(ends[s0] - n_examples[s0]))
    test = augment(prepared.test.offsets, prepared.test.items)
    times = {}
    if train.times is not None and prepared.test.times is not None:
        times = {"sessions_time": train.times[a:], "test_sessions_time": prepared.test.times}
    ds = Dataset(name, prepared.item_ids, examples, test, s_offsets, s_items, **times)
    ds.provenance = {
        **provenance,
        "protocol": PROTOCOL,
        "min_item_count": MIN_ITEM_COUNT,
        "split_date_utc": str(np.datetime64(prepared.split_date, "s")),
        "train_fraction": f"1/{divisor}",
    }
    return ds
