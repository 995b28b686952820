"""The reproduction's state files: what is finished, with its results, safe for two commands.

``STATE_DIR/DATASET/state.json`` holds one dataset's records; it is small
and committed with the page, so the page can be rewritten without the run
directories. Per-example test ranks are kept beside it in
``STATE_DIR/DATASET/ranks/NAME.npz`` for the significance tests.
"""

import contextlib
import fcntl
import json
import os

STATE_FILE = "state.json"
STATE_FORMAT = "minisriem-reproduce"
STATE_KEYS = ("dataset", "runs", "invocations")


def load_state(folder):
    """The state of one dataset's runs, or None when there is none yet.

    Returns
    -------
    dict or None
        ``format``, ``dataset``, ``data_dir``, ``stats`` (Table 1's figures),
        ``invocations`` (command, time, machine of every start) and ``runs``
        (name -> record; ``record["status"]`` is "running" until it is done).
    """
    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        return None
    fix = f"restore it from git, or move it away to start {folder} afresh"
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except ValueError as e:  # bad JSON or bad UTF-8
        raise ValueError(f"{path} is not valid JSON ({e}); {fix}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = type(state).__name__ if not isinstance(state, dict) else "another format"
        raise ValueError(f"{path} is not a {STATE_FORMAT} state file (found {found}); {fix}")
    for key, kind in (("dataset", str), ("runs", dict), ("invocations", list)):
        if not isinstance(state.get(key), kind):
            raise ValueError(f"{path}: {key!r} is missing or not a JSON {_json_kind(kind)}; {fix}")
    for name, record in state["runs"].items():
        if not isinstance(record, dict):
            raise ValueError(f"{path}: run {name!r} is not a JSON object; {fix}")
    if "stats" in state and not isinstance(state["stats"], dict):
        raise ValueError(f"{path}: 'stats' is not a JSON object; {fix}")
    return state


def _json_kind(kind):
    return {str: "string", dict: "object", list: "list"}[kind]


def save_state(folder, state):
    """Write the state atomically (a half-written file never replaces a good one)."""
    from minisriem.checkpoint import write_text

    write_text(os.path.join(folder, STATE_FILE), json.dumps(state, indent=1) + "\n")


@contextlib.contextmanager
def file_lock(path, wait=True):
    """Hold an exclusive ``flock`` on ``path`` (created if missing) inside the block.

    Yields True when the lock is held; with ``wait=False`` yields False at once
    when another process holds it. The lock goes with the process, so a killed
    command never leaves a stale one behind.
    """
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def update_state(folder, change, new):
    """Apply ``change(state)`` to the state on disk and write it, under a lock.

    Another command may have written the file since this one read it, so the
    file is read again inside the lock; ``change`` sets only this command's
    own entries. ``new()`` makes the state of a first run. Returns the state
    as written.
    """
    with file_lock(os.path.join(folder, STATE_FILE + ".lock")):
        state = load_state(folder) or new()
        change(state)
        save_state(folder, state)
    return state


def is_done(record):
    return record is not None and record.get("status") in ("finished", "early-stopped")


RANKS_DIR = "ranks"
"""Per-example test ranks of each run, ``STATE_DIR/DATASET/ranks/NAME.npz`` (compressed)."""


def save_ranks(state_folder, name, ranks):
    """Keep a run's per-example test ranks (int32), for the paired significance tests."""
    import numpy as np

    from data_tools.fileio import atomic_outputs

    folder = os.path.join(state_folder, RANKS_DIR)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + ".npz")
    with atomic_outputs([path]) as (tmp,):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, ranks=np.asarray(ranks, dtype=np.int32))
    return path


def load_ranks(state_folder, name):
    """A run's kept per-example test ranks (int32 array), or None when none were kept."""
    import numpy as np

    path = os.path.join(state_folder, RANKS_DIR, name + ".npz")
    if not os.path.exists(path):
        return None
    with np.load(path) as z:
        return z["ranks"]
