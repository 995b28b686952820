"""Step 4: the affinity matrix and masked averaging into importance (eq. 3-4).

Run: python tutorials/04_affinity_importance.py
Time: about 2 s (CPU time on one thread, measured; about the wall time on an
idle machine). Nothing to gain from threads: it is mostly starting Python.

The idea
--------
An item that resembles most other items of its session probably expresses
what the user is after; an item unlike the rest was perhaps a stray click.
SR-IEM measures "resembles" with an affinity matrix, one entry per pair of
items of a session:

    C = sigmoid(Q K^T) / sqrt(d)                        (3)     C : (t, t)

``C[i, j]`` is how well item i's query matches item j's key. The importance
of item i is its average affinity to the *other* items:

    alpha_i = (1/t) * sum_{j != i} C[i, j]              (4)     alpha : (t,)

Two masks hide entries from this sum, and ``M`` below holds both:

* the diagonal ``j == i``: an item always matches itself well (its query and
  key come from the same vector), which says nothing about the session;
* padding: in a batch padded to ``L``, positions ``t..L-1`` are not items.
  ``M[b, i, j] = (i < t_b) and (j < t_b) and (i != j)``; padded rows
  (``i >= t_b``) get ``alpha = 0`` and step 5 ignores them too.

Note the divisor is ``t``, though only ``t - 1`` terms are summed; the
authors' released code divides by ``t - 1`` (step 13). A session of length 1
has no other item, so ``alpha = [0]``.

The library writes (3) a little more generally, as
``C = outer * sigmoid(inner * Q K^T)``, so that the same layer serves the paper
(``inner = 1, outer = 1/sqrt(d)``) and the released code (``inner = 1/sqrt(d),
outer = 1``).

The gradients, derived
----------------------
Affinity. Write ``S = Q K^T`` and ``P = sigmoid(inner * S)``, so
``C = outer * P``. Going backwards one operation at a time:

    dP = outer * dC
    dS = inner * dP * P * (1 - P)           (the sigmoid's derivative, step 3)
    S[i, j] = sum_k Q[i, k] K[j, k]   gives
    dQ = dS K        and        dK = dS^T Q

(``dQ[i, k] = sum_j dS[i, j] K[j, k]``: row i of Q meets every key.)

Masked average. ``alpha_i = sum_j M[i, j] C[i, j] / t`` is linear in C, so

    dC[i, j] = M[i, j] * dalpha_i / t

Every masked entry of C, the diagonal and all padding, gets exactly zero
gradient: nothing the loss sees depends on them. The forward uses
``np.where(M, C, 0)`` rather than ``M * C``: if a masked entry were ever inf or
NaN, ``0 * inf`` would be NaN and leak into the sum; ``where`` never reads it.

What the paper's form implies
-----------------------------
Q and K are sigmoids (step 3), so every ``Q K^T`` entry is positive, the
sigmoid of it lies in (0.5, 1), and ``C[i, j]`` in ``(0.5/sqrt(d), 1/sqrt(d))``:
about (0.035, 0.071) for ``d = 200``. Worse, at initialisation ``Q K^T`` is
about ``l / 4 = 25`` (step 3), where the sigmoid is flat: its derivative
``P(1 - P)`` is about 1e-11, so almost no gradient reaches Wq and Wk. The
code below measures both.
"""

import common
import numpy as np
from checks import check_masked_average_backward

from minisriem import layers
from minisriem.gradcheck import check_layer
from minisriem.model import SRIEM


def main():
    rng = np.random.default_rng(0)
    check_rng = np.random.default_rng(1)  # the checks' own draws: rng's numbers stay put
    B, L, l, d = 3, 5, 4, 16
    item_seq_len = np.array([5, 3, 1])  # a full session, a padded one, a length-1 one

    common.heading("The mask M: diagonal and padding")
    valid = layers.valid_mask(item_seq_len, L)  # B,L
    M = valid[:, :, None] & valid[:, None, :] & ~np.eye(L, dtype=bool)  # B,L,L
    print("M for the session of length 3 (L = 5):\n", M[1].astype(int))

    common.heading("Forward: C (eq. 3) and alpha (eq. 4)")
    Q = rng.uniform(0, 1, (B, L, l))  # sigmoid outputs lie in (0, 1)
    K = rng.uniform(0, 1, (B, L, l))
    C, aff_cache = layers.affinity_forward(Q, K, 1.0, 1 / np.sqrt(d))  # B,L,L
    alpha, avg_cache = layers.masked_average_forward(C, item_seq_len, "t")  # B,L
    # the same alpha by a plain loop over eq. (4):
    loop = np.zeros((B, L))
    for b, t in enumerate(item_seq_len):
        for i in range(t):
            loop[b, i] = sum(C[b, i, j] for j in range(t) if j != i) / t
    print("alpha =\n", np.round(alpha, 4))
    print("equals the loop over eq. (4):", np.allclose(alpha, loop))
    print("length-1 session: alpha =", alpha[2, :1], "; padded positions:", alpha[1, 3:])

    common.heading("Backward, checked numerically")
    dalpha = rng.standard_normal(alpha.shape)
    (dC,) = layers.masked_average_backward(dalpha, avg_cache)
    dQ, dK = layers.affinity_backward(dC, aff_cache)

    def forward(Q, K):  # eq. (3) then (4), their caches together
        C, aff_cache = layers.affinity_forward(Q, K, 1.0, 1 / np.sqrt(d))
        alpha, avg_cache = layers.masked_average_forward(C, item_seq_len, "t")
        return alpha, (aff_cache, avg_cache)

    def backward(dalpha, cache):
        aff_cache, avg_cache = cache
        (dC,) = layers.masked_average_backward(dalpha, avg_cache)
        return layers.affinity_backward(dC, aff_cache)

    errs = check_layer(forward, backward, [Q, K], {0: 0, 1: 1}, check_rng, names=["Q", "K"]).errors
    err_Q, err_K = errs["Q"], errs["K"]
    print(f"affinity + masked average gradient check: dQ {err_Q:.1e}, dK {err_K:.1e}")
    assert max(err_Q, err_K) < 1e-8
    print("dC is zero wherever M is False:", bool(np.all(dC[~M] == 0)))
    print("padded query rows get no gradient: dQ[1, 3:] =", dQ[1, 3:].ravel())

    common.heading("The paper's C lives in a narrow band, and its sigmoid is flat")
    model = SRIEM(1000, d=200, l=100, variant="paper", seed=0, dtype=np.float64)
    seq = rng.integers(1, 1001, size=(64, 10))
    lens = np.full(64, 10)
    emb = model.params["E"][seq]
    Qp = layers.sigmoid_forward(emb @ model.params["Wq"])[0]
    Kp = layers.sigmoid_forward(emb @ model.params["Wk"])[0]
    S = Qp @ Kp.transpose(0, 2, 1)
    P = layers.sigmoid_forward(S)[0]
    Cp = P / np.sqrt(200)
    flat = (P * (1 - P)).max()
    print(f"Q K^T at init: mean {S.mean():.2f} (l/4 = 25), P(1-P) at most {flat:.1e}")
    print(
        f"C in [{Cp.min():.5f}, {Cp.max():.5f}]; the bound is "
        f"({0.5 / np.sqrt(200):.4f}, {1 / np.sqrt(200):.4f})"
    )
    targets = rng.integers(1, 1001, size=64)
    _, g64 = model.loss_and_grads(seq, lens, targets)
    m32 = SRIEM(1000, d=200, l=100, variant="paper", seed=0)  # float32, as trained
    _, g32 = m32.loss_and_grads(seq, lens, targets)
    print(
        f"largest |dWq| at init: {np.abs(g64['Wq']).max():.1e} in float64, "
        f"{np.abs(g32['Wq']).max():.1e} in float32 (sigmoid(25) rounds to 1)"
    )
    print(f"compare largest |dW0|: {np.abs(g64['W0']).max():.1e}")

    official = SRIEM(1000, d=200, variant="official", seed=0, dtype=np.float64)
    # the released code's C = sigmoid(Q K^T / sqrt(d)) can reach (0, 1); at init it sits
    # at 0.5, where the sigmoid is steepest. The paper's is pinned to its ceiling.
    Co = official.session_forward(seq, lens)[1]["importance"]["C"]
    plt = common.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    t = 6
    Mshow = np.arange(10)[:, None] < t
    Mshow = Mshow & Mshow.T & ~np.eye(10, dtype=bool)
    axes[0].imshow(Mshow, cmap="Greys", vmin=0, vmax=1.5)
    axes[0].set_title(f"mask M (t={t}, L=10)")
    # a key for the mask: grey entries are summed in eq. (4), white ones are masked
    from matplotlib.patches import Patch

    grey = plt.get_cmap("Greys")(1 / 1.5)
    axes[0].legend(
        handles=[
            Patch(facecolor=grey, edgecolor="k", label="True: summed"),
            Patch(facecolor="white", edgecolor="k", label="False: diagonal, padding"),
        ],
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
    )
    # each C on a colour scale spanning everything it could ever be:
    lo, hi = 0.5 / np.sqrt(200), 1 / np.sqrt(200)
    panels = ((axes[1], Cp[0], "paper", lo, hi), (axes[2], Co[0], "released code", 0.0, 1.0))
    for ax, Cs, name, vmin, vmax in panels:
        im = ax.imshow(np.where(Mshow, Cs, np.nan), cmap="viridis", vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(f"C at init: {name}")
    for ax in axes:
        ax.set_xlabel("j (key)")
        ax.set_ylabel("i (query)")
    common.save_figure(fig, "04_affinity.png")


# ==========================================================================
# EXERCISE
# Write the masked average's backward pass. ``cache`` is what
# ``layers.masked_average_forward`` returns: ``(M, inv)`` with M the (B, L, L)
# bool mask and inv the (B, 1) array of 1 / divisor. Return ``(dC,)``, a tuple
# of one, as every backward in layers.py does.
# Run this file to check it, or from the repository root check any function:
#   python -c "from tutorials.checks import check_masked_average_backward as c; \
#              from minisriem import layers; c(layers.masked_average_backward)"
# ==========================================================================
def my_masked_average_backward(dalpha, cache):
    M, inv = cache
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_masked_average_backward, my_masked_average_backward)
