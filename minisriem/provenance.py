"""Which code made a result: the project's git commit, recorded with every run."""

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = ("minisriem", "data_tools", "setup.cfg", "pyproject.toml")


def source_commit():
    """The git commit of this checkout, with ``-dirty`` when its code has changed since.

    Only the code counts (the packages and the build files): the results a
    run writes into ``docs/`` change the tree without changing the code.

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
            ["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "--", *CODE],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + ("-dirty" if dirty.stdout.strip() else "")
