"""Which code made a result: the project's git commit, recorded with every run."""

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_commit():
    """The git commit of this checkout, with ``-dirty`` when tracked files changed.

    Returns
    -------
    str or None
        ``"b5051c8...-dirty"``; None when the package is not in a git checkout
        (an installed copy) or git is not there.
    """
    try:
        head = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("-dirty" if dirty.stdout.strip() else "")
