"""minisriem: SR-IEM session-based recommendation in hand-written NumPy."""

__version__ = "0.1.0"
