"""Fast, checked parsing of delimited text files into NumPy arrays.

Raw click logs can have tens of millions of rows, too many to hold as Python
objects. We read a file in blocks of whole lines, view each block as a byte
array and find the delimiters and line ends with NumPy; a field is then a
``(start, end)`` pair of byte positions, and integers and dates are decoded
from the digit bytes with array arithmetic. Every check reports the file and
line of the first bad row as a :class:`DataError`.
"""

import datetime

import numpy as np

from .errors import DataError
from .fileio import check_regular

NEWLINE, CR = 10, 13
ZERO = ord("0")


def open_text(path):
    """Open a data file for binary reading, as a DataError when that fails.

    Parameters
    ----------
    path : str

    Returns
    -------
    file object
    """
    check_regular(path)
    try:
        return open(path, "rb")
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    except IsADirectoryError as e:
        raise DataError(f"{path}: is a folder, expected a file") from e
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror})") from e


def count_lines(path, block_bytes=1 << 24):
    """Number of lines in a file (a last line without a newline counts).

    Parameters
    ----------
    path : str
    block_bytes : int

    Returns
    -------
    int
    """
    n, last = 0, b"\n"
    with open_text(path) as f:
        while block := f.read(block_bytes):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def iter_blocks(f, first_line, block_bytes=1 << 24):
    """Read a binary file from its current position in blocks of whole lines.

    Parameters
    ----------
    f : binary file object
    first_line : int
        Line number (1-based) of the next line in ``f``.
    block_bytes : int
        Approximate block size.

    Yields
    ------
    first_line : int
        Line number of the block's first line.
    block : bytes
        Whole lines, each ending in ``b"\\n"``.
    """
    rest = b""
    while True:
        data = f.read(block_bytes)
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield first_line, data[:cut]
            first_line += data.count(b"\n", 0, cut)
    if rest:
        yield first_line, rest + b"\n"


class Fields:
    """The field positions of a block of delimited lines.

    Attributes
    ----------
    buf : ndarray of shape (B,), uint8
        The block's bytes.
    starts, ends : ndarray of shape (R, F), int64
        Field ``j`` of row ``i`` is ``buf[starts[i, j]:ends[i, j]]``.
    line : ndarray of shape (R,), int64
        1-based line number of each row in the file (blank lines are skipped).
    path : str
    """

    def __init__(self, block, delimiter, n_fields, first_line, path):
        buf = np.frombuffer(block, dtype=np.uint8)
        nl = np.flatnonzero(buf == NEWLINE)  # one per line
        line_start = np.concatenate(([0], nl[:-1] + 1))
        line_end = nl.copy()
        has_cr = (line_end > line_start) & (buf[line_end - 1] == CR)
        line_end[has_cr] -= 1  # accept Windows line ends
        delims = np.flatnonzero(buf == ord(delimiter))
        per_line = np.bincount(np.searchsorted(nl, delims), minlength=len(nl))
        blank = line_end == line_start
        bad = np.flatnonzero(~blank & (per_line != n_fields - 1))
        if len(bad):
            i = bad[0]
            raise DataError(
                f"{path}:{first_line + i}: expected {n_fields} fields separated by "
                f"{delimiter!r}, found {per_line[i] + 1}; check the file format and delimiter"
            )
        keep = ~blank
        delims = delims.reshape(-1, n_fields - 1)  # blank lines hold no delimiters
        self.buf = buf
        self.starts = np.column_stack([line_start[keep], delims + 1])
        self.ends = np.column_stack([delims, line_end[keep]])
        self.line = first_line + np.flatnonzero(keep)
        self.path = path

    def __len__(self):
        return len(self.line)

    def text(self, row, col):
        """str: the text of one field, for error messages."""
        raw = bytes(self.buf[self.starts[row, col] : self.ends[row, col]])
        return raw.decode("utf-8", "replace")

    def fail(self, rows, col, what, expected):
        """Raise a DataError for the first row in ``rows`` (a bool mask)."""
        i = int(np.flatnonzero(rows)[0])
        text = self.text(i, col)
        problem = f"{what} is missing" if text == "" else f"{what} {text!r} is not {expected}"
        raise DataError(f"{self.path}:{self.line[i]}: {problem}")

    def chars(self, col, width):
        """The first ``width`` bytes of a field, zero beyond its end.

        Returns
        -------
        chars : ndarray of shape (R, width), uint8
        lengths : ndarray of shape (R,), int64
        """
        s = self.starts[:, col]
        lengths = self.ends[:, col] - s
        pos = s[:, None] + np.arange(width)  # R, width
        inside = np.arange(width) < lengths[:, None]
        chars = np.where(inside, self.buf[np.minimum(pos, len(self.buf) - 1)], 0)
        return chars.astype(np.uint8), lengths

    def integers(self, col, what):
        """Decode a column of non-negative decimal integers.

        Returns
        -------
        ndarray of shape (R,), int64
        """
        width = int((self.ends[:, col] - self.starts[:, col]).max(initial=0))
        chars, lengths = self.chars(col, min(max(width, 1), 18))
        digits = chars.astype(np.int64) - ZERO  # R, W
        inside = np.arange(chars.shape[1]) < lengths[:, None]
        bad = (lengths == 0) | np.any(inside & ((digits < 0) | (digits > 9)), 1)
        if bad.any():
            self.fail(bad, col, what, "an integer (digits 0-9 only)")
        too_long = lengths > 18
        if too_long.any():
            i = int(np.flatnonzero(too_long)[0])
            raise DataError(
                f"{self.path}:{self.line[i]}: {what} {self.text(i, col)[:40]!r} is longer "
                "than 18 digits, beyond the 64-bit integers this tool reads"
            )
        value = np.zeros(len(self), dtype=np.int64)
        for j in range(chars.shape[1]):  # Horner's rule, one digit column at a time
            value = np.where(inside[:, j], value * 10 + digits[:, j], value)
        return value

    def timestamps(self, col, what, kind):
        """Decode ISO dates or date-times to seconds since 1970-01-01 (UTC).

        Parameters
        ----------
        col : int
        what : str
            Field name for error messages.
        kind : {"date", "datetime", "iso"}
            ``"date"``: exactly ``YYYY-MM-DD`` (DIGINETICA's eventdate).
            ``"datetime"``: ``YYYY-MM-DDTHH:MM:SS`` followed by anything, as
            YOOCHOOSE's ``2014-04-07T10:51:09.277Z``: like SR-GNN we read the
            first 19 characters, so time is kept to the second. ``"iso"``:
            either of them, with ``T`` or a space between date and time.

        Returns
        -------
        ndarray of shape (R,), int64
        """
        chars, lengths = self.chars(col, 19)
        d = chars.astype(np.int64) - ZERO  # R, 19

        def number(a, b):
            return sum(d[:, j] * 10 ** (b - 1 - j) for j in range(a, b))

        is_digit = (d >= 0) & (d <= 9)
        date_ok = np.all(is_digit[:, [0, 1, 2, 3, 5, 6, 8, 9]], 1)
        date_ok &= (chars[:, 4] == ord("-")) & (chars[:, 7] == ord("-"))
        time_ok = np.all(is_digit[:, [11, 12, 14, 15, 17, 18]], 1)
        time_ok &= (chars[:, 13] == ord(":")) & (chars[:, 16] == ord(":"))
        if kind == "date":
            has_time = np.zeros(len(self), dtype=bool)
            ok = date_ok & (lengths == 10)
            expected = "a date like 2016-05-09"
        else:
            sep = chars[:, 10]
            has_time = lengths >= 19
            time_ok &= (
                (sep == ord("T")) if kind == "datetime" else ((sep == ord("T")) | (sep == 32))
            )
            ok = date_ok & has_time & time_ok
            expected = "a timestamp like 2014-04-07T10:51:09.277Z"
            if kind == "iso":
                ok |= date_ok & (lengths == 10)
                expected = "a date like 2016-05-09 or a date-time like 2016-05-09 13:45:00"
        year, month, day = number(0, 4), number(5, 7), number(8, 10)
        hour, minute, second = (np.where(has_time, number(a, a + 2), 0) for a in (11, 14, 17))
        ok &= (month >= 1) & (month <= 12) & (day >= 1) & (hour < 24) & (minute < 60)
        ok &= second < 62  # strptime's %S accepts leap seconds 60 and 61
        months = ((year - 1970) * 12 + np.clip(month, 1, 12) - 1).astype("datetime64[M]")
        month_days = (months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")
        ok &= day <= month_days.astype(np.int64)
        if not ok.all():
            self.fail(~ok, col, what, expected)
        days = months.astype("datetime64[D]").astype(np.int64) + day - 1
        return days * 86400 + hour * 3600 + minute * 60 + second

    def strptime(self, col, what, fmt):
        """Decode a column with :func:`datetime.datetime.strptime`, to seconds (UTC).

        Each distinct string is parsed once, so this is fast when timestamps
        repeat; times without a zone are taken as UTC.

        Returns
        -------
        ndarray of shape (R,), int64
        """
        width = int((self.ends[:, col] - self.starts[:, col]).max(initial=1))
        chars, lengths = self.chars(col, max(width, 1))
        if np.any(lengths == 0):
            self.fail(lengths == 0, col, what, "")
        strings = chars.view(f"S{chars.shape[1]}").ravel()
        unique, inverse = np.unique(strings, return_inverse=True)
        seconds = np.empty(len(unique), dtype=np.int64)
        for k, raw in enumerate(unique.tolist()):
            try:
                t = datetime.datetime.strptime(raw.decode("utf-8"), fmt)
            except (ValueError, UnicodeDecodeError):
                self.fail(inverse.ravel() == k, col, what, f"a time in the format {fmt!r}")
            if t.tzinfo is None:
                t = t.replace(tzinfo=datetime.timezone.utc)
            seconds[k] = int(t.timestamp())
        return seconds[inverse.ravel()]

    def tokens(self, col, what):
        """A column as raw byte strings (any text without the delimiter).

        Returns
        -------
        ndarray of shape (R,), dtype ``S<width>``
            Trailing NUL bytes are dropped by NumPy, so a token may not end in one.
        """
        width = int((self.ends[:, col] - self.starts[:, col]).max(initial=1))
        chars, lengths = self.chars(col, max(width, 1))
        if np.any(lengths == 0):
            self.fail(lengths == 0, col, what, "")
        return chars.view(f"S{chars.shape[1]}").ravel()

    def floats(self, col, what):
        """Decode a column of finite decimal numbers (``1438163236``, ``1.4e9``, ``12.5``).

        Returns
        -------
        ndarray of shape (R,), float64
        """
        strings = self.tokens(col, what)
        unique, inverse = np.unique(strings, return_inverse=True)
        try:
            values = unique.astype(np.float64)
        except ValueError:  # some value is not a number: find which, one by one
            values = np.array([_float_or_nan(raw) for raw in unique.tolist()], dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            self.fail(bad[inverse.ravel()], col, what, "a number")
        return values[inverse.ravel()]


def _float_or_nan(raw):
    try:
        return float(raw)
    except ValueError:
        return float("nan")
