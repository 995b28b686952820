"""Fast kernels for the hot loops, each beside a plain NumPy twin.

The twin (``*_numpy``) is the documentation: an independent, vectorised
statement of what the kernel computes. Tests compare the two on random inputs.

STUB: the Numba kernels are being written (issue 5); until then the public
names dispatch to the twins so callers can already use the final API.
"""

import numpy as np


def rank_topk_numpy(scores, target_idx, k):
    """Rank of each row's target and the row's top-k columns.

    ``rank[b] = 1 + #{j : scores[b, j] > scores[b, target_idx[b]]}`` (ties do
    not count against the target), and ``topk[b]`` are the ``k`` columns with
    the largest scores, best first, ties broken by the lower column.

    Parameters
    ----------
    scores : float array of shape (B, n)
    target_idx : int array of shape (B,), columns 0..n-1
    k : int, 1 <= k <= n

    Returns
    -------
    rank : int64 array of shape (B,)
    topk : int64 array of shape (B, k)
    """
    B = scores.shape[0]
    target_score = scores[np.arange(B), target_idx][:, None]
    rank = 1 + (scores > target_score).sum(axis=1)
    topk = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return rank.astype(np.int64), topk.astype(np.int64)


rank_topk = rank_topk_numpy
