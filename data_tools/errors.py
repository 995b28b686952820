"""The one exception the data tools raise for bad input."""


class DataError(Exception):
    """A user-facing problem with input data, with a one-line message.

    The message names the file (and the line, where there is one) and says
    what to do. Command-line tools print it as ``error: <message>`` and exit
    with status 2; library callers can catch it like any exception.
    """


def one_line_warning(message, category, filename, lineno, line=None):
    """``warnings.formatwarning`` for the command-line tools: ``warning: MESSAGE``, one line.

    Python's default format adds the file, line and source line of the code that
    warned, which tells a user of a command nothing. The library keeps the default;
    the commands install this one.
    """
    return "warning: " + " ".join(str(message).split()) + "\n"
