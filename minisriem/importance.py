"""Importance modules: from a session's embeddings to its long-term preference.

An importance module maps the embedded session to ``z_l`` (eq. 6) and shows
how much weight each item got. All modules share one API::

    z_l, cache = module_forward(emb, item_seq_len, params, variant)
    demb, dparams = module_backward(dz_l, cache)

``params`` is the model's parameter dict; a module reads only its own keys and
``dparams`` has exactly those keys. ``cache["beta"]`` (B, L) holds the weight
each position received (0 at padding); ``cache["layers"]`` holds the caches of
the layers the module ran, as a named tuple (:class:`IEMCaches`,
:class:`StampCaches`, :class:`SatCaches`), so a backward pass reads them by
name. ``PARAM_SHAPES[name](d, l, variant)`` gives the shapes of a module's
parameters; keys never collide with the model's own ("E", "W0", "b0").

This file holds SR-IEM's module (eq. 1-6) and the two alternatives the paper
compares it with in Fig. 3 (Section 4.3), all composed from the layers of
:mod:`minisriem.layers` (the attention layers ``scaled_dot`` and ``attention_apply`` and the helper
``mean_weights`` among them):

=========  ==============================================  ====================
name       long-term preference ``z_l``                    ``cache["beta"]``
=========  ==============================================  ====================
"iem"      SR-IEM, eq. (1)-(6)                             softmax weights (5)
"stamp"    SR-STAMP: STAMP's attention (Liu et al., KDD     STAMP's raw weights
           2018), query = last item and mean of items      ``a_i`` (no softmax)
"sat"      SR-SAT: scaled dot-product self-attention        attention each
           (Vaswani et al., 2017), then average pooling     position receives
=========  ==============================================  ====================

Shape letters are those of :mod:`minisriem.layers` (B, L, d, l).
"""

from typing import NamedTuple

import numpy as np

from minisriem import layers


class IEMCaches(NamedTuple):
    """The layer caches of :func:`iem_forward`, in the order the layers run.

    Each field is the cache one layer of :mod:`minisriem.layers` returned; the
    shape is that of the layer's output.
    """

    q_lin: tuple
    """``linear_forward(emb, Wq)``: ``E_s Wq``, (B, L, l)."""
    k_lin: tuple
    """``linear_forward(emb, Wk)``: ``E_s Wk``, (B, L, l)."""
    q_sig: object
    """``sigmoid_forward``: ``Q`` of eq. (1), (B, L, l); None for "official" (no sigmoid)."""
    k_sig: object
    """``sigmoid_forward``: ``K`` of eq. (2), (B, L, l); None for "official"."""
    aff: tuple
    """``affinity_forward(Q, K, ...)``: ``C`` of eq. (3), (B, L, L)."""
    avg: tuple
    """``masked_average_forward(C, ...)``: ``alpha`` of eq. (4), (B, L)."""
    sm: object
    """``masked_softmax_forward(alpha, ...)``: ``beta`` of eq. (5), (B, L)."""
    pool: tuple
    """``weighted_pool_forward(beta, emb)``: ``z_l`` of eq. (6), (B, d)."""


class StampCaches(NamedTuple):
    """The layer caches of :func:`stamp_forward`, in the order the layers run
    (shapes: the layer's output)."""

    mean: tuple
    """``weighted_pool_forward(1/t, emb)``: the session mean ``m_s``, (B, d)."""
    last: tuple
    """``last_item_forward(emb, ...)``: the last item ``e_t``, (B, d)."""
    item: tuple
    """``linear_forward(emb, W1)``: ``e_i W1``, (B, L, d)."""
    last_lin: tuple
    """``linear_forward(e_t, W2)``: ``e_t W2``, (B, d)."""
    mean_lin: tuple
    """``linear_forward(m_s, W3, b_a)``: ``m_s W3 + b_a``, (B, d)."""
    sig: object
    """``sigmoid_forward``: the hidden vectors ``h_i``, (B, L, d)."""
    w0: tuple
    """``linear_forward(h, w0)``: the raw weights ``a_i``, (B, L, 1)."""
    pool: tuple
    """``weighted_pool_forward(a, emb)``: ``z_l``, (B, d)."""


class SatCaches(NamedTuple):
    """The layer caches of :func:`sat_forward`, in the order the layers run
    (shapes: the layer's output)."""

    q: tuple
    """``linear_forward(emb, Wq)``: the queries ``Q``, (B, L, d)."""
    k: tuple
    """``linear_forward(emb, Wk)``: the keys ``K``, (B, L, d)."""
    v: tuple
    """``linear_forward(emb, Wv)``: the values ``V``, (B, L, d)."""
    dot: tuple
    """``scaled_dot_forward(Q, K, ...)``: ``S = Q K^T / sqrt(d)``, (B, L, L)."""
    sm: object
    """``masked_softmax_forward``: ``A``, one softmax per query row, (B * L, L)."""
    apply: tuple
    """``attention_apply_forward(A, V)``: ``H = A V``, (B, L, d)."""
    pool: tuple
    """``weighted_pool_forward(1/t, H)``: ``z_l``, (B, d)."""


def iem_param_shapes(d, l, variant):
    """Shapes of the IEM module's parameters.

    The paper (and its "scaled" form) projects to ``l`` dimensions, ``Wq, Wk: (d, l)``;
    the released code projects to ``d`` dimensions, ``Wq, Wk: (d, d)``.
    """
    k = d if variant == "official" else l
    return {"Wq": (d, k), "Wk": (d, k)}


def iem_forward(emb, item_seq_len, params, variant):
    """SR-IEM's importance extraction module, eq. (1)-(6).

    paper:    Q = sigmoid(E_s Wq), K = sigmoid(E_s Wk)       (1), (2)
              C = sigmoid(Q K^T) / sqrt(d)                    (3)
              alpha_i = sum_{j != i} C_ij / t                 (4)
    official: Q = E_s Wq, K = E_s Wk
              C = sigmoid(Q K^T / sqrt(d))
              alpha_i = sum_{j != i} C_ij / max(t - 1, 1)
    both:     beta = softmax(alpha) over real positions       (5)
              z_l = sum_i beta_i e_i                          (6)

    Parameters
    ----------
    emb : array of shape (B, L, d)
    item_seq_len : int array of shape (B,)
    params : dict with "Wq", "Wk" of shape (d, l) (paper) or (d, d) (official)
    variant : {"paper", "official", "scaled"}; "scaled" (SR-IEM+) is "paper" with
        C = sigmoid(Q K^T / sqrt(d)), the scaling inside the sigmoid as in the code

    Returns
    -------
    z_l : array of shape (B, d)
    cache : dict; ``cache["beta"]`` is (B, L), ``cache["layers"]`` an :class:`IEMCaches`
    """
    d = emb.shape[2]
    q_lin, q_lin_cache = layers.linear_forward(emb, params["Wq"])  # B,L,l
    k_lin, k_lin_cache = layers.linear_forward(emb, params["Wk"])  # B,L,l
    if variant == "paper":
        Q, q_sig_cache = layers.sigmoid_forward(q_lin)
        K, k_sig_cache = layers.sigmoid_forward(k_lin)
        inner, outer, divide_by = 1.0, 1.0 / np.sqrt(d), "t"
    elif variant == "official":
        Q, K, q_sig_cache, k_sig_cache = q_lin, k_lin, None, None
        inner, outer, divide_by = 1.0 / np.sqrt(d), 1.0, "t-1"
    elif variant == "scaled":  # SR-IEM+: the paper's form, 1/sqrt(d) inside the sigmoid
        Q, q_sig_cache = layers.sigmoid_forward(q_lin)
        K, k_sig_cache = layers.sigmoid_forward(k_lin)
        inner, outer, divide_by = 1.0 / np.sqrt(d), 1.0, "t"
    else:
        raise ValueError(f"variant must be 'paper', 'official' or 'scaled', not {variant!r}")
    C, aff_cache = layers.affinity_forward(Q, K, inner, outer)  # B,L,L
    alpha, avg_cache = layers.masked_average_forward(C, item_seq_len, divide_by)  # B,L
    beta, sm_cache = layers.masked_softmax_forward(alpha, item_seq_len)  # B,L
    z_l, pool_cache = layers.weighted_pool_forward(beta, emb)  # B,d
    cache = {
        "beta": beta,
        "alpha": alpha,
        "C": C,
        "layers": IEMCaches(
            q_lin=q_lin_cache,
            k_lin=k_lin_cache,
            q_sig=q_sig_cache,
            k_sig=k_sig_cache,
            aff=aff_cache,
            avg=avg_cache,
            sm=sm_cache,
            pool=pool_cache,
        ),
    }
    return z_l, cache


def iem_backward(dz_l, cache):
    """Backward pass of :func:`iem_forward`.

    Returns
    -------
    demb : array of shape (B, L, d)
    dparams : dict with "Wq", "Wk"
    """
    c = cache["layers"]
    dbeta, demb = layers.weighted_pool_backward(dz_l, c.pool)
    dQ, dK = iem_beta_backward(dbeta, c)
    demb_q, dWq, _ = layers.linear_backward(dQ, c.q_lin)
    demb_k, dWk, _ = layers.linear_backward(dK, c.k_lin)
    demb += demb_q
    demb += demb_k
    return demb, {"Wq": dWq, "Wk": dWk}


def iem_beta_backward(dbeta, c):
    """From the gradient of the weights ``beta`` back to the projections, eq. (5) to (1)-(2).

    The part of :func:`iem_backward` between the pooling and the linear maps
    (the kernels' twin, :func:`minisriem.kernels.iem_pool_backward_numpy`, shares it).

    Parameters
    ----------
    dbeta : array of shape (B, L)
    c : IEMCaches

    Returns
    -------
    dQ, dK : arrays of shape (B, L, l), the gradients of ``E_s Wq`` and ``E_s Wk``
        (through the sigmoids of eq. (1)-(2) for "paper")
    """
    (dalpha,) = layers.masked_softmax_backward(dbeta, c.sm)
    (dC,) = layers.masked_average_backward(dalpha, c.avg)
    dQ, dK = layers.affinity_backward(dC, c.aff)
    if c.q_sig is not None:
        (dQ,) = layers.sigmoid_backward(dQ, c.q_sig)
        (dK,) = layers.sigmoid_backward(dK, c.k_sig)
    return dQ, dK


# --------------------------------------------------------------------------
# SR-STAMP: STAMP's attention as the importance module (Fig. 3)
# --------------------------------------------------------------------------
def stamp_param_shapes(d, l, variant):
    """Shapes of SR-STAMP's parameters (``l`` and ``variant`` are unused).

    ``stamp_W1, stamp_W2, stamp_W3: (d, d)`` map the item, the last item and
    the session mean; ``stamp_ba: (d,)`` is the bias ``b_a``; ``stamp_w0: (d,)``
    turns a hidden vector into one weight.
    """
    return {
        "stamp_W1": (d, d),
        "stamp_W2": (d, d),
        "stamp_W3": (d, d),
        "stamp_ba": (d,),
        "stamp_w0": (d,),
    }


def stamp_forward(emb, item_seq_len, params, variant=None):
    """STAMP's attention (Liu et al., KDD 2018, eq. 7-8 there) in SR-IEM's framework.

    The query mixes the session's general interest, the mean of its items,
    with its current interest, the last item::

        m_s = (1/t) sum_i e_i                                 session mean
        h_i = sigmoid(e_i W1 + e_t W2 + m_s W3 + b_a)         (d,) per item
        a_i = h_i . w0                                        raw weight
        z_l = sum_i a_i e_i                                   over real i

    As in STAMP, ``a_i`` is used raw: no softmax, so the weights need not be
    positive nor sum to one. ``cache["beta"]`` reports these raw ``a_i``
    (0 at padding). ``variant`` does not change this module (the model's
    fusion still follows it).

    Parameters
    ----------
    emb : array of shape (B, L, d)
    item_seq_len : int array of shape (B,)
    params : dict with "stamp_W1", "stamp_W2", "stamp_W3" (d, d),
        "stamp_ba" (d,), "stamp_w0" (d,)
    variant : ignored

    Returns
    -------
    z_l : array of shape (B, d)
    cache : dict; ``cache["beta"]`` is (B, L), ``cache["layers"]`` a :class:`StampCaches`
    """
    B, L, d = emb.shape
    valid = layers.valid_mask(item_seq_len, L)  # B,L
    w_mean = layers.mean_weights(item_seq_len, L, emb.dtype)  # B,L
    m_s, mean_cache = layers.weighted_pool_forward(w_mean, emb)  # B,d
    e_t, last_cache = layers.last_item_forward(emb, item_seq_len)  # B,d
    u_item, item_cache = layers.linear_forward(emb, params["stamp_W1"])  # B,L,d
    u_last, last_lin_cache = layers.linear_forward(e_t, params["stamp_W2"])  # B,d
    u_mean, mean_lin_cache = layers.linear_forward(m_s, params["stamp_W3"], params["stamp_ba"])
    pre = u_item + (u_last + u_mean)[:, None, :]  # B,L,d: one query per session
    h, sig_cache = layers.sigmoid_forward(pre)  # B,L,d
    a, w0_cache = layers.linear_forward(h, params["stamp_w0"][:, None])  # B,L,1
    beta = np.where(valid, a[:, :, 0], 0).astype(emb.dtype, copy=False)  # B,L
    z_l, pool_cache = layers.weighted_pool_forward(beta, emb)  # B,d
    cache = {
        "beta": beta,
        "valid": valid,
        "layers": StampCaches(
            mean=mean_cache,
            last=last_cache,
            item=item_cache,
            last_lin=last_lin_cache,
            mean_lin=mean_lin_cache,
            sig=sig_cache,
            w0=w0_cache,
            pool=pool_cache,
        ),
    }
    return z_l, cache


def stamp_backward(dz_l, cache):
    """Backward pass of :func:`stamp_forward`.

    ``e_i`` reaches ``z_l`` four ways: as the pooled vector, through
    ``e_i W1``, through the last item ``e_t`` and through the mean ``m_s``;
    ``demb`` sums the four.

    Returns
    -------
    demb : array of shape (B, L, d)
    dparams : dict with "stamp_W1", "stamp_W2", "stamp_W3", "stamp_ba", "stamp_w0"
    """
    c = cache["layers"]
    dbeta, demb = layers.weighted_pool_backward(dz_l, c.pool)  # B,L / B,L,d
    da = np.where(cache["valid"], dbeta, 0)[:, :, None]  # B,L,1: padding gets nothing
    dh, dw0, _ = layers.linear_backward(da, c.w0)  # B,L,d / d,1
    (dpre,) = layers.sigmoid_backward(dh, c.sig)  # B,L,d
    dquery = dpre.sum(axis=1)  # B,d: the query was broadcast over positions
    demb_item, dW1, _ = layers.linear_backward(dpre, c.item)
    de_t, dW2, _ = layers.linear_backward(dquery, c.last_lin)
    dm_s, dW3, dba = layers.linear_backward(dquery, c.mean_lin)
    demb += demb_item
    (demb_last,) = layers.last_item_backward(de_t, c.last)
    demb += demb_last
    _, demb_mean = layers.weighted_pool_backward(dm_s, c.mean)
    demb += demb_mean
    dparams = {
        "stamp_W1": dW1,
        "stamp_W2": dW2,
        "stamp_W3": dW3,
        "stamp_ba": dba,
        "stamp_w0": dw0[:, 0],
    }
    return demb, dparams


# --------------------------------------------------------------------------
# SR-SAT: self-attention, then average pooling (Fig. 3)
# --------------------------------------------------------------------------
def sat_param_shapes(d, l, variant):
    """Shapes of SR-SAT's parameters (``l`` and ``variant`` are unused).

    ``sat_Wq, sat_Wk, sat_Wv: (d, d)``, the query, key and value maps.
    """
    return {"sat_Wq": (d, d), "sat_Wk": (d, d), "sat_Wv": (d, d)}


def sat_forward(emb, item_seq_len, params, variant=None):
    """Scaled dot-product self-attention over the session, then average pooling.

    The standard single-head attention (Vaswani et al., 2017) among the
    session's real items, followed by the mean over real positions::

        Q = E_s Wq,  K = E_s Wk,  V = E_s Wv                  (t, d) each
        A = softmax_rows(Q K^T / sqrt(d))  over real keys     (t, t)
        H = A V                                               (t, d)
        z_l = (1/t) sum_i H_i = sum_j beta_j V_j,  beta_j = (1/t) sum_i A_ij

    ``cache["beta"]`` is ``beta_j``, the average attention position ``j``
    receives from the session's real queries: it sums to one over real
    positions and is 0 at padding. Note that ``z_l`` pools the values
    ``V_j = e_j Wv``, not the raw ``e_j`` as eq. (6) does. No residual
    connection, layer norm or feed-forward block: only what the paper names.
    ``variant`` does not change this module.

    Parameters
    ----------
    emb : array of shape (B, L, d)
    item_seq_len : int array of shape (B,)
    params : dict with "sat_Wq", "sat_Wk", "sat_Wv" of shape (d, d)
    variant : ignored

    Returns
    -------
    z_l : array of shape (B, d)
    cache : dict; ``cache["beta"]`` is (B, L), ``cache["A"]`` is (B, L, L),
        ``cache["layers"]`` a :class:`SatCaches`
    """
    B, L, d = emb.shape
    Q, q_cache = layers.linear_forward(emb, params["sat_Wq"])  # B,L,d
    K, k_cache = layers.linear_forward(emb, params["sat_Wk"])  # B,L,d
    V, v_cache = layers.linear_forward(emb, params["sat_Wv"])  # B,L,d
    S, dot_cache = layers.scaled_dot_forward(Q, K, 1.0 / np.sqrt(d))  # B,L,L
    # every row (query) is a softmax over the session's real keys; rows of
    # padded queries are computed too but get weight 0 in the pooling below
    A_flat, sm_cache = layers.masked_softmax_forward(
        S.reshape(B * L, L), np.repeat(item_seq_len, L)
    )  # B*L,L
    A = A_flat.reshape(B, L, L)
    H, apply_cache = layers.attention_apply_forward(A, V)  # B,L,d
    w_mean = layers.mean_weights(item_seq_len, L, emb.dtype)  # B,L
    z_l, pool_cache = layers.weighted_pool_forward(w_mean, H)  # B,d
    beta = np.einsum("bi,bij->bj", w_mean, A)  # B,L: column mean over real rows
    cache = {
        "beta": beta,
        "A": A,
        "layers": SatCaches(
            q=q_cache,
            k=k_cache,
            v=v_cache,
            dot=dot_cache,
            sm=sm_cache,
            apply=apply_cache,
            pool=pool_cache,
        ),
    }
    return z_l, cache


def sat_backward(dz_l, cache):
    """Backward pass of :func:`sat_forward`.

    Returns
    -------
    demb : array of shape (B, L, d)
    dparams : dict with "sat_Wq", "sat_Wk", "sat_Wv"
    """
    c = cache["layers"]
    B, L, _ = cache["A"].shape
    _, dH = layers.weighted_pool_backward(dz_l, c.pool)  # B,L,d (0 at padded rows)
    dA, dV = layers.attention_apply_backward(dH, c.apply)  # B,L,L / B,L,d
    (dS,) = layers.masked_softmax_backward(dA.reshape(B * L, L), c.sm)
    dS = dS.reshape(B, L, L)
    dQ, dK = layers.scaled_dot_backward(dS, c.dot)  # B,L,d each
    demb, dWq, _ = layers.linear_backward(dQ, c.q)
    demb_k, dWk, _ = layers.linear_backward(dK, c.k)
    demb_v, dWv, _ = layers.linear_backward(dV, c.v)
    demb += demb_k
    demb += demb_v
    return demb, {"sat_Wq": dWq, "sat_Wk": dWk, "sat_Wv": dWv}


MODULES = {
    "iem": (iem_forward, iem_backward),
    "stamp": (stamp_forward, stamp_backward),
    "sat": (sat_forward, sat_backward),
}
PARAM_SHAPES = {
    "iem": iem_param_shapes,
    "stamp": stamp_param_shapes,
    "sat": sat_param_shapes,
}
