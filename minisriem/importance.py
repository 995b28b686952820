"""Importance modules: from a session's embeddings to its long-term preference.

An importance module maps the embedded session to ``z_l`` (eq. 6) and shows
how much weight each item got. All modules share one API::

    z_l, cache = module_forward(emb, item_seq_len, params, variant)
    demb, dparams = module_backward(dz_l, cache)

``params`` is the model's parameter dict; a module reads only its own keys and
``dparams`` has exactly those keys. ``cache["beta"]`` (B, L) holds the weight
each position received (0 at padding). ``PARAM_SHAPES[name](d, l, variant)``
gives the shapes of a module's parameters.

This file holds SR-IEM's module (eq. 1-6), composed from the layers.
"""

import numpy as np

from minisriem import layers


def iem_param_shapes(d, l, variant):
    """Shapes of the IEM module's parameters.

    The paper projects to ``l`` dimensions, ``Wq, Wk: (d, l)``; the released
    code projects to ``d`` dimensions, ``Wq, Wk: (d, d)``.
    """
    k = l if variant == "paper" else d
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
    variant : {"paper", "official"}

    Returns
    -------
    z_l : array of shape (B, d)
    cache : dict; ``cache["beta"]`` is (B, L)
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
    else:
        raise ValueError(f"variant must be 'paper' or 'official', not {variant!r}")
    C, aff_cache = layers.affinity_forward(Q, K, inner, outer)  # B,L,L
    alpha, avg_cache = layers.masked_average_forward(C, item_seq_len, divide_by)  # B,L
    beta, sm_cache = layers.masked_softmax_forward(alpha, item_seq_len)  # B,L
    z_l, pool_cache = layers.weighted_pool_forward(beta, emb)  # B,d
    cache = {
        "beta": beta,
        "alpha": alpha,
        "C": C,
        "layers": (
            q_lin_cache,
            k_lin_cache,
            q_sig_cache,
            k_sig_cache,
            aff_cache,
            avg_cache,
            sm_cache,
            pool_cache,
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
    (
        q_lin_cache,
        k_lin_cache,
        q_sig_cache,
        k_sig_cache,
        aff_cache,
        avg_cache,
        sm_cache,
        pool_cache,
    ) = cache["layers"]
    dbeta, demb = layers.weighted_pool_backward(dz_l, pool_cache)
    dalpha = layers.masked_softmax_backward(dbeta, sm_cache)
    dC = layers.masked_average_backward(dalpha, avg_cache)
    dQ, dK = layers.affinity_backward(dC, aff_cache)
    if q_sig_cache is not None:
        dQ = layers.sigmoid_backward(dQ, q_sig_cache)
        dK = layers.sigmoid_backward(dK, k_sig_cache)
    demb_q, dWq, _ = layers.linear_backward(dQ, q_lin_cache)
    demb_k, dWk, _ = layers.linear_backward(dK, k_lin_cache)
    demb += demb_q
    demb += demb_k
    return demb, {"Wq": dWq, "Wk": dWk}


MODULES = {"iem": (iem_forward, iem_backward)}
PARAM_SHAPES = {"iem": iem_param_shapes}
