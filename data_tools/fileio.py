"""Small file helpers: atomic writes, stale temporary files, source fingerprints, inputs.

Every output file is first written under a temporary name in its final
folder and then renamed with :func:`os.replace`, which is atomic on one file
system. A run that fails half way therefore never leaves a truncated file
behind under the real name. The temporary name holds the writer's process
id, ``.NAME.PID.XXXXXXXX.tmp``, so a later write into the same folder can
remove the ones whose writer is gone (killed with SIGKILL, say) and never
touches a live writer's.
"""

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile

from .errors import DataError

_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]{6,}\.tmp$")
HASH_BLOCK = 1 << 20


@contextlib.contextmanager
def atomic_outputs(paths):
    """Write several files so that either all of them appear or none does.

    Parameters
    ----------
    paths : list of str
        Final file names. Their folders must exist.

    Yields
    ------
    list of str
        Temporary names, one per final name, in the same folders. Write to
        these; on a clean exit they are renamed to the final names, on an
        exception (or Ctrl-C) they are deleted.
    """
    temps = []
    try:
        for folder in sorted({os.path.dirname(os.path.abspath(p)) for p in paths}):
            remove_stale_temps(folder)
        for path in paths:
            folder, base = os.path.split(os.path.abspath(path))
            fd, temp = tempfile.mkstemp(prefix=f".{base}.{os.getpid()}.", suffix=".tmp", dir=folder)
            os.close(fd)
            temps.append(temp)
            os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; give outputs normal modes
        yield temps
        for temp, path in zip(temps, paths, strict=True):
            os.replace(temp, path)
        temps = []
    finally:
        for temp in temps:
            with contextlib.suppress(OSError):
                os.remove(temp)


def remove_stale_temps(folder):
    """Remove our temporary files in ``folder`` whose writing process no longer runs.

    Only names of our own pattern ``.NAME.PID.XXXXXXXX.tmp`` are considered;
    a file whose PID is alive (or cannot be checked) is kept.

    Returns
    -------
    list of str, the files removed
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMP_NAME.match(name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        with contextlib.suppress(OSError):
            if os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
                removed.append(path)
    return removed


def _process_alive(pid):
    if pid <= 0:
        return True  # not a real writer's id: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


_HASHES = {}


def file_sha256(path):
    """sha256 of a file's bytes, read in blocks (memory stays flat on large files).

    Kept per process for a file whose size, times and inode have not changed
    (the change time cannot be set back, so an edit is always seen).
    """
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(HASH_BLOCK):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def fingerprint(paths):
    """Describe source files by absolute path, size, modification time and content hash.

    Parameters
    ----------
    paths : list of str

    Returns
    -------
    list of dict
        One ``{"path", "size", "mtime_ns", "sha256"}`` per file, sorted by
        path. Two fingerprints compare equal when the files hold the same
        bytes (and kept their size and time).
    """
    out = []
    for path in sorted(os.path.abspath(p) for p in paths):
        check_regular(path)
        st = os.stat(path)
        out.append(
            {
                "path": path,
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": file_sha256(path),
            }
        )
    return out


def check_regular(path):
    """Refuse a path that is not a regular file (a FIFO, a device, a socket) before opening it.

    Opening a FIFO blocks until a writer comes, and our readers read a file
    more than once; the command-line tools copy such inputs first
    (:func:`regular_input`).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot open ({e.strerror})") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"{path}: is a folder, expected a file")
    if not stat.S_ISREG(mode):
        raise DataError(
            f"{path}: not a regular file (a pipe or device); save it to a file first, or "
            "give it as --input to a data_tools command, which copies it once"
        )


@contextlib.contextmanager
def regular_input(path):
    """``path`` itself when it is a regular file or folder; else a temporary copy of it.

    A pipe or FIFO (``--input <(zcat log.gz)``) is read once, streamed into a
    temporary file that is removed afterwards, so the readers can read it
    as often as they need.

    Yields
    ------
    str
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        yield path  # the reader says what is wrong with it
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        yield path
        return
    base = os.path.basename(path) or "input"
    fd, temp = tempfile.mkstemp(prefix=f"minisriem-{os.getpid()}-", suffix=f"-{base}")
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as source:
            shutil.copyfileobj(source, out, HASH_BLOCK)
        yield temp
    finally:
        with contextlib.suppress(OSError):
            os.remove(temp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
