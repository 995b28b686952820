"""What the data tools' commands share: range-checked options and the error/interrupt rule.

``minisriem.cli`` does the same for the model's commands; the data tools
keep their own small copy because they never import ``minisriem``. Every
command runs its work through :func:`run`::

    p.add_argument("--test-days", type=number(low=0, high=3650, low_open=True), default=7.0)
    args = p.parse_args(argv)
    return run(lambda: work(args))   # DataError/ValueError/OSError -> "error: ...", exit 2
                                     # Ctrl-C -> one line, exit 130
"""

import argparse
import math
import sys
import warnings

from .errors import DataError, one_line_warning

TIME_FORMATS = ("auto", "unix", "unix_ms", "iso")


def _in_range(value, low, high, low_open):
    too_low = low is not None and (value <= low if low_open else value < low)
    return not too_low and (high is None or value <= high)


def _range_text(low, high, low_open):
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f"above {low}" if low_open else f"at least {low}"
    return f"at most {high}"


def integer(low=None, high=None):
    """argparse ``type=``: an integer (ASCII digits, optional sign) in ``[low, high]``."""

    def parse(text):
        stripped = text.strip()
        body = stripped[1:] if stripped[:1] in "+-" else stripped
        if not (body.isascii() and body.isdigit()):
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        value = int(stripped)
        if not _in_range(value, low, high, False):
            raise argparse.ArgumentTypeError(
                f"must be {_range_text(low, high, False)}, got {value}"
            )
        return value

    parse.__name__ = "int"
    return parse


def number(low=None, high=None, low_open=False):
    """argparse ``type=``: a finite number in the range (``low_open``: ``low`` excluded)."""

    def parse(text):
        try:
            if not text.isascii() or "_" in text:
                raise ValueError(text)  # float() reads "1_0" and other scripts' digits
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if not _in_range(value, low, high, low_open):
            raise argparse.ArgumentTypeError(
                f"must be {_range_text(low, high, low_open)}, got {value:g}"
            )
        return value

    parse.__name__ = "float"
    return parse


def check_test_days(value, where="test_days"):
    """``value`` as a float number of days in (0, 3650], or a DataError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where} must be a number of days, got {value!r}")
    if not math.isfinite(value) or not 0 < value <= 3650:
        raise DataError(f"{where} must be a number of days in (0, 3650], got {value!r}")
    return float(value)


def check_time_format(value, where="time_format"):
    """A known time format or a strptime format (holding ``%``), else a DataError."""
    if not isinstance(value, str) or not (value in TIME_FORMATS or "%" in value):
        raise DataError(
            f"{where} must be one of {', '.join(TIME_FORMATS)} or a strptime format such as "
            f"'%d/%m/%Y %H:%M', got {value!r}"
        )
    return value


def time_format(text):
    """argparse ``type=`` for ``--time-format``."""
    try:
        return check_time_format(text)
    except DataError as e:
        raise argparse.ArgumentTypeError(str(e).partition(" ")[2]) from None


def delimiter(text):
    """argparse ``type=`` for ``--delimiter``: one character; ``tab`` or ``\\t`` for a tab."""
    text = "\t" if text in ("\\t", "tab", "TAB") else text
    if len(text) != 1 or text in "\r\n":
        raise argparse.ArgumentTypeError(f"must be one character (or 'tab'), got {text!r}")
    return text


def add_custom_log_options(group, test_days_default=7.0):
    """The options of a custom click log (columns, delimiter, time format, test days).

    ``preprocess`` and ``convert`` both read custom logs; this is their one definition.
    """
    group.add_argument("--session-col", default="session_id")
    group.add_argument("--item-col", default="item_id")
    group.add_argument("--time-col", default="timestamp")
    group.add_argument(
        "--delimiter", type=delimiter, default=",", help="one character; 'tab' for tabs"
    )
    group.add_argument(
        "--time-format",
        type=time_format,
        default="auto",
        help="unix, unix_ms, iso, a strptime format like '%%d/%%m/%%Y %%H:%%M', or auto "
        "(Unix seconds or milliseconds by the number of digits, else iso; says which)",
    )
    group.add_argument(
        "--test-days",
        type=number(low=0, high=3650, low_open=True),
        default=test_days_default,
        help="length of the test period, in days (0, 3650] (default 7)",
    )


def run(body):
    """Run a command's ``body()``; map bad input to exit 2 and Ctrl-C to exit 130.

    Returns
    -------
    int, ``body``'s status (None counts as 0); 2 with ``error: ...`` on stderr for
    a DataError, ValueError or OSError; 130 with one line on Ctrl-C
    """
    warnings.formatwarning = one_line_warning
    try:
        try:
            return body() or 0
        except (DataError, ValueError, OSError) as e:
            text = " ".join(str(e).split("\n"))  # one line, whatever the message holds
            print(f"error: {text}", file=sys.stderr)
            return 2
        except MemoryError:
            print("error: out of memory; the input is too large for this machine", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
