"""Fast kernels for the hot loops, each beside a plain NumPy twin.

The twin (``*_numpy``) is the documentation: an independent, vectorised
statement of what the kernel computes. The kernel is the same computation
written as ordinary loops and compiled by Numba. Tests
(``tests/test_kernels.py``, ``tests/test_fast_path.py``) compare the two on
random inputs and edge cases.

kernel (its twin: the name + ``_numpy``)
``softmax_xent_inplace``       loss of eq. (9)-(10) and ``dscores`` in place;
                               ``SRIEM.loss_and_grads``
``rank_topk``                  the target's rank and the top-k items; evaluation
``topk``                       the top-k items alone; ``SRIEM.topk`` (recommending)
``adam_step``                  one Adam update with coupled L2, in place; ``Adam.step``
``embedding_scatter_add``      ``dE[x] += demb`` for every looked-up item;
                               ``SRIEM.loss_and_grads``
``matmul_items``               the (B x d x n) products with all items, split by items
                               over threads (twin: ``np.matmul``); ``SRIEM``
``iem_pool_forward``,          SR-IEM's session part between its products, eq. (1)-(6)
``iem_pool_backward``          and the last item, one kernel per direction (twins: the
                               layers composed); ``SRIEM`` with importance "iem"
``item_pass_forward``          pass 1 of a training step's item-sized work: loss and
                               ``dz_h`` by item blocks, online softmax; ``SRIEM``
``ItemGradient.adam_step``     pass 2: ``dE`` block by block and Adam on those rows of
                               ``E`` (twin: ``ItemGradient.dense`` + ``adam_step_numpy``)
``lookup_rows``                the lookup's gradient summed per distinct item (twin:
                               ``embedding_scatter_add_numpy``)

Each public kernel is a small Python function that checks its inputs (Numba
does not check indices: a bad index would read or write the wrong memory) and
calls the compiled loop, ``_name_loop``. Loops that are independent per row run
in parallel (``numba.prange``) on ``numba.get_num_threads()`` threads, by
default one per core. The item passes instead give each thread one range of
items (:func:`item_blocks`): Python threads that call BLAS on the calling
thread (:func:`blas_single_thread`) and serial kernels compiled with
``nogil=True``, so the threads meet twice per step rather than inside every
product. ``cache=True`` stores the compiled code beside this file, so only
the first run pays the compile time. ``error_model="numpy"``: a division by
zero gives inf or nan as in NumPy instead of raising; without it Numba tests
every divisor and that branch keeps LLVM from vectorising a loop (Adam's
update ran 2.3x slower, one ``sqrtss`` and ``divss`` per element).

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
    "topk",
    "topk_numpy",
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


@njit(fastmath={"reassoc"}, cache=True, error_model="numpy")
def _sum_float64(x):
    """Sum of a 1-d array in float64. Only ``reassoc`` is allowed: the order
    of the additions may change (so the loop is vectorised); NaN and inf
    behave as usual."""
    total = 0.0
    for j in range(x.shape[0]):
        total += x[j]
    return total


@njit(parallel=True, cache=True, error_model="numpy")
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
    return rank.astype(np.int64), topk_numpy(scores, k)


def topk_numpy(scores, k):
    """The top-k columns of each row, best first, ties broken by the lower column.

    Parameters
    ----------
    scores : float array of shape (B, n), no NaN
    k : int, 1 <= k <= n

    Returns
    -------
    topk : int64 array of shape (B, k)
    """
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)


def topk(scores, k):
    """Numba kernel of :func:`topk_numpy` (same arguments and result).

    The top-k pass of :func:`rank_topk` without a target: per row, in
    parallel over rows, a small sorted buffer of the best ``k`` seen so far.
    """
    scores = np.ascontiguousarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (B, n) array, got shape {scores.shape}")
    k = int(k)
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be in 1..{scores.shape[1]}, got {k}")
    return _topk_loop(scores, k)


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


@njit(cache=True, error_model="numpy")
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


@njit(parallel=True, cache=True, error_model="numpy")
def _topk_loop(scores, k):
    B = scores.shape[0]
    topk = np.empty((B, k), dtype=np.int64)
    best = np.empty((B, k), dtype=scores.dtype)  # per-row scratch
    for b in prange(B):
        _topk_of_row(scores[b], topk[b], best[b])
    return topk


@njit(parallel=True, cache=True, error_model="numpy")
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
    # waking the threads costs more than updating a small array (W0, Wq, Wk) alone
    loop = _adam_step_loop if w.size >= ADAM_PARALLEL_MIN_SIZE else _adam_step_loop_serial
    loop(
        w.reshape(-1),
        g.reshape(-1),
        m.reshape(-1),
        v.reshape(-1),
        *adam_scalars(w.dtype, lr, beta1, beta2, eps, l2, t),
    )


def adam_scalars(dtype, lr, beta1, beta2, eps, l2, t):
    """The scalar arguments of :func:`_adam_update`, in ``dtype`` (a float32 update stays float32).

    ``(step_size, inv_bc2, beta1, 1 - beta1, beta2, 1 - beta2, eps, l2)`` with the step size
    ``lr`` over the bias correction of ``m`` and ``inv_bc2`` 1 over that of ``v``.
    """
    s = np.dtype(dtype).type
    return (
        s(lr / (1.0 - beta1**t)),
        s(1.0 / (1.0 - beta2**t)),
        s(beta1),
        s(1.0 - beta1),
        s(beta2),
        s(1.0 - beta2),
        s(eps),
        s(l2),
    )


@njit(cache=True, error_model="numpy")
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


@njit(parallel=True, cache=True, error_model="numpy")
def _adam_step_loop(
    w, g, m, v, step_size, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps, l2
):
    for i in prange(w.shape[0]):
        _adam_update(
            w, g, m, v, i, step_size, inv_bc2, beta1, one_m_beta1, beta2, one_m_beta2, eps, l2
        )


# Numba's cache keys a compiled function by its name and source, not by its
# flags, so the serial loop is a function of its own. It releases the GIL:
# ItemGradient.adam_step runs it on item blocks from several threads.
@njit(nogil=True, cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
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
    :func:`matmul_items` and the item passes spread over threads themselves.
    It uses the optional package ``threadpoolctl`` when installed, else
    NumPy's bundled OpenBLAS directly; with any other BLAS it changes nothing
    (see :func:`blas_can_be_limited`).
    """
    blas = _blas()
    if blas is not None:
        return blas.limit(limits=1)
    if blas_can_be_limited():
        return _OpenBLASOneThread()
    return contextlib.nullcontext()


def item_parts():
    """Threads for the item-sized work: Numba's thread count, or 1 when BLAS cannot be
    kept on the calling thread (then each BLAS call uses BLAS's own threads)."""
    return numba.get_num_threads() if blas_can_be_limited() else 1


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
        parts = item_parts()
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
    # NumPy releases the GIL inside matmul, so the slices run at the same time
    list(_pool().map(lambda job: np.matmul(job[0], job[1], out=job[2]), jobs))
    if split == "inner":
        np.sum(partial, axis=0, out=out)
    return out


# --------------------------------------------------------------------------
# the session part of SR-IEM, eq. (1)-(7) without its products: one kernel per direction
# --------------------------------------------------------------------------
# SR-IEM's session part is a chain of small per-session steps (sigmoids,
# B x L x L affinities, masked sums, a softmax over L, the pooling), each a
# handful of NumPy calls on small arrays. Its products with weights
# (``E_s [Wq | Wk]``, the fusion ``W0`` and their backward) stay BLAS calls in
# the model; everything between them is one kernel per direction, looping
# over the sessions. The kernels see only real positions: the
# rows of the N = sum_b t_b items of the batch, session after session (the
# order of ``item_seq[valid_mask(...)]``), so no product is spent on padding.
IEM_VARIANTS = {
    # variant: (sigmoid on Q and K, inner scale of eq. 3 is 1/sqrt(d),
    #           outer scale is 1/sqrt(d), divide eq. 4 by t - 1)
    "paper": (True, False, True, False),
    "official": (False, True, False, True),
    # SR-IEM+ (issue #12): the equations with eq. (3)'s 1/sqrt(d) inside the sigmoid, so
    # that Q K^T (about l/4 at initialisation) no longer saturates it
    "scaled": (True, True, False, False),
}


def _iem_scales(variant, d):
    if variant not in IEM_VARIANTS:
        raise ValueError(f"variant must be one of {tuple(IEM_VARIANTS)}, not {variant!r}")
    sigmoid_qk, inner_scaled, outer_scaled, t_minus_1 = IEM_VARIANTS[variant]
    root = 1.0 / np.sqrt(d)
    return sigmoid_qk, (root if inner_scaled else 1.0), (root if outer_scaled else 1.0), t_minus_1


def pad_positions(rows, item_seq_len, L):
    """Rows of the N real positions (N, k), session after session, as (B, L, k), 0 at padding."""
    valid = np.arange(L)[None, :] < np.asarray(item_seq_len)[:, None]
    out = np.zeros((len(valid), L, rows.shape[1]), dtype=rows.dtype)
    out[valid] = rows
    return out


def iem_pool_forward_numpy(qk_lin, emb, item_seq_len, variant, L):
    """SR-IEM from the query/key projections to ``[z_l ; z_s]``, the layers composed.

    With ``qk_lin = E_s [Wq | Wk]`` (each real position's projections,
    queries in the first ``l`` columns, keys in the last ``l``)::

        Q, K = sigmoid(qk_lin) (paper) or qk_lin (official)      eq. (1), (2)
        C = affinity(Q, K)                                       eq. (3)
        alpha = masked average of C, beta = masked softmax      eq. (4), (5)
        z_l = sum_i beta_i e_i, z_s = e_t                        eq. (6), input of (7)

    Parameters
    ----------
    qk_lin : float array of shape (N, 2l), the N = sum(item_seq_len) real
        positions, session after session
    emb : float array of shape (N, d), their embeddings
    item_seq_len : int array of shape (B,), each in 1..L
    variant : {"paper", "official"}
    L : int, the padded length

    Returns
    -------
    zcat : array of shape (B, 2d), ``[z_l ; z_s]``
    cache : dict; ``cache["beta"]`` (B, L) is eq. (5)'s importance; ``cache["layers"]``
        the layers' caches, a :class:`minisriem.importance.IEMCaches` (the
        projections, done by the caller, have none), ``cache["last"]`` the last item's
    """
    from minisriem import layers  # the twin is the layers themselves
    from minisriem.importance import IEMCaches

    sigmoid_qk, inner, outer, t_minus_1 = _iem_scales(variant, emb.shape[1])
    l = qk_lin.shape[1] // 2
    qk_pad = pad_positions(qk_lin, item_seq_len, L)  # B,L,2l
    emb_pad = pad_positions(emb, item_seq_len, L)  # B,L,d
    Q, K = qk_pad[:, :, :l], qk_pad[:, :, l:]
    q_cache = k_cache = None
    if sigmoid_qk:
        Q, q_cache = layers.sigmoid_forward(Q)
        K, k_cache = layers.sigmoid_forward(K)
    C, aff_cache = layers.affinity_forward(Q, K, inner, outer)
    alpha, avg_cache = layers.masked_average_forward(C, item_seq_len, "t-1" if t_minus_1 else "t")
    beta, sm_cache = layers.masked_softmax_forward(alpha, item_seq_len)
    z_l, pool_cache = layers.weighted_pool_forward(beta, emb_pad)
    z_s, last_cache = layers.last_item_forward(emb_pad, item_seq_len)
    caches = IEMCaches(None, None, q_cache, k_cache, aff_cache, avg_cache, sm_cache, pool_cache)
    cache = {"beta": beta, "layers": caches, "last": last_cache, "item_seq_len": item_seq_len}
    return np.concatenate([z_l, z_s], axis=1), cache


def iem_pool_backward_numpy(dzcat, cache):
    """Backward pass of :func:`iem_pool_forward_numpy`, the layers' backward composed.

    Parameters
    ----------
    dzcat : float array of shape (B, 2d)
    cache : from :func:`iem_pool_forward_numpy`

    Returns
    -------
    dqk_lin : array of shape (N, 2l)
    demb : array of shape (N, d), the pooling's and the last item's part
        (the part through ``qk_lin`` is the caller's product ``dqk_lin [Wq | Wk]^T``)
    """
    from minisriem import layers
    from minisriem.importance import iem_beta_backward

    c = cache["layers"]
    d = dzcat.shape[1] // 2
    dbeta, demb = layers.weighted_pool_backward(dzcat[:, :d], c.pool)
    (demb_last,) = layers.last_item_backward(dzcat[:, d:], cache["last"])
    demb = demb + demb_last
    dQ, dK = iem_beta_backward(dbeta, c)
    valid = layers.valid_mask(cache["item_seq_len"], demb.shape[1])
    return np.concatenate([dQ, dK], axis=2)[valid], demb[valid]


def iem_pool_forward(qk_lin, emb, item_seq_len, variant, L):
    """Numba kernel of :func:`iem_pool_forward_numpy` (same arguments and results).

    One session per iteration, on the calling thread: the whole batch is
    about a millisecond of work, less than waking a second thread costs on
    a machine shared with other jobs. The cache holds
    ``Q, K`` (N, l), the sigmoids ``P`` (B, L, L) of eq. (3) and ``beta``
    (B, L), 0 at padding.
    """
    N, d = emb.shape
    lens = np.ascontiguousarray(item_seq_len, dtype=np.int64)
    B = lens.shape[0]
    if lens.ndim != 1 or (B and (lens.min() < 1 or lens.max() > L)) or lens.sum() != N:
        raise ValueError(f"item_seq_len must be (B,) with values in 1..{L} summing to {N}")
    if qk_lin.ndim != 2 or qk_lin.shape[0] != N or qk_lin.shape[1] % 2:
        raise ValueError(f"qk_lin must be ({N}, 2l), got {qk_lin.shape}")
    sigmoid_qk, inner, outer, t_minus_1 = _iem_scales(variant, d)
    dtype = emb.dtype
    l = qk_lin.shape[1] // 2
    qk_lin = np.ascontiguousarray(qk_lin, dtype=dtype)
    emb = np.ascontiguousarray(emb)
    starts = np.cumsum(lens) - lens
    QK = np.empty((N, 2 * l), dtype=dtype)
    P = np.zeros((B, L, L), dtype=dtype)
    beta = np.zeros((B, L), dtype=dtype)
    zcat = np.empty((B, 2 * d), dtype=dtype)
    s = dtype.type
    scales = (sigmoid_qk, s(inner), s(outer), t_minus_1)
    _iem_forward_loop(qk_lin, emb, lens, starts, *scales, QK, P, beta, zcat)
    cache = {"beta": beta, "QK": QK, "P": P, "emb": emb, "lens": lens, "starts": starts}
    cache["scales"] = scales
    return zcat, cache


def iem_pool_backward(dzcat, cache):
    """Numba kernel of :func:`iem_pool_backward_numpy` (same arguments and results)."""
    emb, QK = cache["emb"], cache["QK"]
    N, d = emb.shape
    B = cache["lens"].shape[0]
    dzcat = np.ascontiguousarray(dzcat, dtype=emb.dtype)
    if dzcat.shape != (B, 2 * d):
        raise ValueError(f"dzcat must be ({B}, {2 * d}), got {dzcat.shape}")
    dqk_lin = np.empty_like(QK)
    demb = np.empty_like(emb)
    _iem_backward_loop(
        dzcat,
        emb,
        cache["lens"],
        cache["starts"],
        QK,
        cache["P"],
        cache["beta"],
        *cache["scales"],
        dqk_lin,
        demb,
    )
    return dqk_lin, demb


@njit(cache=True, error_model="numpy")
def _sigmoid(x):
    """``1 / (1 + exp(-x))`` as :func:`minisriem.layers.sigmoid_forward` computes it
    (``exp(-|x|)``, never overflowing), with :func:`exp_nonpositive`."""
    one = x * 0 + 1  # 1 in x's type, so float32 stays float32
    e = exp_nonpositive(-abs(x))
    return one / (one + e) if x >= 0 else e / (one + e)


@njit(nogil=True, cache=True, error_model="numpy")
def _iem_forward_loop(
    qk_lin, emb, lens, starts, sigmoid_qk, inner, outer, t_minus_1, QK, P, beta, zcat
):
    N, d = emb.shape
    l = QK.shape[1] // 2
    for b in range(lens.shape[0]):
        t, r0 = lens[b], starts[b]
        for i in range(r0, r0 + t):  # eq. (1), (2)
            for c in range(2 * l):
                x = qk_lin[i, c]
                QK[i, c] = _sigmoid(x) if sigmoid_qk else x
        denom = max(t - 1, 1) if t_minus_1 else t
        inv = outer / denom  # C = outer * P, summed, divided by denom
        for i in range(t):  # eq. (3), (4): beta[b, i] holds alpha_i for now
            total = 0.0
            for j in range(t):
                dot = QK[r0, 0] * 0
                for c in range(l):
                    dot += QK[r0 + i, c] * QK[r0 + j, l + c]
                p = _sigmoid(inner * dot)
                P[b, i, j] = p
                if j != i:
                    total += p
            beta[b, i] = total * inv
        top = beta[b, 0]  # eq. (5), a softmax over the t real positions
        for i in range(1, t):
            top = max(top, beta[b, i])
        total = 0.0
        for i in range(t):
            beta[b, i] = np.exp(beta[b, i] - top)
            total += beta[b, i]
        for i in range(t):
            beta[b, i] /= total
        for c in range(d):  # eq. (6) and the last item
            z = emb[r0, c] * 0
            for i in range(t):
                z += beta[b, i] * emb[r0 + i, c]
            zcat[b, c] = z
            zcat[b, d + c] = emb[r0 + t - 1, c]


@njit(nogil=True, cache=True, error_model="numpy")
def _iem_backward_loop(
    dzcat, emb, lens, starts, QK, P, beta, sigmoid_qk, inner, outer, t_minus_1, dqk_lin, demb
):
    N, d = emb.shape
    l = QK.shape[1] // 2
    L = beta.shape[1]
    for b in range(lens.shape[0]):
        t, r0 = lens[b], starts[b]
        dqk_lin[r0 : r0 + t] = 0
        dbeta = np.empty(L, dtype=np.float64)
        weighted = 0.0  # sum_j beta_j dbeta_j
        for i in range(t):  # eq. (6): dbeta_i = dz_l . e_i, de_i = beta_i dz_l
            acc = emb[r0, 0] * 0
            for c in range(d):
                acc += dzcat[b, c] * emb[r0 + i, c]
                demb[r0 + i, c] = beta[b, i] * dzcat[b, c]
            dbeta[i] = acc
            weighted += beta[b, i] * acc
        for c in range(d):  # z_s = e_t
            demb[r0 + t - 1, c] += dzcat[b, d + c]
        denom = max(t - 1, 1) if t_minus_1 else t
        scale = outer * inner / denom
        for i in range(t):
            dalpha = beta[b, i] * (dbeta[i] - weighted)  # eq. (5)
            for j in range(t):
                if j == i:
                    continue
                p = P[b, i, j]
                ds = QK.dtype.type(scale * dalpha * p * (1 - p))  # eq. (4), (3): dS_ij
                for c in range(l):
                    dqk_lin[r0 + i, c] += ds * QK[r0 + j, l + c]
                    dqk_lin[r0 + j, l + c] += ds * QK[r0 + i, c]
        if sigmoid_qk:  # eq. (1), (2)
            for i in range(r0, r0 + t):
                for c in range(2 * l):
                    q = QK[i, c]
                    dqk_lin[i, c] *= q * (1 - q)


# --------------------------------------------------------------------------
# BLAS on the calling thread
# --------------------------------------------------------------------------
def _openblas_thread_setter():
    """``(get, set)`` of NumPy's bundled OpenBLAS thread count, or None.

    Used when ``threadpoolctl`` is not installed; it does the same thing for
    the one library NumPy's wheels ship: find the loaded OpenBLAS and call
    its ``openblas_set_num_threads``.
    """
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    return get, put
    return None


_OPENBLAS = None  # (get, set), found on first use; False when there is none


class _OpenBLASOneThread:
    def __enter__(self):
        get, put = _OPENBLAS
        self.before = get()
        if self.before != 1:
            put(1)

    def __exit__(self, *exc):
        if self.before != 1:
            _OPENBLAS[1](self.before)


def blas_can_be_limited():
    """True when :func:`blas_single_thread` really keeps BLAS on the calling thread."""
    global _OPENBLAS
    if _blas() is not None:
        return True
    if _OPENBLAS is None:
        np.ones((2, 2)) @ np.ones((2, 2))  # make sure BLAS is loaded
        _OPENBLAS = _openblas_thread_setter() or False
    return bool(_OPENBLAS)


# --------------------------------------------------------------------------
# the item-sized work of a training step, eq. (8)-(10), in two passes over item blocks
# --------------------------------------------------------------------------
ITEM_BLOCK = 1024
"""Items per block of :func:`item_pass_forward` and :meth:`ItemGradient.adam_step`.

A block's scores for a batch of 128 (0.5 MB) and its rows of ``E`` (0.8 MB
at d = 200) stay in a core's 2 MB cache between the steps that use them.
Measured (CPU time of both passes, DIGINETICA's shape, one thread): 256
items 93 ms, 512 88-91, 1024 85-89, 2048 88-105, 4096 98; see
``benchmarks/bench_train.py --block``."""


def item_blocks(n, parts, block=ITEM_BLOCK):
    """The item blocks of the two passes: ``parts`` lists of ``(lo, hi)`` column ranges.

    The ``n`` items are cut into ``parts`` contiguous ranges of nearly equal
    size, one per thread, and each range into blocks of at most ``block``.
    """
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        cuts = list(range(int(lo), int(hi), block)) + [int(hi)]
        out.append([(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a])
    return out


def block_view(flat, B, lo, hi):
    """Block ``(lo, hi)`` of a score buffer stored block after block: a (B, hi - lo) view.

    The buffer holds ``B * n`` floats; the block of columns ``lo..hi-1``
    occupies ``flat[B * lo : B * hi]``, row after row, so each block is
    contiguous (the layout of :func:`item_pass_forward`'s ``P``).
    """
    return flat[B * lo : B * hi].reshape(B, hi - lo)


def item_pass_forward_numpy(z_h, E_items, target_idx):
    """Loss, ``dz_h`` and the softmax of eq. (8)-(10), as whole-array NumPy.

    ``S = z_h E_items^T``; ``loss = mean_b [logsumexp(S[b]) - S[b, target_idx[b]]]``;
    ``dS = (softmax(S) - onehot) / B``; ``dz_h = dS E_items``.

    Parameters
    ----------
    z_h : float array of shape (B, d)
    E_items : float array of shape (n, d), ``E[1:]``
    target_idx : int array of shape (B,), columns 0..n-1

    Returns
    -------
    loss : float
    dz_h : array of shape (B, d)
    dS : array of shape (B, n), ``dloss / dS``
    """
    S = z_h @ E_items.T
    dS = S.copy()
    loss = softmax_xent_inplace_numpy(dS, target_idx)
    return loss, dS @ E_items, dS


def item_pass_forward(z_h, E_items, target_idx, P, parts=1, block=ITEM_BLOCK):
    """Pass 1 of the item-sized work: the loss and ``dz_h`` of :func:`item_pass_forward_numpy`.

    Each thread takes one range of items and walks its blocks: the block's
    scores ``S = z_h E_blk^T`` (one BLAS call), then per row a running
    maximum ``m`` and sum of ``exp(S - m)`` (online softmax), and
    ``acc = acc * exp(m_old - m) + exp(S - m) E_blk`` (a second BLAS call
    while ``E_blk`` is in cache). The block's ``exp(S - m)`` is kept in ``P``
    with the ``m`` it was taken against; :class:`ItemGradient` turns it into
    ``dS`` block by block later. The threads' partial results are merged at
    the end. No (B, n) array other than ``P`` is written, and ``E`` is read once.

    Parameters
    ----------
    z_h : float array of shape (B, d), C-contiguous
    E_items : float array of shape (n, d), C-contiguous (``E[1:]``)
    target_idx : int array of shape (B,)
    P : float array of ``B * n`` entries, written (see :func:`block_view`)
    parts : int, threads; call inside :func:`blas_single_thread` when above 1
    block : int, items per block

    Returns
    -------
    loss : float
    dz_h : array of shape (B, d)
    row_scale : list of float arrays, one (B,) per block in :func:`item_blocks`
        order: ``dS_blk = P_blk * row_scale[k][:, None] - onehot / B``
    """
    B, d = z_h.shape
    n = E_items.shape[0]
    target_idx = np.ascontiguousarray(target_idx, dtype=np.int64)
    if target_idx.shape != (B,) or (B and (target_idx.min() < 0 or target_idx.max() >= n)):
        raise ValueError(f"target_idx must be ({B},) with columns 0..{n - 1}")
    if P.size != B * n or P.dtype != z_h.dtype or not P.flags.c_contiguous:
        raise ValueError(f"P must be a C-contiguous {z_h.dtype} buffer of {B * n} entries")
    if not (z_h.flags.c_contiguous and E_items.flags.c_contiguous):
        raise ValueError("z_h and E_items must be C-contiguous")
    P = P.reshape(-1)
    ranges = item_blocks(n, parts, block)

    def walk(blocks):
        m = np.full(B, -np.inf, dtype=np.float64)  # running row maximum
        total = np.zeros(B, dtype=np.float64)  # running sum of exp(S - m)
        acc = np.zeros((B, d), dtype=z_h.dtype)  # running sum of exp(S - m) E_j
        target_score = np.full(B, np.nan, dtype=np.float64)  # set by the target's block
        rescale = np.empty(B, dtype=z_h.dtype)
        tmp = np.empty((B, d), dtype=z_h.dtype)
        block_max = []
        for lo, hi in blocks:
            S = block_view(P, B, lo, hi)
            E_blk = E_items[lo:hi]
            np.matmul(z_h, E_blk.T, out=S)
            bm = np.empty(B, dtype=np.float64)
            _softmax_block_forward(S, lo, target_idx, m, total, rescale, bm, target_score)
            np.matmul(S, E_blk, out=tmp)
            _rescale_add(acc, rescale, tmp)
            block_max.append(bm)
        return m, total, acc, target_score, block_max

    if parts == 1:
        results = [walk(ranges[0])]
    else:
        results = list(_pool().map(walk, ranges))
    # merge the threads: every partial sum is rescaled to the overall maximum
    M = np.max([r[0] for r in results], axis=0)  # B
    total = np.zeros(B, dtype=np.float64)
    acc = np.zeros((B, d), dtype=np.float64)
    target_score = np.zeros(B, dtype=np.float64)
    for m, t, a, ts, _ in results:
        w = np.exp(m - M)
        total += t * w
        acc += a * w[:, None]
        found = ~np.isnan(ts)
        target_score[found] = ts[found]
    lse = M + np.log(total)
    loss = float(np.mean(lse - target_score))
    dz_h = (acc / total[:, None] - E_items[target_idx]) / B
    row_scale = []
    for _, _, _, _, maxima in results:
        for bm in maxima:
            row_scale.append((np.exp(bm - M) / (B * total)).astype(z_h.dtype))
    return loss, dz_h.astype(z_h.dtype), row_scale


def _pool():
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    return _POOL


@njit(nogil=True, cache=True, error_model="numpy")
def _softmax_block_forward(S, lo, target_idx, m, total, rescale, block_max, target_score):
    """One block of the online softmax, in place: ``S <- exp(S - m_new)`` per row.

    ``m`` and ``total`` (B,) are the running maximum and sum, updated;
    ``rescale[b] = exp(m_old - m_new)`` is the factor for earlier partial
    sums; ``block_max[b] = m_new``; ``target_score[b]`` is set when the row's
    target column falls in this block (columns ``lo..``).
    """
    B, nb = S.shape
    for b in range(B):
        row = S[b]
        t = target_idx[b] - lo
        if 0 <= t < nb:
            target_score[b] = row[t]
        new = max(m[b], np.float64(_row_max(row)))
        for j in range(nb):
            row[j] = exp_nonpositive(row[j] - row.dtype.type(new))
        scale = np.exp(m[b] - new) if m[b] > -np.inf else 0.0
        total[b] = total[b] * scale + _sum_float64(row)
        rescale[b] = scale
        m[b] = new
        block_max[b] = new


@njit(nogil=True, cache=True, error_model="numpy")
def _row_max(row):
    """The largest entry of ``row`` (NaN entries are skipped, as by ``x > top``).

    Sixteen running maxima, one per lane, so that the compiler can use
    vector instructions: a single running maximum is a chain of dependent
    comparisons, four times slower here.
    """
    lanes = np.empty(16, dtype=row.dtype)
    lanes[:] = row[0]
    n = row.shape[0]
    j = 0
    while j + 16 <= n:
        for u in range(16):
            x = row[j + u]
            lanes[u] = x if x > lanes[u] else lanes[u]
        j += 16
    top = row[0]
    for u in range(16):
        if lanes[u] > top:
            top = lanes[u]
    for i in range(j, n):
        if row[i] > top:
            top = row[i]
    return top


@njit(nogil=True, cache=True, error_model="numpy")
def _rescale_add(acc, rescale, tmp):
    """``acc = acc * rescale[:, None] + tmp``."""
    for b in range(acc.shape[0]):
        r = rescale[b]
        for c in range(acc.shape[1]):
            acc[b, c] = acc[b, c] * r + tmp[b, c]


@njit(nogil=True, cache=True, error_model="numpy")
def _softmax_block_grad(P, lo, target_idx, row_scale, inv_B):
    """``P <- P * row_scale[:, None]``, minus ``inv_B`` at each row's target if in the block."""
    B, nb = P.shape
    for b in range(B):
        s = row_scale[b]
        for j in range(nb):
            P[b, j] *= s
        t = target_idx[b] - lo
        if 0 <= t < nb:
            P[b, t] -= inv_B


def lookup_rows(item_seq, demb):
    """The embedding lookup's gradient, one summed row per distinct item.

    Parameters
    ----------
    item_seq : int array of any shape, 0 = padding, e.g. (B, L) or the (N,)
        real positions
    demb : float array of shape ``(*item_seq.shape, d)``

    Returns
    -------
    items : int64 array of shape (U,), the distinct real items, increasing
    rows : float array of shape (U, d), ``rows[u] = sum of demb[b, i]`` over
        the positions holding ``items[u]``, added in position order
    """
    flat = np.asarray(item_seq, dtype=np.int64).reshape(-1)
    d = demb.shape[-1]
    order = np.argsort(flat, kind="stable")
    order = order[flat[order] != 0]
    sorted_items = flat[order]
    first = np.flatnonzero(np.diff(sorted_items, prepend=-1))
    items = sorted_items[first]
    rows = np.zeros((len(items), d), dtype=demb.dtype)
    _sum_rows(
        rows, demb.reshape(-1, d), order, np.cumsum(np.diff(sorted_items, prepend=-1) != 0) - 1
    )
    return items, rows


@njit(nogil=True, cache=True, error_model="numpy")
def _sum_rows(rows, src, order, group):
    for k in range(order.shape[0]):
        u = group[k]
        for c in range(rows.shape[1]):
            rows[u, c] += src[order[k], c]


class ItemGradient(np.lib.mixins.NDArrayOperatorsMixin):
    """``dE`` of one training step, kept factored (backend "numba" of :class:`SRIEM`).

    ``dE[1:] = dS^T z_h`` plus, on the rows of the batch's items, their
    lookup gradient; ``dE[0] = 0``. ``dS`` is not stored: the workspace holds
    the block softmax ``P`` of :func:`item_pass_forward` and ``row_scale``
    turns a block of it into the block's ``dS``. Forming all of ``dE`` would
    write and re-read an (n+1, d) array (34 MB on DIGINETICA) every step;
    :meth:`adam_step` instead forms one block of ``dE`` at a time, while it
    is in cache, and applies Adam to that block's rows of ``E``.

    With ``through`` (SR-IEM+'s normalised scoring: the cache of
    :func:`l2_normalize_rows` on ``E``), the passes scored the normalised rows,
    and each block of ``dE`` is taken back through the normalisation
    (:func:`l2_normalize_rows_backward`, row by row) before Adam sees it.

    It reads as the (n+1, d) array where one is needed: ``np.asarray(g)``,
    ``g.copy()``, ``g[0]``, arithmetic, NumPy functions and array methods
    (``g.max()``) all see the dense ``dE``, formed on first use. Its ``P`` is in
    the model's workspace (a :class:`minisriem.workspace.Workspace`), which
    asks it to :meth:`detach` before the model's next call reuses ``P``.
    """

    def __init__(
        self, P, z_h, target_idx, row_scale, items, rows, shape, parts, block, through=None
    ):
        self.P = P  # B * n floats: the block softmax, or dS once is_dS
        self.through = through  # SR-IEM+: (y, norm) of E's normalised rows, see the docstring
        self.is_dS = False
        self.z_h, self.target_idx, self.row_scale = z_h, target_idx, row_scale
        self.items, self.rows = items, rows
        self.shape, self.dtype, self.ndim = tuple(shape), z_h.dtype, 2
        self.parts, self.block = parts, block
        self._dense = None

    def detach(self):
        """Take private copies of ``P`` and ``through`` (the workspace is about to reuse them)."""
        self.P = self.P.copy()
        if self.through is not None:
            self.through = tuple(a.copy() for a in self.through)

    def _blocks(self):
        return [b for part in item_blocks(self.shape[0] - 1, self.parts, self.block) for b in part]

    def dense(self):
        """The (n+1, d) array ``dE`` (formed once, then kept)."""
        if self._dense is None:
            self._dense = self._form_dense()
            self._dense.flags.writeable = False  # kept: copies are handed out
        return self._dense

    def _form_dense(self):
        B = self.z_h.shape[0]
        dE = np.zeros(self.shape, dtype=self.dtype)
        inv_B = self.dtype.type(1.0 / B)
        for (lo, hi), scale in zip(self._blocks(), self.row_scale, strict=True):
            dS = block_view(self.P, B, lo, hi)
            if not self.is_dS:
                dS = dS * scale[:, None]
                inside = (self.target_idx >= lo) & (self.target_idx < hi)
                dS[np.flatnonzero(inside), self.target_idx[inside] - lo] -= inv_B
            dE[1 + lo : 1 + hi] = dS.T @ self.z_h
        dE[self.items] += self.rows
        if self.through is not None:
            (dE,) = l2_normalize_rows_backward(dE, self.through)
        return dE

    def __array__(self, dtype=None, copy=None):
        dE = self.dense()
        return dE.copy() if dtype is None else dE.astype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(x.dense() if isinstance(x, ItemGradient) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getitem__(self, key):
        return self.dense()[key].copy()

    def __len__(self):
        return self.shape[0]

    def __getattr__(self, name):  # the array's methods and attributes: g.max(), g.T, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.dense(), name)

    def copy(self):
        return self.dense().copy()

    def adam_step(self, w, m, v, lr, beta1, beta2, eps, l2, t):
        """One Adam step (:func:`adam_step_numpy`'s formulas) on ``w = E`` with this ``dE``.

        Pass 2 of the item-sized work: each thread walks its blocks of
        :func:`item_blocks`, forms the block's ``dS`` in place in ``P``, its
        ``dE`` rows ``dS^T z_h`` (one BLAS call into a per-thread buffer), adds
        the lookup rows of the batch's items that fall in the block, and
        updates those rows of ``w, m, v``. Row 0 (padding) gets ``g = 0``.
        Afterwards ``P`` holds ``dS`` (``is_dS``), so the gradient stays usable.
        """
        P, to_dS = self.P, not self.is_dS
        self.is_dS = True
        B, d = self.z_h.shape
        n = self.shape[0] - 1
        for name, a in (("w", w), ("m", m), ("v", v)):
            if not a.flags.c_contiguous or a.shape != self.shape or a.dtype != self.dtype:
                raise ValueError(f"{name} must be C-contiguous of shape {self.shape}, {self.dtype}")
        s = self.dtype.type
        scalars = adam_scalars(self.dtype, lr, beta1, beta2, eps, l2, t)
        zero = np.zeros(d, dtype=self.dtype)
        _adam_step_loop_serial(w[0], zero, m[0], v[0], *scalars)  # padding: no gradient
        ranges = item_blocks(n, self.parts, self.block)
        first = np.cumsum([0] + [len(r) for r in ranges])
        w1, m1, v1 = w[1:], m[1:], v[1:]
        inv_B = s(1.0 / B)

        def walk(k):
            G = np.empty((min(self.block, n), d), dtype=self.dtype)
            for i, (lo, hi) in enumerate(ranges[k]):
                dS = block_view(P, B, lo, hi)
                if to_dS:
                    scale = self.row_scale[first[k] + i]
                    _softmax_block_grad(dS, lo, self.target_idx, scale, inv_B)
                g = G[: hi - lo]
                np.matmul(dS.T, self.z_h, out=g)
                u0, u1 = np.searchsorted(self.items, [lo + 1, hi + 1])
                if u1 > u0:
                    g[self.items[u0:u1] - 1 - lo] += self.rows[u0:u1]
                if self.through is not None:  # back through E's normalisation, in place
                    y, norm = self.through
                    _l2_rows_backward_serial(g, y[1 + lo : 1 + hi], norm[1 + lo : 1 + hi, 0], g)
                _adam_step_loop_serial(
                    w1[lo:hi].reshape(-1),
                    g.reshape(-1),
                    m1[lo:hi].reshape(-1),
                    v1[lo:hi].reshape(-1),
                    *scalars,
                )

        if self.parts == 1:
            walk(0)
        else:
            list(_pool().map(walk, range(self.parts)))


# --------------------------------------------------------------------------
# SR-IEM+ (issue #12): the rows of E normalised, for normalised scoring (NISER)
# --------------------------------------------------------------------------
def l2_normalize_rows(x, eps=1e-12, out=None):
    """Numba kernel of :func:`minisriem.layers.l2_normalize_forward` on a 2-D ``x``.

    The same results (within float32 rounding) without NumPy's temporaries:
    one pass per row for its length (:func:`_row_dot`), one for the scaled
    row. Rows are independent: parallel. 4 ms for DIGINETICA's ``E`` on one
    thread, against 15 ms for the layer.

    Parameters
    ----------
    x : float array of shape (n, d), C-contiguous
    eps : float
    out : None, or ``(y, norm)``: C-contiguous arrays of shapes (n, d) and (n, 1)
        and ``x``'s dtype to write into (a training step reuses them: a fresh
        34 MB array costs a page fault per 4 KB)

    Returns
    -------
    y : array of shape (n, d), ``x / sqrt(sum(x**2) + eps)`` per row
    cache : ``(y, norm)`` with ``norm`` of shape (n, 1), as the layer's
    """
    if x.ndim != 2 or not x.flags.c_contiguous:
        raise ValueError(f"x must be a C-contiguous 2-D array, got shape {x.shape}")
    if out is None:
        y = np.empty_like(x)
        norm = np.empty((x.shape[0], 1), dtype=x.dtype)
    else:
        y, norm = out
        for name, a, shape in (("y", y, x.shape), ("norm", norm, (x.shape[0], 1))):
            if a.shape != shape or a.dtype != x.dtype or not a.flags.c_contiguous:
                raise ValueError(f"out's {name} must be C-contiguous, {shape}, {x.dtype}")
    _l2_normalize_rows_loop(x, float(eps), y, norm.reshape(-1))
    return y, (y, norm)


def l2_normalize_rows_backward(dy, cache):
    """Numba kernel of :func:`minisriem.layers.l2_normalize_backward` on 2-D arrays.

    ``dx = (dy - y * sum(dy * y)) / norm`` per row, in one pass per row.

    Returns
    -------
    (dx,) : a 1-tuple, ``dx`` of shape (n, d)
    """
    y, norm = cache
    dy = np.ascontiguousarray(dy, dtype=y.dtype)
    if dy.shape != y.shape:
        raise ValueError(f"dy must be of shape {y.shape}, got {dy.shape}")
    dx = np.empty_like(y)
    _l2_normalize_rows_backward_loop(dy, y, norm.reshape(-1), dx)
    return (dx,)


@njit(cache=True, error_model="numpy")
def _row_dot(a, b):
    """``a . b`` of two rows, in eight running sums (lanes) so that it vectorises: one
    running sum is a chain of dependent additions, four times slower here. The lanes
    are scalars, not an array: an array would be allocated for every row (twice as slow
    over DIGINETICA's E). They are added in order, lane 0 first."""
    zero = a.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    n, j = a.shape[0], 0
    while j + 8 <= n:
        s0 += a[j] * b[j]
        s1 += a[j + 1] * b[j + 1]
        s2 += a[j + 2] * b[j + 2]
        s3 += a[j + 3] * b[j + 3]
        s4 += a[j + 4] * b[j + 4]
        s5 += a[j + 5] * b[j + 5]
        s6 += a[j + 6] * b[j + 6]
        s7 += a[j + 7] * b[j + 7]
        j += 8
    total = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
    for c in range(j, n):
        total += a[c] * b[c]
    return total


@njit(parallel=True, cache=True, error_model="numpy")
def _l2_normalize_rows_loop(x, eps, y, norm):
    for i in prange(x.shape[0]):
        r = x.dtype.type(np.sqrt(_row_dot(x[i], x[i]) + eps))
        norm[i] = r
        inv = x.dtype.type(1) / r
        for c in range(x.shape[1]):
            y[i, c] = x[i, c] * inv


@njit(cache=True, error_model="numpy")
def _l2_row_backward(dy, y, norm, dx, i):
    """Row ``i`` of :func:`minisriem.layers.l2_normalize_backward`; ``dx`` may be ``dy``
    itself (the row is read before it is written)."""
    s = _row_dot(dy[i], y[i])
    inv = y.dtype.type(1) / norm[i]
    for c in range(y.shape[1]):
        dx[i, c] = (dy[i, c] - y[i, c] * s) * inv


@njit(parallel=True, cache=True, error_model="numpy")
def _l2_normalize_rows_backward_loop(dy, y, norm, dx):
    for i in prange(y.shape[0]):
        _l2_row_backward(dy, y, norm, dx, i)


# The same rows serially, on one block (ItemGradient.adam_step's threads): Numba's
# cache keys a function by its name and source, so the serial loop is its own function.
@njit(nogil=True, cache=True, error_model="numpy")
def _l2_rows_backward_serial(dy, y, norm, dx):
    for i in range(y.shape[0]):
        _l2_row_backward(dy, y, norm, dx, i)
