"""Fuzz every loader: a few hundred seeded mutations each, none may end badly (issue 13).

Runs ``benchmarks/fuzz_loaders.py`` (which does 10,000 per loader by default)
in a subprocess with its memory cap, and asserts that every mutated input
either loaded cleanly into valid data or was refused with the project's own
one-line error: no other exception, no invalid data, no hang.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOADERS = (
    "custom-csv", "diginetica-csv", "yoochoose-dat", "srgnn-pickle", "prepared-npz",
    "model-npz", "checkpoint-npz", "sessions-file", "recbole-inter", "recbole-split",
    "session-rec",
)  # fmt: skip
PER_LOADER = 150


@pytest.fixture(scope="module")
def report():
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "fuzz_loaders.py"),
         "--per-loader", str(PER_LOADER), "--seed", "7", "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT, "NUMBA_NUM_THREADS": "1",
             "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("loader", LOADERS)
def test_no_mutated_input_ends_badly(report, loader):
    counts = report[loader]
    assert counts["tried"] == PER_LOADER
    assert counts["failed"] == 0, counts["examples"]
    assert counts["clean"] + counts["refused"] == PER_LOADER
    assert counts["refused"] > 0  # the mutations do reach the checks
