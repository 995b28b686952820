"""Write the committed figures: every step, full mode, into ``tutorials/figures/``.

Run from anywhere: ``python tutorials/make_figures.py``. It runs each step
``tutorials/NN_*.py`` in turn with ``MINISRIEM_FIGURES=tutorials/figures``
and the full training runs (``MINISRIEM_TUTORIAL_QUICK`` unset), so the
figures in the repository are those of the numbers in ``tutorials/README.md``.
A step run by hand writes its figures to ``tutorials/out/`` instead, which
git ignores. Takes as long as all steps together (see the README).
"""

import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _children_cpu():
    """CPU seconds used so far by finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    env = dict(os.environ, MINISRIEM_FIGURES=os.path.join(HERE, "figures"))
    env.pop("MINISRIEM_TUTORIAL_QUICK", None)
    steps = sorted(f for f in os.listdir(HERE) if f[:2].isdigit() and f.endswith(".py"))
    for step in steps:
        start, cpu = time.perf_counter(), _children_cpu()
        proc = subprocess.run([sys.executable, os.path.join(HERE, step)], env=env)
        if proc.returncode != 0:
            print(f"error: {step} failed (exit status {proc.returncode})", file=sys.stderr)
            return 2
        print(
            f"== {step}: {time.perf_counter() - start:.0f} s, of which CPU "
            f"{_children_cpu() - cpu:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
