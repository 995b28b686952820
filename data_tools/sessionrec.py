"""session-rec's files, in and out.

session-rec (rn5l/session-rec, the framework of Ludewig and Jannach's
evaluations) keeps a split as two tab-separated click logs with a header,
``PREFIX_train_full.txt`` and ``PREFIX_test.txt``::

    SessionId	ItemId	Time
    1	214536502	1396321208
    1	214536500	1396321242

one click per row, ``Time`` in Unix seconds (decimals allowed); the columns
may come in any order and others are ignored. Ids may be any text without
tabs.

Reading: each file's clicks are grouped by session and ordered by time
(ties keep file order); sessions are ordered by the time of their last click
(ties by first appearance), as the SR-GNN protocol dates them; one-click
sessions are dropped (they make no example); items are numbered by first
appearance in the training sessions, then the test sessions (or, with
``keep_ids``, integer ids are kept). Every prefix of a session then becomes
an example (:func:`~data_tools.split.augment`), as session-rec evaluates
every next click of a test session. Nothing else is filtered: the files are
a prepared split.

Writing: the sessions our examples were cut from (for a training session
only partly used, such as YOOCHOOSE 1/64's first, the part the examples
use), in our order, with the clicks' times when the dataset kept them (read
from session-rec files, or converted from a log with timestamps: a RecBole
``.inter``, YOOCHOOSE, a custom log). Otherwise (SR-GNN pickles,
DIGINETICA, whose log dates clicks only by day) the times are synthetic:
one second per click, increasing through the training sessions and then
the test sessions, from :data:`START_TIME`; session order and click order
are what they preserve.
"""

import os

import numpy as np

from .clicklog import find_columns, number_items, ordered_sessions, read_header, read_token_clicks
from .dataset import Dataset
from .errors import DataError
from .fileio import atomic_outputs, fingerprint
from .split import _ranges, augment, sessions_from_examples

COLUMNS = {"session": "SessionId", "item": "ItemId", "time": "Time"}
HEADER = "SessionId\tItemId\tTime"
TRAIN_SUFFIX, TEST_SUFFIX = "_train_full.txt", "_test.txt"
START_TIME = 1_000_000_000
"""The first synthetic time written (2001-09-09 01:46:40 UTC)."""


def sessionrec_paths(prefix):
    """``(PREFIX_train_full.txt, PREFIX_test.txt)``."""
    return prefix + TRAIN_SUFFIX, prefix + TEST_SUFFIX


def _read_clicks(path, item_codes):
    header = read_header(path, "\t")
    cols = find_columns(path, header, COLUMNS, HEADER)
    return ordered_sessions(read_token_clicks(path, cols, COLUMNS, len(header), item_codes))


def read_sessionrec(train_path, test_path, name=None, keep_ids=False):
    """Read session-rec's ``PREFIX_train_full.txt`` and ``PREFIX_test.txt``.

    Parameters
    ----------
    train_path, test_path : str
    name : str, optional
        Default: the prefix of the training file's name.
    keep_ids : bool
        Use integer item ids as our ids (n = the largest) instead of
        numbering the items 1..n by first appearance.

    Returns
    -------
    Dataset
    """
    if name is None:
        base = os.path.basename(train_path)
        name = base[: -len(TRAIN_SUFFIX)] if base.endswith(TRAIN_SUFFIX) else base
    item_codes = {}
    train_offsets, train_codes, train_time, train_dropped = _read_clicks(train_path, item_codes)
    test_offsets, test_codes, test_time, test_dropped = _read_clicks(test_path, item_codes)
    for path, offsets in ((train_path, train_offsets), (test_path, test_offsets)):
        if len(offsets) == 1:
            raise DataError(f"{path}: no session has two clicks or more, so there is no example")
    order = np.concatenate((train_codes, test_codes))
    new_id, item_ids, item_tokens = number_items(order, list(item_codes), keep_ids, train_path)
    train_items = new_id[train_codes]
    train = augment(train_offsets, train_items)
    test = augment(test_offsets, new_id[test_codes])
    ds = Dataset(
        name,
        item_ids,
        train,
        test,
        train_offsets,
        train_items,
        item_tokens=item_tokens,
        sessions_time=train_time,
        test_sessions_time=test_time,
    )
    ds.provenance = {
        "protocol": "session-rec split imported as it is (every prefix of a session an example)",
        "input_format": "session-rec",
        "keep_ids": keep_ids,
        "one_click_sessions_dropped": {"train": train_dropped, "test": test_dropped},
        "source": fingerprint([train_path, test_path]),
    }
    return ds


def click_sessions(split, name, what):
    """The sessions of a split's examples, checked to give back exactly those examples.

    Parameters
    ----------
    split : Split
    name : str
    what : str
        ``"training"`` or ``"test"``, for the message.

    Returns
    -------
    offsets : ndarray of shape (S + 1,), int64
    items : ndarray of shape (clicks,), int32
    """
    offsets, items = sessions_from_examples(split)
    again = augment(offsets, items)
    same = (
        np.array_equal(again.offsets, split.offsets)
        and np.array_equal(again.items, split.items)
        and np.array_equal(again.targets, split.targets)
    )
    if not same:
        raise DataError(
            f"{name}: the {what} examples are not every prefix of their sessions, longest "
            "first, so one-click-per-row files cannot hold them; export to recbole or srgnn"
        )
    return offsets, items


def export_sessionrec(ds, folder, prefix=None, block=1 << 18, report=None):
    """Write a dataset as session-rec's ``PREFIX_train_full.txt`` and ``PREFIX_test.txt``.

    Parameters
    ----------
    ds : Dataset
    folder : str
        Created if missing.
    prefix : str, optional
        Default: the dataset's name.
    block : int
        Rows formatted at once.
    report : callable, optional
        Receives one line saying which times were written.

    Returns
    -------
    list of str
        The two paths written.
    """
    prefix = prefix or ds.name
    labels = ds.item_labels()
    for label in labels[1:]:
        if not label or any(c in label for c in "\t\r\n"):
            raise DataError(f"{ds.name}: item token {label!r} is empty or holds a tab or line end")
    parts = [
        click_sessions(ds.train, ds.name, "training"),
        click_sessions(ds.test, ds.name, "test"),
    ]
    known, why = known_times(ds, parts)
    if report is not None:
        report(
            "times: the clicks' own"
            if known is not None
            else f"times: synthetic, one second per click from {START_TIME} ({why}); "
            "session and click order are kept"
        )
    os.makedirs(folder, exist_ok=True)
    paths = list(sessionrec_paths(os.path.join(folder, prefix)))
    first_session, time = 1, START_TIME
    with atomic_outputs(paths) as temps:
        for k, (temp, (offsets, items)) in enumerate(zip(temps, parts, strict=True)):
            lengths = np.diff(offsets)
            session = np.repeat(np.arange(first_session, first_session + len(lengths)), lengths)
            if known is None:
                times = list(range(time, time + len(items)))
            else:
                times = [_time_text(t) for t in known[k].tolist()]
            first_session, time = first_session + len(lengths), time + len(items)
            with open(temp, "w", encoding="utf-8", newline="\n") as f:
                f.write(HEADER + "\n")
                for a in range(0, len(items), block):
                    rows = zip(
                        session[a : a + block].tolist(),
                        items[a : a + block].tolist(),
                        times[a : a + block],
                        strict=True,
                    )
                    f.write("".join(f"{s}\t{labels[i]}\t{t}\n" for s, i, t in rows))
    return paths


def known_times(ds, parts):
    """The click times of the sessions to write, or None when the dataset has none.

    Parameters
    ----------
    ds : Dataset
    parts : list of (offsets, items)
        The training and test sessions from :func:`click_sessions`.

    Returns
    -------
    times : list of two float64 arrays, aligned with the parts' items, or None
    why : str
        Why there are none.
    """
    if ds.sessions_time is None or ds.test_sessions_time is None:
        return None, "the source has no click times"
    (offsets, items), (test_offsets, _) = parts
    first = np.flatnonzero(np.diff(ds.train.session, prepend=-1) != 0)  # S
    which = ds.train.session[first]  # the sessions_* index of each session written
    if len(which) and not 0 <= which.min() <= which.max() < len(ds.sessions_offsets) - 1:
        return None, "the training sessions do not line up with the examples"
    gather = _ranges(ds.sessions_offsets[which], np.diff(offsets))
    if not np.array_equal(ds.sessions_items[gather], items):
        return None, "the training sessions do not line up with the examples"
    times = [ds.sessions_time[gather], ds.test_sessions_time]
    for t, o in zip(times, (offsets, test_offsets), strict=True):
        if not _in_reading_order(t, o):
            # e.g. YOOCHOOSE, whose clicks keep file order: read back sorted by
            # time, the sessions would change, so the examples would
            return None, "the clicks' own times would reorder the clicks when read back"
    return times, ""


def _in_reading_order(times, offsets):
    """Whether :func:`read_sessionrec` would read these sessions back in this order.

    Clicks must not go back in time within a session, and each session's last
    click must not be earlier than the previous session's.
    """
    step = np.diff(times)
    inside = np.ones(len(step), dtype=bool)
    inside[offsets[1:-1] - 1] = False  # the step from one session into the next
    last = times[offsets[1:] - 1]
    return bool(np.all(step[inside] >= 0) and np.all(np.diff(last) >= 0))


def _time_text(t):
    """A time as session-rec writes it: whole seconds without a decimal point."""
    return str(int(t)) if t == int(t) else repr(t)
