"""SR-IEM's layers, each a forward/backward pair written by hand in NumPy.

Every layer follows one API, so a reader who knows one knows all::

    out, cache = name_forward(inputs..., params...)
    grads = name_backward(dout, cache)

``grads`` is always a tuple of gradients in the order of the forward's
differentiable arguments (integer arguments such as ``item_seq`` get none),
a tuple of one when there is one: ``(dx,) = sigmoid_backward(ds, cache)``.
``cache`` holds what the backward pass needs and is opaque to the caller.

Shape letters, used in every docstring and comment:

    B  batch size              L  padded session length (the paper's 10)
    d  embedding size          l  query/key size (the paper's 100)
    n  number of items         item ids are 1..n; id 0 is padding

Sessions are left-aligned: session ``b`` occupies positions ``0..t_b-1`` of
its row, ``t_b = item_seq_len[b]`` is its true length (1 <= t_b <= L), and the
last real item sits at position ``t_b - 1``. Equation numbers are the paper's
(Pan et al., SIGIR 2020).
"""

from typing import NamedTuple

import numpy as np

__all__ = [
    "embedding_forward",
    "embedding_backward",
    "linear_forward",
    "linear_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "affinity_forward",
    "affinity_backward",
    "masked_average_forward",
    "masked_average_backward",
    "masked_softmax_forward",
    "masked_softmax_backward",
    "weighted_pool_forward",
    "weighted_pool_backward",
    "last_item_forward",
    "last_item_backward",
    "fusion_forward",
    "fusion_backward",
    "scores_forward",
    "scores_backward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "scaled_dot_forward",
    "scaled_dot_backward",
    "attention_apply_forward",
    "attention_apply_backward",
    "mean_weights",
    "l2_normalize_forward",
    "l2_normalize_backward",
    "dropout_forward",
    "dropout_backward",
    "dropout_mask",
    "valid_mask",
]


def valid_mask(item_seq_len, L):
    """Which positions hold a real item.

    Parameters
    ----------
    item_seq_len : int array of shape (B,)
    L : int

    Returns
    -------
    mask : bool array of shape (B, L), ``mask[b, i] = i < item_seq_len[b]``
    """
    return np.arange(L)[None, :] < np.asarray(item_seq_len)[:, None]


# --------------------------------------------------------------------------
# embedding: e_i = E[x_i]
# --------------------------------------------------------------------------
def embedding_forward(E, item_seq):
    """Look up item embeddings, ``e_i = E[x_i]``.

    Parameters
    ----------
    E : array of shape (n+1, d), row 0 is the padding row
    item_seq : int array of shape (B, L)

    Returns
    -------
    emb : array of shape (B, L, d)
    cache : tuple
    """
    return E[item_seq], (item_seq, E.shape)


def embedding_backward(demb, cache):
    """Scatter-add the gradient of every looked-up row back into ``E``.

    An item that occurs twice in a batch receives both contributions. The
    padding row 0 never receives gradient: padding is not an item.

    Parameters
    ----------
    demb : array of shape (B, L, d)

    Returns
    -------
    (dE,) : a tuple of one array of shape (n+1, d), ``dE[0] == 0``
    """
    item_seq, shape = cache
    dE = np.zeros(shape, dtype=demb.dtype)
    np.add.at(dE, item_seq.ravel(), demb.reshape(-1, shape[1]))
    dE[0] = 0
    return (dE,)


# --------------------------------------------------------------------------
# linear: y = x W (+ b)
# --------------------------------------------------------------------------
def linear_forward(x, W, b=None):
    """Affine map on the last axis, ``y = x W + b`` (no bias when ``b`` is None).

    Parameters
    ----------
    x : array of shape (..., d_in)
    W : array of shape (d_in, d_out)
    b : array of shape (d_out,) or None

    Returns
    -------
    y : array of shape (..., d_out)
    cache : tuple
    """
    # one (N, d_in) @ (d_in, d_out) product: on a 3-D x, ``x @ W`` would call
    # BLAS once per session
    y = (x.reshape(-1, x.shape[-1]) @ W).reshape(*x.shape[:-1], W.shape[1])
    if b is not None:
        y = y + b
    return y, (x, W, b is not None)


def linear_backward(dy, cache):
    """Gradients of ``y = x W + b``.

    Returns
    -------
    dx : array of shape (..., d_in), ``dy W^T``
    dW : array of shape (d_in, d_out), ``x^T dy`` summed over leading axes
    db : array of shape (d_out,) or None when the forward had no bias
    """
    x, W, has_bias = cache
    dy2 = dy.reshape(-1, dy.shape[-1])  # N,d_out
    dx = (dy2 @ W.T).reshape(x.shape)
    dW = x.reshape(-1, x.shape[-1]).T @ dy2
    db = dy2.sum(axis=0) if has_bias else None
    return dx, dW, db


# --------------------------------------------------------------------------
# sigmoid, as used in eq. (1), (2) and (3)
# --------------------------------------------------------------------------
def sigmoid_forward(x):
    """Elementwise logistic function ``s = 1 / (1 + exp(-x))``, eq. (1)-(3).

    Computed as ``exp(x) / (1 + exp(x))`` for negative ``x`` so that no
    ``exp`` overflows.

    Parameters
    ----------
    x : array of any shape

    Returns
    -------
    s : array of the shape of ``x``, in (0, 1)
    cache : the output ``s`` (the derivative is ``s (1 - s)``)
    """
    e = np.exp(-np.abs(x))
    s = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)
    return s, s


def sigmoid_backward(ds, cache):
    """``dx = ds * s * (1 - s)``.

    Returns
    -------
    (dx,) : a tuple of one array of the shape of ``ds``
    """
    s = cache
    return (ds * s * (1.0 - s),)


# --------------------------------------------------------------------------
# affinity: C = outer * sigmoid(inner * Q K^T), eq. (3)
# --------------------------------------------------------------------------
class AffinityCache(NamedTuple):
    """What :func:`affinity_backward` needs from :func:`affinity_forward`."""

    Q: np.ndarray
    """(B, L, l), the queries."""
    K: np.ndarray
    """(B, L, l), the keys."""
    P: np.ndarray
    """(B, L, L), ``sigmoid(inner_scale * Q K^T)``."""
    inner_scale: float
    outer_scale: float


def affinity_forward(Q, K, inner_scale, outer_scale):
    """Item-to-item affinity, eq. (3).

    ``C = outer_scale * sigmoid(inner_scale * Q K^T)``, per session.
    The paper uses ``inner_scale = 1, outer_scale = 1/sqrt(d)``; the authors'
    released code uses ``inner_scale = 1/sqrt(d), outer_scale = 1``.

    Parameters
    ----------
    Q, K : arrays of shape (B, L, l)
    inner_scale, outer_scale : float

    Returns
    -------
    C : array of shape (B, L, L), ``C[b, i, j]`` = affinity of item i to item j
    cache : AffinityCache
    """
    inner_scale, outer_scale = float(inner_scale), float(outer_scale)  # keep Q's dtype
    S = Q @ K.transpose(0, 2, 1)  # B,L,L
    P, _ = sigmoid_forward(inner_scale * S)
    C = outer_scale * P
    return C, AffinityCache(Q, K, P, inner_scale, outer_scale)


def affinity_backward(dC, cache):
    """Gradients of eq. (3).

    With ``P = sigmoid(inner * S)`` and ``S = Q K^T``:
    ``dS = outer * inner * dC * P (1 - P)``, ``dQ = dS K``, ``dK = dS^T Q``.

    Returns
    -------
    dQ, dK : arrays of shape (B, L, l)
    """
    c = cache
    dS = (c.outer_scale * c.inner_scale) * dC * c.P * (1.0 - c.P)  # B,L,L
    dQ = dS @ c.K
    dK = dS.transpose(0, 2, 1) @ c.Q
    return dQ, dK


# --------------------------------------------------------------------------
# importance: alpha_i = (1/t) sum_{j != i} C_ij, eq. (4)
# --------------------------------------------------------------------------
def masked_average_forward(C, item_seq_len, divide_by="t"):
    """Average each item's affinity to the *other* real items, eq. (4).

    ``alpha[b, i] = sum_{j < t_b, j != i} C[b, i, j] / denom_b`` for real
    positions ``i < t_b``, and 0 at padded positions. The diagonal (an item's
    affinity to itself) and padded columns are masked out.
    ``divide_by="t"`` is the paper's ``denom = t``; ``"t-1"`` is the released
    code's ``denom = max(t - 1, 1)``. A session of length 1 gets ``alpha = [0]``.

    Parameters
    ----------
    C : array of shape (B, L, L)
    item_seq_len : int array of shape (B,), each in 1..L
    divide_by : {"t", "t-1"}

    Returns
    -------
    alpha : array of shape (B, L)
    cache : tuple
    """
    B, L, _ = C.shape
    valid = valid_mask(item_seq_len, L)  # B,L
    M = valid[:, :, None] & valid[:, None, :] & ~np.eye(L, dtype=bool)[None]  # B,L,L
    t = np.asarray(item_seq_len)
    if divide_by == "t":
        denom = t
    elif divide_by == "t-1":
        denom = np.maximum(t - 1, 1)
    else:
        raise ValueError(f"divide_by must be 't' or 't-1', not {divide_by!r}")
    inv = (1.0 / denom).astype(C.dtype)[:, None]  # B,1
    # np.where, not M * C: a masked entry must not leak even if it is inf or NaN
    alpha = np.where(M, C, 0).sum(axis=2) * inv
    return alpha, (M, inv)


def masked_average_backward(dalpha, cache):
    """``dC[b, i, j] = M[b, i, j] * dalpha[b, i] / denom_b``.

    Returns
    -------
    (dC,) : a tuple of one array of shape (B, L, L), zero on the diagonal and at padding
    """
    M, inv = cache
    return (np.where(M, (dalpha * inv)[:, :, None], 0).astype(dalpha.dtype, copy=False),)


# --------------------------------------------------------------------------
# normalise: beta = softmax(alpha) over real positions, eq. (5)
# --------------------------------------------------------------------------
def masked_softmax_forward(alpha, item_seq_len):
    """Softmax over the real positions of each session, eq. (5).

    Parameters
    ----------
    alpha : array of shape (B, L)
    item_seq_len : int array of shape (B,)

    Returns
    -------
    beta : array of shape (B, L); each row sums to 1 over its first ``t_b``
        entries and is exactly 0 at padded positions
    cache : the output ``beta``
    """
    valid = valid_mask(item_seq_len, alpha.shape[1])
    x = np.where(valid, alpha, -np.inf)
    x = x - x.max(axis=1, keepdims=True)
    e = np.where(valid, np.exp(x), 0)
    beta = (e / e.sum(axis=1, keepdims=True)).astype(alpha.dtype, copy=False)
    return beta, beta


def masked_softmax_backward(dbeta, cache):
    """``dalpha = beta * (dbeta - sum_j beta_j dbeta_j)``; zero at padding.

    Returns
    -------
    (dalpha,) : a tuple of one array of shape (B, L)
    """
    beta = cache
    dbeta = np.where(beta > 0, dbeta, 0)  # a padded dbeta must not reach the sum
    return (beta * (dbeta - (beta * dbeta).sum(axis=1, keepdims=True)),)


# --------------------------------------------------------------------------
# long-term preference: z_l = sum_i beta_i e_i, eq. (6)
# --------------------------------------------------------------------------
def weighted_pool_forward(beta, emb):
    """Importance-weighted sum of the session's embeddings, eq. (6).

    Parameters
    ----------
    beta : array of shape (B, L), zero at padded positions
    emb : array of shape (B, L, d)

    Returns
    -------
    z_l : array of shape (B, d)
    cache : tuple
    """
    z_l = np.einsum("bl,bld->bd", beta, emb)
    return z_l, (beta, emb)


def weighted_pool_backward(dz_l, cache):
    """``dbeta_i = dz_l . e_i`` and ``de_i = beta_i dz_l``.

    Returns
    -------
    dbeta : array of shape (B, L)
    demb : array of shape (B, L, d)
    """
    beta, emb = cache
    dbeta = np.einsum("bd,bld->bl", dz_l, emb)
    demb = beta[:, :, None] * dz_l[:, None, :]
    return dbeta, demb


# --------------------------------------------------------------------------
# current interest: z_s = e_t, the last real item
# --------------------------------------------------------------------------
def last_item_forward(emb, item_seq_len):
    """Gather the embedding of each session's last real item, ``z_s = e_t``.

    Parameters
    ----------
    emb : array of shape (B, L, d)
    item_seq_len : int array of shape (B,)

    Returns
    -------
    z_s : array of shape (B, d)
    cache : tuple
    """
    rows = np.arange(emb.shape[0])
    last = np.asarray(item_seq_len) - 1
    return emb[rows, last], (rows, last, emb.shape)


def last_item_backward(dz_s, cache):
    """Route ``dz_s`` back to position ``t_b - 1``; every other position gets 0.

    Returns
    -------
    (demb,) : a tuple of one array of shape (B, L, d)
    """
    rows, last, shape = cache
    demb = np.zeros(shape, dtype=dz_s.dtype)
    demb[rows, last] = dz_s
    return (demb,)


# --------------------------------------------------------------------------
# fusion: z_h = W0 [z_l ; z_s] (+ b0), eq. (7)
# --------------------------------------------------------------------------
def fusion_forward(z_l, z_s, W0, b0=None):
    """Fuse long-term preference and current interest, eq. (7).

    ``z_h = W0 [z_l ; z_s] + b0``; the paper has no bias, the released code has.

    Parameters
    ----------
    z_l, z_s : arrays of shape (B, d)
    W0 : array of shape (d, 2d)
    b0 : array of shape (d,) or None

    Returns
    -------
    z_h : array of shape (B, d)
    cache : tuple
    """
    x = np.concatenate([z_l, z_s], axis=1)  # B,2d
    z_h, lin_cache = linear_forward(x, W0.T, b0)
    return z_h, (lin_cache, z_l.shape[1])


def fusion_backward(dz_h, cache):
    """Gradients of eq. (7).

    Returns
    -------
    dz_l, dz_s : arrays of shape (B, d)
    dW0 : array of shape (d, 2d)
    db0 : array of shape (d,) or None
    """
    lin_cache, d = cache
    dx, dW0T, db0 = linear_backward(dz_h, lin_cache)
    return dx[:, :d], dx[:, d:], dW0T.T, db0


# --------------------------------------------------------------------------
# scores: zhat_v = z_h . E[v] for every item v, eq. (8)
# --------------------------------------------------------------------------
def scores_forward(z_h, E):
    """Score every item against the session, eq. (8).

    Parameters
    ----------
    z_h : array of shape (B, d)
    E : array of shape (n+1, d); row 0 (padding) is not an item and not scored

    Returns
    -------
    scores : array of shape (B, n); column ``j`` is item ``j + 1``
    cache : tuple
    """
    return z_h @ E[1:].T, (z_h, E)


def scores_backward(dscores, cache):
    """``dz_h = dscores E[1:]``, ``dE[1:] = dscores^T z_h``, ``dE[0] = 0``.

    Returns
    -------
    dz_h : array of shape (B, d)
    dE : array of shape (n+1, d)
    """
    z_h, E = cache
    dz_h = dscores @ E[1:]
    dE = np.empty_like(E)
    dE[0] = 0
    np.matmul(dscores.T, z_h, out=dE[1:])
    return dz_h, dE


# --------------------------------------------------------------------------
# loss: softmax cross-entropy, eq. (9)-(10)
# --------------------------------------------------------------------------
def softmax_cross_entropy_forward(scores, target_idx):
    """Mean softmax cross-entropy, eq. (9)-(10) (the standard form).

    ``loss = mean_b [ logsumexp(scores[b]) - scores[b, target_idx[b]] ]``,
    i.e. ``-log softmax(scores)[target]``, computed through log-sum-exp with
    the row maximum subtracted so that no ``exp`` overflows.

    Parameters
    ----------
    scores : array of shape (B, n)
    target_idx : int array of shape (B,), the target's *column*, 0..n-1
        (item id minus 1)

    Returns
    -------
    loss : float
    cache : tuple
    """
    B = scores.shape[0]
    m = scores.max(axis=1, keepdims=True)  # B,1
    lse = m + np.log(np.exp(scores - m).sum(axis=1, keepdims=True))  # B,1
    loss = float((lse[:, 0] - scores[np.arange(B), target_idx]).mean())
    return loss, (scores, target_idx, lse)


def softmax_cross_entropy_backward(dloss, cache):
    """``dscores = dloss * (softmax(scores) - onehot(target)) / B``.

    Returns
    -------
    (dscores,) : a tuple of one array of shape (B, n)
    """
    scores, target_idx, lse = cache
    B = scores.shape[0]
    dscores = np.exp(scores - lse)
    dscores[np.arange(B), target_idx] -= 1.0
    dscores *= dloss / B
    return (dscores,)


# --------------------------------------------------------------------------
# attention: the layers SR-SAT and SR-STAMP are built from (Fig. 3)
# --------------------------------------------------------------------------
def mean_weights(item_seq_len, L, dtype=np.float64):
    """Weights of a mean over the real positions: ``1 / t_b`` there, 0 at padding.

    ``weighted_pool_forward(mean_weights(...), x)`` is the average of a
    session's real rows of ``x``, so a mean needs no layer of its own.

    Parameters
    ----------
    item_seq_len : int array of shape (B,)
    L : int
    dtype : numpy dtype of the result

    Returns
    -------
    w : array of shape (B, L)
    """
    valid = valid_mask(item_seq_len, L)  # B,L
    t = np.asarray(item_seq_len)[:, None]  # B,1
    return (valid / t).astype(dtype)


def scaled_dot_forward(Q, K, scale):
    """Scaled dot products of every query with every key, ``S = scale * Q K^T``.

    Parameters
    ----------
    Q, K : arrays of shape (B, L, k)
    scale : float (``1 / sqrt(k)`` in scaled dot-product attention)

    Returns
    -------
    S : array of shape (B, L, L), ``S[b, i, j] = scale * Q[b, i] . K[b, j]``
    cache : tuple
    """
    scale = float(scale)  # keep Q's dtype
    S = scale * (Q @ K.transpose(0, 2, 1))
    return S, (Q, K, scale)


def scaled_dot_backward(dS, cache):
    """``dQ = scale * dS K`` and ``dK = scale * dS^T Q``.

    Returns
    -------
    dQ, dK : arrays of shape (B, L, k)
    """
    Q, K, scale = cache
    return scale * (dS @ K), scale * (dS.transpose(0, 2, 1) @ Q)


def attention_apply_forward(A, V):
    """Mix the values with the attention weights, ``H = A V`` per session.

    Parameters
    ----------
    A : array of shape (B, L, L), ``A[b, i, j]`` = attention of query i to key j
    V : array of shape (B, L, k)

    Returns
    -------
    H : array of shape (B, L, k), ``H[b, i] = sum_j A[b, i, j] V[b, j]``
    cache : tuple
    """
    return A @ V, (A, V)


def attention_apply_backward(dH, cache):
    """``dA = dH V^T`` and ``dV = A^T dH``.

    Returns
    -------
    dA : array of shape (B, L, L)
    dV : array of shape (B, L, k)
    """
    A, V = cache
    return dH @ V.transpose(0, 2, 1), A.transpose(0, 2, 1) @ dH


# --------------------------------------------------------------------------
# beyond the paper (SR-IEM+): normalised representations, dropout
# --------------------------------------------------------------------------
def l2_normalize_forward(x, eps=1e-12):
    """Scale every row (last axis) of ``x`` to unit length, as NISER (Gupta et al., 2019) does
    to the item embeddings and the session representation before scoring.

    ``y = x / sqrt(sum(x**2) + eps)`` per row; ``eps`` keeps a zero row (the
    padding embedding) at zero instead of dividing by zero.

    Parameters
    ----------
    x : array of shape (..., d)
    eps : float

    Returns
    -------
    y : array of the shape of ``x``
    cache : tuple
    """
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True) + eps)  # ...,1
    y = x / norm
    return y, (y, norm)


def l2_normalize_backward(dy, cache):
    """``dx = (dy - y * sum(dy * y)) / norm`` per row: the part of ``dy`` along ``y`` is
    removed, since moving ``x`` along itself does not change ``y``.

    Returns
    -------
    (dx,) : a 1-tuple, ``dx`` of the shape of ``dy``
    """
    y, norm = cache
    return ((dy - y * (dy * y).sum(axis=-1, keepdims=True)) / norm,)


def dropout_forward(x, p, rng):
    """Inverted dropout: zero each entry with probability ``p``, scale the rest by ``1/(1-p)``.

    The expected output equals ``x``, so nothing changes at evaluation time
    (call the layer only in training). ``rng`` (a ``numpy.random.Generator``)
    is passed in, never global, so a seeded run draws the same masks.

    Parameters
    ----------
    x : array of any shape
    p : float in [0, 1)
    rng : numpy.random.Generator

    Returns
    -------
    y : array of the shape of ``x``
    cache : the mask (``0`` or ``1/(1-p)`` per entry, in ``x``'s dtype)
    """
    mask = dropout_mask(x.shape, p, rng, x.dtype)
    return x * mask, mask


def dropout_mask(shape, p, rng, dtype):
    """The mask of :func:`dropout_forward`: ``1/(1-p)`` where ``rng.random(shape) >= p``, else 0.

    Parameters
    ----------
    shape : tuple of int
    p : float in [0, 1)
    rng : numpy.random.Generator (one ``rng.random(shape)`` draw)
    dtype : numpy dtype of the mask

    Returns
    -------
    mask : array of ``shape`` and ``dtype``
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    dtype = np.dtype(dtype)
    return (rng.random(shape) >= p).astype(dtype) / dtype.type(1 - p)


def dropout_backward(dy, cache):
    """``dx = dy * mask``.

    Returns
    -------
    (dx,) : a 1-tuple, ``dx`` of the shape of ``dy``
    """
    return (dy * cache,)
