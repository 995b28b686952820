"""Click logs with named columns and text tokens (RecBole's ``.inter``, session-rec's files).

Unlike the raw logs of :mod:`data_tools.readers`, whose ids are integers,
these files may name sessions and items by any text ("tokens"), and give
times as decimal numbers of seconds (``1438163236``, ``1438163236.5``). A
file is read in blocks of lines (see :mod:`data_tools.textparse`); each
distinct token gets a code, and only the distinct tokens are kept as Python
objects, so memory stays bounded on large files.

Item codes are shared between the files of one dataset through the
``item_codes`` dict the caller passes in; item ids proper (1..n) are chosen
later by :func:`number_items`.
"""

import numpy as np

from .dataset import check_n_items
from .errors import DataError
from .textparse import Fields, count_lines, iter_blocks, open_text

MAX_ID = 2**31 - 1


class TokenClicks:
    """The rows of one click log, as arrays.

    Attributes
    ----------
    session : ndarray of shape (R,), int64
        Session id of each row when all are integers, else a code per
        distinct session token (per file).
    item : ndarray of shape (R,), int32
        Item code of each row: an index into the shared ``item_codes``.
    time : ndarray of shape (R,), float64
        Seconds, as written in the file.
    """

    def __init__(self, session, item, time):
        self.session, self.item, self.time = session, item, time

    def __len__(self):
        return len(self.session)


def read_header(path, delimiter):
    """The column names of a file's first line (stripped; a UTF-8 BOM is dropped)."""
    with open_text(path) as f:
        line = f.readline()
    if not line.strip():
        raise DataError(f"{path}: the file is empty")
    text = line.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
    return [name.strip() for name in text.split(delimiter)]


def find_columns(path, header, wanted, expected):
    """Where each wanted column is in the header.

    Parameters
    ----------
    path : str
    header : list of str
    wanted : dict of str to str
        Our key (e.g. ``"session"``) to the column name the format requires.
    expected : str
        The documented header, for the message.

    Returns
    -------
    dict of str to int
    """
    cols = {}
    for key, name in wanted.items():
        if name not in header:
            raise DataError(
                f"{path}:1: the header has no {name!r} column (found {header}); "
                f"expected {expected!r}, tab-separated, in any column order"
            )
        cols[key] = header.index(name)
    return cols


def read_token_clicks(path, cols, names, n_fields, item_codes, block_bytes=1 << 24):
    """Read the data lines of a tab-separated file with a header into :class:`TokenClicks`.

    Session ids that are all integers (the usual case) are used as they are;
    otherwise the file is read again with a code per distinct session token.

    Parameters
    ----------
    path : str
    cols : dict
        Column index of ``"session"``, ``"item"`` and ``"time"``.
    names : dict
        Their column names, for error messages.
    n_fields : int
        Columns per line (from the header).
    item_codes : dict of bytes to int
        Extended in place with the items of this file.
    block_bytes : int

    Returns
    -------
    TokenClicks
    """
    known_items = dict(item_codes)
    try:
        return _read_rows(path, cols, names, n_fields, item_codes, block_bytes, None)
    except _NotIntegers:
        item_codes.clear()
        item_codes.update(known_items)
        return _read_rows(path, cols, names, n_fields, item_codes, block_bytes, {})


class _NotIntegers(Exception):
    """Some session id is not an integer: read the file again with session codes."""


def _read_rows(path, cols, names, n_fields, item_codes, block_bytes, session_codes):
    n_rows = count_lines(path, block_bytes) - 1
    session = np.empty(n_rows, dtype=np.int64)
    item = np.empty(n_rows, dtype=np.int32)
    time = np.empty(n_rows, dtype=np.float64)
    r = 0
    with open_text(path) as f:
        f.readline()
        for first_line, block in iter_blocks(f, 2, block_bytes):
            fields = Fields(block, "\t", n_fields, first_line, path)
            n = len(fields)
            time[r : r + n] = fields.floats(cols["time"], names["time"])
            tokens = fields.tokens(cols["session"], names["session"])
            if session_codes is not None:
                session[r : r + n] = _codes(tokens, session_codes)
            elif tokens.dtype.itemsize <= 18 and np.all(np.char.isdigit(tokens)):
                session[r : r + n] = tokens.astype(np.int64)
            else:
                raise _NotIntegers
            item[r : r + n] = _codes(fields.tokens(cols["item"], names["item"]), item_codes)
            r += n
    if r == 0:
        raise DataError(f"{path}: no data rows; the file holds only its header")
    return TokenClicks(session[:r], item[:r], time[:r])


def _codes(tokens, code_of):
    """The code of each token, adding unseen tokens to ``code_of``."""
    unique, inverse = np.unique(tokens, return_inverse=True)
    codes = [code_of.setdefault(x, len(code_of)) for x in unique.tolist()]
    return np.asarray(codes, dtype=np.int64)[inverse.ravel()]


def ordered_sessions(clicks):
    """Sessions of item codes, clicks in time order, sessions in order of their last click.

    Ties keep file order: clicks with equal times stay in the order of the
    file, sessions whose last clicks share a time in the order of their
    first row. Sessions of one click cannot make an example and are dropped.

    Parameters
    ----------
    clicks : TokenClicks

    Returns
    -------
    offsets : ndarray of shape (S + 1,), int64
    items : ndarray of shape (nnz,), int64, item codes
    times : ndarray of shape (nnz,), float64, the clicks' times
    dropped : int, the number of one-click sessions left out
    """
    rows = np.lexsort((clicks.time, clicks.session))  # by session, then time; stable
    session = clicks.session[rows]
    starts = np.flatnonzero(np.concatenate(([True], session[1:] != session[:-1])))
    lengths = np.diff(np.append(starts, len(rows)))  # S
    last_time = clicks.time[rows][np.append(starts[1:], len(rows)) - 1]  # S
    first_row = np.minimum.reduceat(rows, starts)  # S
    order = np.lexsort((first_row, last_time))
    order = order[lengths[order] >= 2]
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths[order], out=offsets[1:])
    shift = np.repeat(starts[order] - offsets[:-1], lengths[order])
    where = rows[np.arange(int(offsets[-1]), dtype=np.int64) + shift]
    return offsets, clicks.item[where], clicks.time[where], int(len(starts) - len(order))


def number_items(order, tokens, keep_ids, path):
    """Item ids 1..n for item codes, and the raw id (or token) of each id.

    Parameters
    ----------
    order : ndarray of int
        Item codes in the order that numbers them: an item gets the next id
        at its first appearance (the SR-GNN protocol's rule, applied to the
        training data first). Codes that never appear get no id.
    tokens : list of bytes or str
        The token of each code.
    keep_ids : bool
        Use integer tokens as the ids themselves (``n`` = the largest),
        as SR-GNN pickles number them; every token must then be an integer
        in 1..2**31-1.
    path : str
        For messages.

    Returns
    -------
    new_id : ndarray of shape (K,), int32
        The id of each code (0 for codes without one).
    item_ids : ndarray of shape (n + 1,), int64
        Raw id of each id: the integer token, or the id itself when tokens
        are not all integers (-1 at the padding slot 0).
    item_tokens : ndarray of shape (n + 1,), str, or None
        The token of each id when tokens are not all integers.
    """
    text = [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in tokens]
    integer = all(t.isascii() and t.isdigit() and len(t) <= 18 for t in text)
    values = np.array([int(t) for t in text], dtype=np.int64) if integer else None
    if keep_ids:
        if not integer or (len(values) and (values.min() < 1 or values.max() > MAX_ID)):
            bad = next(
                (t for t in text if not (t.isascii() and t.isdigit()) or not 1 <= int(t) <= MAX_ID),
                "",
            )
            raise DataError(
                f"{path}: item token {bad!r} is not an id in 1..{MAX_ID}; keeping the ids "
                "needs integer item tokens (convert without --keep-ids to number them 1..n)"
            )
        n = int(values.max(initial=0))
        check_n_items(n, path)
        item_ids = np.arange(n + 1, dtype=np.int64)
        item_ids[0] = -1
        return values.astype(np.int32), item_ids, None
    codes, first = np.unique(np.asarray(order, dtype=np.int64), return_index=True)
    seen = codes[np.argsort(first, kind="stable")]  # codes in order of first appearance
    new_id = np.zeros(len(tokens), dtype=np.int32)
    new_id[seen] = np.arange(1, len(seen) + 1, dtype=np.int32)
    if integer:
        return new_id, np.concatenate(([-1], values[seen])), None
    item_ids = np.arange(len(seen) + 1, dtype=np.int64)
    item_ids[0] = -1
    return new_id, item_ids, np.array([""] + [text[c] for c in seen.tolist()])
