"""Read raw click logs into compact arrays, streaming.

Three formats are understood:

DIGINETICA (CIKM Cup 2016) ``train-item-views.csv``
    ``;``-separated with a header, ``sessionId;userId;itemId;timeframe;eventdate``
    (the SR-GNN sample spells it ``session_id;user_id;item_id;timeframe;eventdate``;
    both are accepted). Clicks are ordered by ``timeframe`` within a session;
    ``eventdate`` (``YYYY-MM-DD``) dates the session.
YOOCHOOSE (RecSys Challenge 2015) ``yoochoose-clicks.dat``
    ``,``-separated, no header: session, ISO timestamp
    (``2014-04-07T10:51:09.277Z``), item, category. Clicks keep file order
    within a session, as in SR-GNN; the timestamp, read to the second,
    dates the session. A header line naming the columns is skipped if present.
custom
    Any delimited file with a header; the session, item and time columns are
    named by the caller. Clicks are ordered by time within a session.

Only the fields the protocol uses are checked (session, item, timeframe or
time, date): DIGINETICA's ``NA`` user ids and YOOCHOOSE's ``S`` categories
are fine. Ids must be non-negative integers. Times are read as UTC (SR-GNN
used the machine's local time; with a zone without daylight saving the
day arithmetic is the same).

The file is read twice: once to count lines, once to parse blocks of lines
straight into preallocated arrays, so memory stays near 20 bytes per row.
"""

import sys

import numpy as np

from .cliopts import check_time_format
from .errors import DataError
from .textparse import Fields, count_lines, iter_blocks, open_text

DIGINETICA_COLUMNS = {
    "session": ("sessionId", "session_id"),
    "item": ("itemId", "item_id"),
    "order": ("timeframe",),
    "date": ("eventdate",),
}
YOOCHOOSE_HEADER = ("session_id", "timestamp", "item_id", "category")


class Clicks:
    """All rows of a click log, as arrays.

    Attributes
    ----------
    session : ndarray of shape (R,), int64
        Raw session id of each row, in file order.
    item : ndarray of shape (R,), int32
        Item code of each row: an index into ``item_raw``.
    item_raw : ndarray of shape (K,), int64
        Raw id of each item code, codes numbered by first appearance.
    date : ndarray of shape (R,), int64
        Seconds since 1970-01-01 of the row's date or timestamp.
    order : ndarray of shape (R,), int64, or None
        Sort key of clicks within a session (DIGINETICA's timeframe, a
        custom log's time); None keeps file order.
    """

    def __init__(self, session, item, item_raw, date, order):
        self.session, self.item, self.item_raw = session, item, item_raw
        self.date, self.order = date, order

    def __len__(self):
        return len(self.session)


def _read(path, *, delimiter, n_fields, cols, names, date_kind, skip_lines, block_bytes):
    """Parse the data lines of a file into :class:`Clicks`.

    Parameters
    ----------
    cols : dict
        Column index of ``"session"``, ``"item"``, ``"date"`` and, or None,
        ``"order"``.
    names : dict
        Column names for error messages, same keys.
    date_kind : str
        ``"date"``, ``"datetime"``, ``"iso"``, ``"unix"``, ``"unix_ms"`` or a
        :func:`~datetime.datetime.strptime` format (contains ``%``).
    skip_lines : int
        Header lines at the top (0 or 1).
    """
    n_rows = count_lines(path, block_bytes) - skip_lines  # an upper bound: blank lines are skipped
    session = np.empty(n_rows, dtype=np.int64)
    item = np.empty(n_rows, dtype=np.int32)
    date = np.empty(n_rows, dtype=np.int64)
    order = None if cols["order"] is None else np.empty(n_rows, dtype=np.int64)
    code_of = {}  # raw item id -> item code; only the distinct items, not the rows
    r = 0
    with open_text(path) as f:
        for _ in range(skip_lines):
            f.readline()
        for first_line, block in iter_blocks(f, skip_lines + 1, block_bytes):
            fields = Fields(block, delimiter, n_fields, first_line, path)
            n = len(fields)
            session[r : r + n] = fields.integers(cols["session"], names["session"])
            raw = fields.integers(cols["item"], names["item"])
            unique, inverse = np.unique(raw, return_inverse=True)
            codes = [code_of.setdefault(x, len(code_of)) for x in unique.tolist()]
            item[r : r + n] = np.asarray(codes, dtype=np.int32)[inverse.ravel()]
            if date_kind in ("unix", "unix_ms"):
                value = fields.integers(cols["date"], names["date"])
                _check_unit(value, date_kind, fields, cols["date"], names["date"])
                date[r : r + n] = value // 1000 if date_kind == "unix_ms" else value
                if order is not None:
                    order[r : r + n] = value
            else:
                if "%" in date_kind:
                    value = fields.strptime(cols["date"], names["date"], date_kind)
                else:
                    value = fields.timestamps(cols["date"], names["date"], date_kind)
                date[r : r + n] = value
                if order is not None:
                    if cols["order"] == cols["date"]:
                        order[r : r + n] = value
                    else:
                        order[r : r + n] = fields.integers(cols["order"], names["order"])
            r += n
    if r == 0:
        raise DataError(f"{path}: no data rows; the file is empty")
    item_raw = np.fromiter(code_of, dtype=np.int64, count=len(code_of))
    return Clicks(session[:r], item[:r], item_raw, date[:r], None if order is None else order[:r])


# Unix times in seconds of 1973-03-03 .. 5138-11-16; in milliseconds, the same span is
# 1e11 .. 1e14. A value outside its unit's span is a time in another unit.
UNIT_SPANS = {"unix": (0, 10**11), "unix_ms": (10**11, 10**14)}


def _check_unit(value, kind, fields, col, what):
    """Refuse Unix times that are not in ``kind``'s unit (seconds or milliseconds)."""
    low, high = UNIT_SPANS[kind]
    bad = (value < low) | (value >= high)
    if kind == "unix":
        bad = value >= high
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        guess = "milliseconds (time_format unix_ms)" if value[i] >= 10**11 else "seconds"
        if value[i] >= 10**14:
            guess = "micro- or nanoseconds: convert them to seconds first"
        unit = "seconds" if kind == "unix" else "milliseconds"
        raise DataError(
            f"{fields.path}:{fields.line[i]}: {what} {int(value[i])} is not a Unix time in "
            f"{unit} (it reads as {guess}); set the time format to match"
        )


def detect_time_format(value):
    """The time format a custom log's first time value implies, and why, in words.

    Parameters
    ----------
    value : str, the first data row's time field

    Returns
    -------
    format : str, ``"unix"``, ``"unix_ms"`` or ``"iso"``
    note : str, what was assumed (for the user)
    """
    if value.isascii() and value.isdigit():
        if len(value) <= 11:
            return "unix", f"time values like {value} read as Unix seconds"
        if len(value) <= 14:
            return (
                "unix_ms",
                f"time values like {value} ({len(value)} digits) read as Unix milliseconds",
            )
        raise DataError(
            f"time value {value} has {len(value)} digits: neither Unix seconds nor "
            "milliseconds; convert it to seconds, or give --time-format"
        )
    return "iso", f"time values like {value!r} read as ISO dates"


def _header(path):
    """The first line of a file, decoded, without its line end and BOM."""
    with open_text(path) as f:
        line = f.readline()
    if not line.strip():
        raise DataError(f"{path}: the file is empty")
    return line.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")


def read_diginetica(path, block_bytes=1 << 24):
    """Read CIKM Cup 2016's ``train-item-views.csv``.

    Parameters
    ----------
    path : str
    block_bytes : int
        Bytes read per block.

    Returns
    -------
    Clicks
        ``date`` is the eventdate at midnight; ``order`` is the timeframe.
    """
    header = _header(path).split(";")
    cols, names = {}, {}
    for key, spellings in DIGINETICA_COLUMNS.items():
        found = [i for i, name in enumerate(header) if name.strip() in spellings]
        if not found:
            raise DataError(
                f"{path}:1: the header does not name a {'/'.join(spellings)} column; expected "
                "'sessionId;userId;itemId;timeframe;eventdate' (';'-separated)"
            )
        cols[key], names[key] = found[0], spellings[0]
    return _read(
        path,
        delimiter=";",
        n_fields=len(header),
        cols=cols,
        names=names,
        date_kind="date",
        skip_lines=1,
        block_bytes=block_bytes,
    )


def read_yoochoose(path, block_bytes=1 << 24):
    """Read RecSys Challenge 2015's ``yoochoose-clicks.dat``.

    Parameters
    ----------
    path : str
    block_bytes : int

    Returns
    -------
    Clicks
        ``date`` is the timestamp to the second; ``order`` is None (file order).
    """
    first = _header(path).split(",")
    has_header = not first[0].strip().isdigit() and "session" in first[0].lower()
    return _read(
        path,
        delimiter=",",
        n_fields=4,
        cols={"session": 0, "item": 2, "date": 1, "order": None},
        names={"session": "session id", "item": "item id", "date": "timestamp"},
        date_kind="datetime",
        skip_lines=int(has_header),
        block_bytes=block_bytes,
    )


def read_custom(
    path,
    *,
    session_col="session_id",
    item_col="item_id",
    time_col="timestamp",
    delimiter=",",
    time_format="auto",
    block_bytes=1 << 24,
):
    """Read a user's own click log with a header row.

    Parameters
    ----------
    path : str
    session_col, item_col, time_col : str
        Header names of the columns to use; other columns are ignored.
    delimiter : str
        One character.
    time_format : str
        ``"unix"`` (integer seconds), ``"unix_ms"`` (milliseconds), ``"iso"``
        (``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM:SS``, ``T`` also allowed,
        anything after the seconds ignored), a ``strptime`` format such as
        ``"%d/%m/%Y %H:%M"``, or ``"auto"``: ``unix`` if the first time
        value is all digits, else ``iso``.
    block_bytes : int

    Returns
    -------
    Clicks
        ``date`` and ``order`` are both the time; the session's date is the
        time of its last row in file order, as in the SR-GNN protocol.
    """
    check_time_format(time_format)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise DataError(f"delimiter must be one character, got {delimiter!r}")
    header = [name.strip() for name in _header(path).split(delimiter)]
    cols = {}
    for key, name in (("session", session_col), ("item", item_col), ("date", time_col)):
        if name not in header:
            raise DataError(
                f"{path}:1: no column {name!r} in the header {header}; name the columns with "
                "--session-col/--item-col/--time-col and check --delimiter"
            )
        cols[key] = header.index(name)
    cols["order"] = cols["date"]
    if time_format == "auto":
        with open_text(path) as f:
            f.readline()
            line = f.readline().decode("utf-8", "replace").rstrip("\r\n").split(delimiter)
        value = line[cols["date"]].strip() if len(line) > cols["date"] else ""
        try:
            time_format, note = detect_time_format(value)
        except DataError as e:
            raise DataError(f"{path}:2: {e}") from None
        print(f"note: {path}: {note} (time format auto)", file=sys.stderr)
    names = {"session": session_col, "item": item_col, "date": time_col, "order": time_col}
    return _read(
        path,
        delimiter=delimiter,
        n_fields=len(header),
        cols=cols,
        names=names,
        date_kind=time_format,
        skip_lines=1,
        block_bytes=block_bytes,
    )
