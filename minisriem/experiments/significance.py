"""Paired significance tests on per-example test ranks, as the paper claims its results.

The paper reports "paired t-test, p < 0.01" for SR-IEM against the
baselines. With the rank of the target for every test example kept for
every run, two models are compared on the same examples:

    hit_i = 1 if rank_i <= 20 else 0        (Recall@20 is the mean of hit)
    rr_i  = 1 / rank_i if rank_i <= 20 else 0   (MRR@20 is the mean of rr)
    d_i   = x_i(model A) - x_i(model B)

    t = mean(d) / (std(d) / sqrt(N))        paired t statistic, N - 1 degrees of freedom
    p = erfc(|t| / sqrt(2))                 two-sided; the normal approximation of the t
                                            distribution is exact to many digits at N ~ 1e4

and a paired bootstrap (resample examples, keep the pairs) gives a 95%
interval of mean(d).
"""

import math

import numpy as np

K = 20


def per_example(ranks, k=K):
    """Per-example hits and reciprocal ranks at ``k``.

    Parameters
    ----------
    ranks : int array (N,), rank of the target (1 = first)

    Returns
    -------
    hit, rr : float64 arrays (N,)
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    inside = ranks <= k
    return inside.astype(np.float64), np.where(inside, 1.0 / ranks, 0.0)


def paired_t(a, b):
    """Paired t test of ``mean(a - b) = 0``.

    Parameters
    ----------
    a, b : float arrays (N,), the same examples under two models

    Returns
    -------
    (t, p) : the t statistic and its two-sided p-value (normal approximation);
        (0.0, 1.0) when every difference is zero
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    if n < 2:
        raise ValueError(f"a paired test needs at least 2 examples, got {n}")
    sd = d.std(ddof=1)
    if sd == 0:
        return (0.0, 1.0) if d.mean() == 0 else (math.copysign(math.inf, d.mean()), 0.0)
    t = d.mean() / (sd / math.sqrt(n))
    return float(t), float(math.erfc(abs(t) / math.sqrt(2)))


def paired_bootstrap(a, b, n_boot=2000, seed=0, chunk=50):
    """A 95% interval of ``mean(a - b)`` by resampling examples in pairs.

    Parameters
    ----------
    a, b : float arrays (N,)
    n_boot : int, resamples; seed : int; chunk : resamples drawn at once (memory)

    Returns
    -------
    (low, high) : the 2.5% and 97.5% quantiles of the resampled means
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        means[start : start + m] = d[idx].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def compare(ranks_a, ranks_b, k=K, n_boot=2000, seed=0):
    """SR-IEM (a) against another model (b) on the same test examples.

    Returns
    -------
    dict with, for ``"recall"`` and ``"mrr"``: ``diff`` (mean of a - b, a
    fraction), ``t``, ``p`` and ``ci95`` (the bootstrap interval of ``diff``)
    """
    ranks_a, ranks_b = np.asarray(ranks_a), np.asarray(ranks_b)
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(
            f"the two runs ranked different test sets ({len(ranks_a)} and {len(ranks_b)} examples)"
        )
    out = {}
    pairs = zip(("recall", "mrr"), per_example(ranks_a, k), per_example(ranks_b, k), strict=True)
    for name, xa, xb in pairs:
        t, p = paired_t(xa, xb)
        out[name] = {
            "diff": float(np.mean(xa - xb)),
            "t": t,
            "p": p,
            "ci95": paired_bootstrap(xa, xb, n_boot, seed),
        }
    return out
