"""The one exception the data tools raise for bad input."""


class DataError(Exception):
    """A user-facing problem with input data, with a one-line message.

    The message names the file (and the line, where there is one) and says
    what to do. Command-line tools print it as ``error: <message>`` and exit
    with status 2; library callers can catch it like any exception.
    """
