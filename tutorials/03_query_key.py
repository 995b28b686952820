"""Step 3: sigmoid projections into query and key (eq. 1-2), forward and backward.

Run: python tutorials/03_query_key.py
Time: about 1 s (CPU time on one thread, measured; about the wall time on an
idle machine). Nothing to gain from threads: it is mostly starting Python.

The idea
--------
SR-IEM wants to know how well each item of a session agrees with the others.
Like self-attention, it first maps each embedding into two new spaces: a
*query* (what this item looks for) and a *key* (what this item offers). For a
session's embeddings ``E_s`` (one row per item, shape ``(t, d)``):

    Q = sigmoid(E_s Wq)        (1)        Wq : (d, l),  Q : (t, l)
    K = sigmoid(E_s Wk)        (2)        Wk : (d, l),  K : (t, l)

(The paper writes ``Wq E``; with items as rows it is ``E_s Wq``.) The paper
uses ``l = 100`` for ``d = 200``. On a padded batch the same maps run on
``emb : (B, L, d)`` and give ``(B, L, l)``; padded rows are harmless here
because step 4 masks them.

Each projection is two layers, ``y = x W`` then ``s = sigmoid(y)``, where
``sigmoid(y) = 1 / (1 + exp(-y))`` squashes every number into (0, 1).

The gradients, derived
----------------------
Sigmoid. With ``s = 1 / (1 + exp(-y))``,

    ds/dy = exp(-y) / (1 + exp(-y))^2 = s * (1 - s)

because ``1 - s = exp(-y) / (1 + exp(-y))``. It acts entry by entry, so the
backward pass multiplies entry by entry: ``dy = ds * s * (1 - s)``. The cache
only needs ``s``. The derivative is at most 1/4 (at y = 0) and vanishes for
large ``|y|``: a saturated sigmoid passes almost no gradient.

Linear. ``y[r, c] = sum_k x[r, k] W[k, c]`` for every row ``r`` (all leading
axes B, L flattened into rows). Differentiating,

    dx = dy W^T                      (each x[r, k] feeds y[r, c] with weight W[k, c])
    dW = sum over rows of x[r]^T dy[r] = X^T dY   (X, dY: rows stacked)

The gradient of a weight that every row uses is the sum over rows.

Stability. ``exp(-y)`` overflows for y < -709 in float64 (and -88 in
float32). The library computes ``exp(-|y|)`` and picks ``1/(1+e)`` or
``e/(1+e)`` by the sign of ``y``, which never overflows.

Why a sigmoid here matters (a preview of steps 4, 12, 13): every entry of Q
and K lies in (0, 1), so every dot product ``q_i . k_j`` is positive. At
initialisation the projections ``E_s Wq`` are tiny, so Q and K are close to
0.5 everywhere and ``q_i . k_j`` is close to ``l / 4``.
"""

import common
import numpy as np
from checks import check_sigmoid_backward

from minisriem import layers
from minisriem.gradcheck import check_layer
from minisriem.model import SRIEM


def main():
    rng = np.random.default_rng(0)
    check_rng = np.random.default_rng(1)  # the checks' own draws: rng's numbers stay put
    B, L, d, l = 3, 4, 5, 2

    common.heading("Forward: Q = sigmoid(emb Wq)")
    emb = rng.standard_normal((B, L, d))  # B,L,d
    Wq = rng.standard_normal((d, l))  # d,l
    y, lin_cache = layers.linear_forward(emb, Wq)  # B,L,l
    Q, sig_cache = layers.sigmoid_forward(y)  # B,L,l
    print("emb", emb.shape, "@ Wq", Wq.shape, "->", y.shape, "-> sigmoid ->", Q.shape)
    print(f"Q lies in (0, 1): min {Q.min():.3f}, max {Q.max():.3f}")

    common.heading("Backward, and a numerical check of each piece")
    dQ = rng.standard_normal(Q.shape)
    (dy,) = layers.sigmoid_backward(dQ, sig_cache)  # a tuple of one: the gradient of y
    demb, dWq, _ = layers.linear_backward(dy, lin_cache)
    print("dy", dy.shape, "-> demb", demb.shape, "and dWq", dWq.shape)
    sig = check_layer(layers.sigmoid_forward, layers.sigmoid_backward, [y], {0: 0}, check_rng)
    err_sig = sig.errors["argument 0"]

    def projection_forward(emb, Wq):  # two layers composed: their caches travel together
        y, lin_cache = layers.linear_forward(emb, Wq)
        Q, sig_cache = layers.sigmoid_forward(y)
        return Q, (lin_cache, sig_cache)

    def projection_backward(dQ, cache):  # the same layers, walked back
        lin_cache, sig_cache = cache
        (dy,) = layers.sigmoid_backward(dQ, sig_cache)
        demb, dWq, _ = layers.linear_backward(dy, lin_cache)
        return demb, dWq

    proj = check_layer(
        projection_forward,
        projection_backward,
        [emb, Wq],
        {0: 0, 1: 1},
        check_rng,
        names=["emb", "Wq"],
    )
    err_emb, err_W = proj.errors["emb"], proj.errors["Wq"]
    print(f"sigmoid gradient check: relative error {err_sig:.1e}")
    print(f"projection gradient check: d emb {err_emb:.1e}, d Wq {err_W:.1e}")
    assert max(err_sig, err_emb, err_W) < 1e-8

    common.heading("Stability: no overflow for huge inputs")
    big = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise"):
        print("sigmoid", big, "=", layers.sigmoid_forward(big)[0])
    with np.errstate(over="ignore"):
        print("the naive 1/(1+exp(-x)) needs exp(1000) =", np.exp(-big[0]), "on the way")

    common.heading("At the paper's initialisation Q and K sit near 0.5")
    model = SRIEM(1000, d=200, l=100, variant="paper", seed=0, dtype=np.float64)
    seq = rng.integers(1, 1001, size=(64, 10))
    pre = model.params["E"][seq] @ model.params["Wq"]  # B,L,l
    Qi = layers.sigmoid_forward(pre)[0]
    print(
        f"E_s Wq ranges over [{pre.min():.3f}, {pre.max():.3f}]; "
        f"Q over [{Qi.min():.3f}, {Qi.max():.3f}]"
    )
    print(f"so q_i . k_j is about l/4 = {100 / 4:.0f} (step 4 shows what that does)")

    plt = common.pyplot()
    x = np.linspace(-8, 8, 400)
    s = layers.sigmoid_forward(x)[0]
    fig, ax = plt.subplots(figsize=(5, 2.8))
    ax.plot(x, s, label="sigmoid(y)")
    ax.plot(x, s * (1 - s), label="derivative s(1-s)")
    ax.axvspan(pre.min(), pre.max(), color="C2", alpha=0.3, label="E_s Wq at init")
    ax.set_xlabel("y")
    ax.legend(loc="upper left")
    ax.set_title("Sigmoid and its derivative (eq. 1-2)")
    common.save_figure(fig, "03_sigmoid.png")


# ==========================================================================
# EXERCISE
# Write the sigmoid's backward pass. ``cache`` is what
# ``layers.sigmoid_forward`` returns: the output ``s`` itself. Return ``(dx,)``,
# a tuple of one, as every backward in layers.py does.
# Run this file to check it, or from the repository root check any function:
#   python -c "from tutorials.checks import check_sigmoid_backward as c; \
#              from minisriem import layers; c(layers.sigmoid_backward)"
# ==========================================================================
def my_sigmoid_backward(ds, cache):
    # cache is s, the sigmoid's output
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_sigmoid_backward, my_sigmoid_backward)
