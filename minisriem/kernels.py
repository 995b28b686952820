"""Fast kernels for the hot loops, each beside a plain NumPy twin.

The twin (``*_numpy``) is the documentation: an independent, vectorised
statement of what the kernel computes. The kernel is the same computation
written as ordinary loops and compiled by Numba. Tests
(``tests/test_kernels.py``) compare the two on random inputs and edge cases.

kernel (its twin: the name + ``_numpy``)
``softmax_xent_inplace``       loss of eq. (9)-(10) and ``dscores`` in place;
                               ``SRIEM.loss_and_grads``
``rank_topk``                  the target's rank and the top-k items; evaluation
``adam_step``                  one Adam update with coupled L2, in place; ``Adam.step``
``embedding_scatter_add``      ``dE[x] += demb`` for every looked-up item;
                               ``SRIEM.loss_and_grads``
``matmul_items``               the (B x d x n) products with all items, split by items
                               over threads (twin: ``np.matmul``); ``SRIEM``

Each public kernel is a small Python function that checks its inputs (Numba
does not check indices: a bad index would read or write the wrong memory) and
calls the compiled loop, ``_name_loop``. Loops that are independent per row run
in parallel (``numba.prange``) on ``numba.get_num_threads()`` threads, by
default one per core. ``cache=True`` stores the compiled code beside this file,
so only the first run pays the compile time.

Shape letters as in :mod:`minisriem.layers`: ``B`` batch, ``n`` items,
``d`` embedding size, ``L`` session length.
"""

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # optional: without it the products use BLAS's own threads
    ThreadpoolController = None

# Numba picks OpenMP as its threading layer when it can. OpenMP's idle threads
# keep spinning for a while after a parallel loop, and on a 2-core machine they
# slowed the BLAS products that follow in a training step (44 -> 59 ms for the
# three GEMMs). The "workqueue" layer's threads sleep at once. This takes
# effect only if no parallel Numba code has run yet; NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

__all__ = [
    "softmax_xent_inplace",
    "softmax_xent_inplace_numpy",
    "rank_topk",
    "rank_topk_numpy",
    "adam_step",
    "adam_step_numpy",
    "embedding_scatter_add",
    "embedding_scatter_add_numpy",
    "exp_nonpositive",
    "matmul_items",
    "blas_single_thread",
]


def _check_rows(scores, target_idx):
    """Common checks of a (B, n) score matrix and its (B,) target columns."""
    if scores.ndim != 2 or not scores.flags.c_contiguous:
        raise ValueError("scores must be a C-contiguous (B, n) array")
    target_idx = np.ascontiguousarray(target_idx, dtype=np.int64)
    if target_idx.shape != (scores.shape[0],):
        raise ValueError(f"target_idx must be ({scores.shape[0]},), got {target_idx.shape}")
    if target_idx.size and (target_idx.min() < 0 or target_idx.max() >= scores.shape[1]):
        raise ValueError(f"target_idx must be columns 0..{scores.shape[1] - 1}")
    return target_idx


# --------------------------------------------------------------------------
# exp for the softmax: x <= 0, vectorisable
# --------------------------------------------------------------------------
def exp_nonpositive(x):
    """``exp(x)`` for ``x <= 0`` (a score minus its row's maximum).

    In plain Python this is ``np.exp``. Inside a Numba kernel, float32 uses
    the loop-friendly version below: the C library's ``expf`` is a call per
    element, which Numba cannot vectorise; with it the fused softmax took
    13 ms of a training step, with the version below about 4 ms.
    """
    return np.exp(x)


_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln 2 = _LN2_HI + _LN2_LO; _LN2_HI has few bits,
_LN2_LO = np.float32(-2.12194440e-4)  # so k * _LN2_HI is exact for |k| <= 127
_EXP_MIN = np.float32(-87.0)  # exp(-87) = 1.6e-38, float32's smallest normal number
_ZERO32 = np.float32(0.0)
_HALF32 = np.float32(0.5)
_ONE32 = np.float32(1.0)
# Taylor coefficients 1/7!, ..., 1/2!: relative error < 2e-7 for |r| <= ln(2)/2
_C7, _C6, _C5 = np.float32(1 / 5040), np.float32(1 / 720), np.float32(1 / 120)
_C4, _C3, _C2 = np.float32(1 / 24), np.float32(1 / 6), np.float32(1 / 2)


def _exp_nonpositive_f32(x):
    """float32 ``exp(x)``, ``x <= 0``, with only arithmetic and selects (SIMD-friendly).

    ``exp(x) = 2**k * exp(r)`` with ``k = round(x / ln 2)`` and
    ``|r| <= ln(2) / 2``; ``exp(r)`` is a degree-7 polynomial and ``2**k``
    is built directly from its IEEE-754 exponent bits, ``(k + 127) << 23``.
    Below -87 the result is 0 (within 1.6e-38 of the truth); NaN stays NaN.
    """
    xc = x if x > _EXP_MIN else _EXP_MIN  # keeps 2**k a normal number
    k = np.floor(xc * _LOG2E + _HALF32)
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _ONE32
    p = p * r + _ONE32
    two_k = np.int32((np.int32(k) + 127) << 23).view(np.float32)
    e = p * two_k
    if x < _EXP_MIN:
        e = _ZERO32
    if x != x:  # NaN in, NaN out
        e = x
    return e


@overload(exp_nonpositive)
def _exp_nonpositive_overload(x):
    if x == types.float32:
        return _exp_nonpositive_f32
    return lambda x: np.exp(x)  # float64 (the gradient checks): the exact libm exp


# --------------------------------------------------------------------------
# fused softmax cross-entropy, eq. (9)-(10), forward and backward in one pass
# --------------------------------------------------------------------------
def softmax_xent_inplace_numpy(scores, target_idx):
    """Mean softmax cross-entropy, and its gradient written over ``scores``.

    ``loss = mean_b [logsumexp(scores[b]) - scores[b, target_idx[b]]]`` (eq. 9-10)
    and, in place, ``scores <- (softmax(scores) - onehot(target_idx)) / B``,
    which is ``dloss / dscores``.

    Parameters
    ----------
    scores : float array of shape (B, n), C-contiguous; overwritten
    target_idx : int array of shape (B,), the target's column 0..n-1

    Returns
    -------
    loss : float
    """
    B = scores.shape[0]
    rows = np.arange(B)
    target_score = scores[rows, target_idx].astype(np.float64)  # B
    m = scores.max(axis=1, keepdims=True)  # B,1
    np.subtract(scores, m, out=scores)
    np.exp(scores, out=scores)
    total = scores.sum(axis=1, dtype=np.float64)  # B
    loss = np.mean(m[:, 0] + np.log(total) - target_score)
    scores *= (1.0 / (B * total)).astype(scores.dtype)[:, None]
    scores[rows, target_idx] -= scores.dtype.type(1.0 / B)
    return float(loss)


def softmax_xent_inplace(scores, target_idx):
    """Numba kernel of :func:`softmax_xent_inplace_numpy` (same arguments and result).

    One row at a time, in parallel over rows: its maximum, ``exp`` of the
    shifted scores and their sum, then the scaling to ``softmax / B``. A row
    (n = 43,097 floats, 170 KB) stays in the core's cache between the passes
    and no (B, n) temporary is allocated.
    """
    target_idx = _check_rows(scores, target_idx)
    return float(_softmax_xent_loop(scores, target_idx))


@njit(fastmath={"reassoc"}, cache=True)
def _sum_float64(x):
    """Sum of a 1-d array in float64. Only ``reassoc`` is allowed: the order
    of the additions may change (so the loop is vectorised); NaN and inf
    behave as usual."""
    total = 0.0
    for j in range(x.shape[0]):
        total += x[j]
    return total


@njit(parallel=True, cache=True)
def _softmax_xent_loop(scores, target_idx):
    B, n = scores.shape
    row_loss = np.empty(B, dtype=np.float64)
    row_scale = np.empty(B, dtype=scores.dtype)  # in the scores' dtype, so the loop stays float32
    neg_inv_B = np.empty(1, dtype=scores.dtype)
    neg_inv_B[0] = -1.0 / B
    for b in prange(B):
        row = scores[b]
        target_score = row[target_idx[b]]
        m = row[0]
        for j in range(n):
            if row[j] > m:
                m = row[j]
        for j in range(n):
            row[j] = exp_nonpositive(row[j] - m)
        total = _sum_float64(row)
        row_loss[b] = m + np.log(total) - target_score  # logsumexp - target score
        row_scale[b] = 1.0 / (B * total)
        scale = row_scale[b]
        for j in range(n):
            row[j] *= scale
        row[target_idx[b]] += neg_inv_B[0]
    return row_loss.sum() / B


# --------------------------------------------------------------------------
# ranking for evaluation: the target's rank and the top-k items
# --------------------------------------------------------------------------
def rank_topk_numpy(scores, target_idx, k):
    """Rank of each row's target and the row's top-k columns.

    ``rank[b] = 1 + #{j : scores[b, j] > scores[b, target_idx[b]]}`` (ties do
    not count against the target), and ``topk[b]`` are the ``k`` columns with
    the largest scores, best first, ties broken by the lower column.

    Parameters
    ----------
    scores : float array of shape (B, n), no NaN
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


def rank_topk(scores, target_idx, k):
    """Numba kernel of :func:`rank_topk_numpy` (same arguments and results).

    Per row, in parallel over rows: one pass counts the scores above the
    target's; a second keeps the best ``k`` seen so far in a small sorted
    buffer (insertion sort), so a row of n items costs about n comparisons
    instead of a sort of the whole row.
    """
    scores = np.ascontiguousarray(scores)
    target_idx = _check_rows(scores, target_idx)
    k = int(k)
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be in 1..{scores.shape[1]}, got {k}")
    return _rank_topk_loop(scores, target_idx, k)


@njit(cache=True)
def _topk_of_row(row, cols, best):
    """Fill ``cols`` (k,) with the columns of the ``k`` largest entries of ``row``.

    ``best`` (k,) is scratch for their scores. Both are kept sorted, best
    first. Columns are visited in increasing order and an entry moves ahead
    of another only when strictly greater, so ties keep the lower column first.
    """
    k = cols.shape[0]
    size = 0
    for j in range(row.shape[0]):
        x = row[j]
        if size == k and not x > best[k - 1]:
            continue  # the common case: not among the best k
        pos = size if size < k else k - 1  # the free slot, or the one that drops out
        while pos > 0 and best[pos - 1] < x:
            best[pos] = best[pos - 1]
            cols[pos] = cols[pos - 1]
            pos -= 1
        best[pos] = x
        cols[pos] = j
        if size < k:
            size += 1


@njit(parallel=True, cache=True)
def _rank_topk_loop(scores, target_idx, k):
    B, n = scores.shape
    rank = np.empty(B, dtype=np.int64)
    topk = np.empty((B, k), dtype=np.int64)
    best = np.empty((B, k), dtype=scores.dtype)  # per-row scratch
    for b in prange(B):
        row = scores[b]
        target_score = row[target_idx[b]]
        ahead = 0
        for j in range(n):
            if row[j] > target_score:
                ahead += 1
        rank[b] = 1 + ahead
        _topk_of_row(row, topk[b], best[b])
    return rank, topk


# --------------------------------------------------------------------------
# Adam with coupled L2, one fused pass over w, g, m, v
# --------------------------------------------------------------------------
def adam_step_numpy(w, g, m, v, lr, beta1, beta2, eps, l2, t):
    """One Adam step (Kingma & Ba, 2015) with coupled L2, in place on ``w, m, v``.

    ``t`` is the step number, 1, 2, ...::

        g  = g + l2 * w
        m  = beta1 * m + (1 - beta1) * g
        v  = beta2 * v + (1 - beta2) * g**2
        w -= lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

    Parameters
    ----------
    w, m, v : float arrays of one shape, updated in place
    g : float array of that shape, the gradient (not modified)
    lr, beta1, beta2, eps, l2 : float
    t : int
    """
    bc1 = 1.0 - beta1**t
    bc2 = 1.0 - beta2**t
    if l2:
        g = g + l2 * w
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    w -= (lr / bc1) * m / (np.sqrt(v / bc2) + eps)


ADAM_PARALLEL_MIN_SIZE = 1 << 20
"""Arrays with fewer entries are updated by one thread."""


def adam_step(w, g, m, v, lr, beta1, beta2, eps, l2, t):
    """Numba kernel of :func:`adam_step_numpy` (same arguments).

    Reads ``w, g, m, v`` and writes ``w, m, v`` once each, in parallel; the
    NumPy twin makes about a dozen passes and allocates temporaries. For
    SR-IEM the embedding ``E`` (8.6 M floats) gets a dense update every step,
    so this pass is bound by memory bandwidth.
    """
    for name, a in (("w", w), ("m", m), ("v", v)):
        if not a.flags.c_contiguous or a.shape != w.shape or a.dtype != w.dtype:
            raise ValueError(f"{name} must be C-contiguous with w's shape and dtype")
    g = np.ascontiguousarray(g, dtype=w.dtype)
    if g.shape != w.shape:
        raise ValueError(f"g must have w's shape {w.shape}, got {g.shape}")
    # the scalars in w's dtype, so a float32 update is computed in float32
    s = w.dtype.type
    # waking the threads costs more than updating a small array (W0, Wq, Wk) alone
    loop = _adam_step_loop if w.size >= ADAM_PARALLEL_MIN_SIZE else _adam_step_loop_serial
    loop(
        w.reshape(-1),
        g.reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        s(lr / (1.0 - beta1**t)),  # step size: lr over the bias correction of m
        s(1.0 / (1.0 - beta2**t)),  # 1 over the bias correction of v
        s(beta1),
        s(1.0 - beta1),
        s(beta2),
        s(1.0 - beta2),
        s(eps),
        s(l2),
    )


@njit(cache=True)
def _adam_update(
    w, g, m, v, i, step_size, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps, l2
):
    """Entry ``i`` of one Adam step, the formulas of :func:`adam_step_numpy`."""
    gi = g[i] + l2 * w[i]
    mi = beta1 * m[i] + one_m_beta1 * gi
    vi = beta2 * v[i] + one_m_beta2 * (gi * gi)
    m[i] = mi
    v[i] = vi
    w[i] -= step_size * mi / (np.sqrt(vi * inv_bc2) + eps)


@njit(parallel=True, cache=True)
def _adam_step_loop(
    w, g, m, v, step_size, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps, l2
):
    for i in prange(w.shape[0]):
        _adam_update(
            w, g, m, v, i, step_size, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps, l2
        )


@njit(cache=True)
def _adam_step_loop_serial(
    w, g, m, v, step_size, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps, l2
):
    for i in range(w.shape[0]):
        _adam_update(
            w, g, m, v, i, step_size, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps, l2
        )


# --------------------------------------------------------------------------
# embedding gradient: scatter-add into dE
# --------------------------------------------------------------------------
def embedding_scatter_add_numpy(dE, item_seq, demb):
    """Add each looked-up row's gradient into ``dE``, in place.

    ``dE[item_seq[b, i]] += demb[b, i]`` for every real position; an item
    that occurs several times receives every contribution, and the padding
    row 0 receives none.

    Parameters
    ----------
    dE : float array of shape (n+1, d), updated in place
    item_seq : int array of shape (B, L), 0 = padding
    demb : float array of shape (B, L, d)
    """
    real = item_seq != 0
    np.add.at(dE, item_seq[real], demb[real])


def embedding_scatter_add(dE, item_seq, demb):
    """Numba kernel of :func:`embedding_scatter_add_numpy` (same arguments).

    Serial on purpose: two positions holding the same item write the same
    row, and the work (B * L * d adds) is small.
    """
    item_seq = np.ascontiguousarray(item_seq, dtype=np.int64)
    if demb.shape != (*item_seq.shape, dE.shape[1]):
        raise ValueError(f"demb must be {(*item_seq.shape, dE.shape[1])}, got {demb.shape}")
    if item_seq.size and (item_seq.min() < 0 or item_seq.max() >= dE.shape[0]):
        raise ValueError(f"item ids must be in 0..{dE.shape[0] - 1}")
    _embedding_scatter_add_loop(dE, item_seq, demb)


@njit(cache=True)
def _embedding_scatter_add_loop(dE, item_seq, demb):
    B, L = item_seq.shape
    d = dE.shape[1]
    for b in range(B):
        for i in range(L):
            item = item_seq[b, i]
            if item == 0:
                continue  # padding is not an item
            for c in range(d):
                dE[item, c] += demb[b, i, c]


# --------------------------------------------------------------------------
# the products with all n items, split over threads
# --------------------------------------------------------------------------
_BLAS = None  # threadpoolctl's view of the BLAS libraries, made on first use
_POOL = None  # threads that run the slices, made on first use


def _blas():
    global _BLAS
    if _BLAS is None and ThreadpoolController is not None:
        _BLAS = ThreadpoolController().select(user_api="blas")
    return _BLAS


def blas_single_thread():
    """Context manager: BLAS runs every call on the calling thread, inside.

    Used around a training or evaluation step, whose large products
    :func:`matmul_items` spreads over threads itself. Without the optional
    package ``threadpoolctl`` this changes nothing.
    """
    blas = _blas()
    return blas.limit(limits=1) if blas is not None else contextlib.nullcontext()


def matmul_items(a, b, out, split, parts=None):
    """``out = a @ b`` with the n items cut into one slice per thread.

    SR-IEM's three large products (eq. 8 and its backward) each have the
    n items on one axis; ``split`` says which::

        split="b_rows"    out (B, n) = z_h (B, d) @ E_items.T (d, n)   scores
        split="inner"     out (B, d) = dS (B, n) @ E_items (n, d)      dz_h
        split="out_rows"  out (n, d) = dS.T (n, B) @ z_h (B, d)        dE

    Each slice is one BLAS call on its own thread (slices of ``out`` and of
    the inputs are views; the "inner" split adds up one (B, d) partial per
    slice). Call it inside :func:`blas_single_thread`: then the threads
    meet once per product, where a multi-threaded BLAS synchronises its
    threads many times inside one call. With other processes on the
    cores, that made the BLAS's own threading 3 to 10 times slower here.
    With one Numba thread, or without ``threadpoolctl`` (which limits BLAS),
    this is ``np.matmul``.

    Parameters
    ----------
    a, b : float arrays, as in the table (``.T`` views are fine)
    out : float array, C-contiguous, written in place
    split : {"b_rows", "inner", "out_rows"}
    parts : int or None, the number of slices; None: one per Numba thread,
        or no split when BLAS's threads cannot be limited

    Returns
    -------
    out
    """
    if parts is None:
        parts = numba.get_num_threads() if _blas() is not None else 1
    if parts == 1:
        return np.matmul(a, b, out=out)
    n = a.shape[1] if split == "inner" else (b.shape[1] if split == "b_rows" else out.shape[0])
    bounds = np.linspace(0, n, parts + 1).astype(int)
    items = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    if split == "b_rows":
        jobs = [(a, b[:, s], out[:, s]) for s in items]
    elif split == "out_rows":
        jobs = [(a[s], b, out[s]) for s in items]
    elif split == "inner":
        partial = np.empty((parts, *out.shape), dtype=out.dtype)
        jobs = [(a[:, s], b[s], partial[i]) for i, s in enumerate(items)]
    else:
        raise ValueError(f"split must be 'b_rows', 'inner' or 'out_rows', not {split!r}")
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    # NumPy releases the GIL inside matmul, so the slices run at the same time
    list(_POOL.map(lambda job: np.matmul(job[0], job[1], out=job[2]), jobs))
    if split == "inner":
        np.sum(partial, axis=0, out=out)
    return out
