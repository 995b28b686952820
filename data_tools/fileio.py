"""Small file helpers: atomic writes and source fingerprints.

Every output file is first written under a temporary name in its final
folder and then renamed with :func:`os.replace`, which is atomic on one file
system. A run that fails half way therefore never leaves a truncated file
behind under the real name.
"""

import contextlib
import os
import tempfile


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
        exception they are deleted.
    """
    temps = []
    try:
        for path in paths:
            folder, base = os.path.split(os.path.abspath(path))
            fd, temp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
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


def fingerprint(paths):
    """Describe source files by absolute path, size and modification time.

    Parameters
    ----------
    paths : list of str

    Returns
    -------
    list of dict
        One ``{"path", "size", "mtime_ns"}`` per file, sorted by path. Two
        fingerprints compare equal when the files have not changed.
    """
    out = []
    for path in sorted(os.path.abspath(p) for p in paths):
        st = os.stat(path)
        out.append({"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
