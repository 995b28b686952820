"""The reproduction's run records as the page reads them, and how it writes their numbers.

:func:`finished_records` picks a group's finished records out of a dataset's
state; :func:`pct` and :func:`duration` are the page's number formats,
:data:`DATASET_TITLES` its names of the datasets, :data:`PROTOCOL_TEXT` of the
protocols.
"""

import math

from minisriem.experiments.state import is_done

DATASET_TITLES = {"diginetica": "DIGINETICA", "yoochoose1_64": "YOOCHOOSE 1/64"}
"""The page's name of each dataset."""

PROTOCOL_TEXT = {
    "refit": "refit",
    "validation-selected": "validation-selected",
    "best-test-over-epochs": "best test over epochs (authors')",
    "fixed-epochs-all-train": "fixed epochs, all training sessions",
    "all-train": "all training sessions",
}
"""The page's words for each protocol of ``summary.json``."""


def pct(x):
    """``x`` in percent with two decimals, or "-" when there is none."""
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def duration(seconds):
    """``"85 s"``, ``"2.1 min"`` or ``"1.25 h"``."""
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def finished_records(state, group, refit=False):
    """Finished records of a group, by seed (models) or the one baseline record.

    ``refit``: the refit runs (phase 2) instead of the phase-1 runs.
    """
    out = [
        (name, r)
        for name, r in state["runs"].items()
        if r.get("group") == group and is_done(r) and (r.get("protocol") == "refit") == refit
    ]
    return sorted(out, key=lambda nr: nr[1].get("settings", {}).get("seed", 0))
