"""Limit the threads of BLAS and Numba, before NumPy is imported when possible.

BLAS libraries (OpenBLAS, MKL) read their thread count from the environment
once, when NumPy is first imported; Numba's pool can be narrowed at any time.
So :func:`limit_threads` must run before the first ``import numpy`` to limit
everything: the tools call it first thing, and this module imports nothing
heavy (Numba, and with it NumPy, only inside :func:`limit_threads`).
"""

import os
import sys

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def limit_threads(n):
    """Let BLAS and Numba use at most ``n`` threads.

    Parameters
    ----------
    n : int, at least 1

    Returns
    -------
    bool
        True when BLAS is limited too; False when NumPy was already imported,
        so only Numba's threads changed.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"--threads must be at least 1, got {n}")
    blas_limited = "numpy" not in sys.modules
    for name in THREAD_VARIABLES:
        if name == "NUMBA_NUM_THREADS" and "numba" in sys.modules:
            continue  # Numba read it already; changing it now would only confuse it
        os.environ[name] = str(n)
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    return blas_limited
