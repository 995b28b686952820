"""Step 5: softmax into beta, and importance-weighted pooling (eq. 5-6).

Run: python tutorials/05_softmax_pooling.py
Time: about 1 s (CPU time on one thread, measured; about the wall time on an
idle machine). Nothing to gain from threads: it is mostly starting Python.

The idea
--------
The scores ``alpha`` of step 4 are turned into weights that are positive and
sum to one, by a softmax over the session's real items:

    beta_i = exp(alpha_i) / sum_{j < t} exp(alpha_j)        (5)

and the session's *long-term preference* is the weighted average of its
item embeddings:

    z_l = sum_{i < t} beta_i e_i                            (6)     z_l : (d,)

If every ``beta_i`` were ``1/t``, ``z_l`` would be the plain mean of the
embeddings ("mean pooling"). The whole point of SR-IEM's importance module
is to move away from that: a stray click should get a small ``beta``.

Masking. In a padded batch the softmax runs over positions ``0..t-1`` only.
The library sets padded entries to ``-inf`` before the exponential, so they
become exactly 0, and a length-1 session gets ``beta = [1]`` and ``z_l = e_1``.

Stability. ``softmax(alpha) = softmax(alpha - c)`` for any constant c (the
factor ``exp(-c)`` cancels), so the library subtracts each row's maximum
first; then no ``exp`` can overflow.

The gradients, derived
----------------------
Softmax. Differentiate ``beta_i = exp(alpha_i) / Z`` with
``Z = sum_j exp(alpha_j)``:

    d beta_i / d alpha_j = beta_i * (delta_ij - beta_j)

(``delta_ij`` is 1 when i = j, else 0). By the chain rule,

    dalpha_j = sum_i dbeta_i * beta_i * (delta_ij - beta_j)
             = beta_j * dbeta_j - beta_j * sum_i beta_i dbeta_i
             = beta_j * (dbeta_j - sum_i beta_i dbeta_i)

One line of NumPy, no Jacobian matrix. At padded positions ``beta_j = 0``, so
``dalpha_j = 0``: padding gets no gradient. Note ``sum_j dalpha_j = 0``: adding
the same number to every alpha changes nothing, so the gradient has no
component along that direction.

Pooling. ``z_l[k] = sum_i beta_i e_i[k]`` is linear in each factor:

    dbeta_i = dz_l . e_i            de_i = beta_i * dz_l

What to expect of the paper's form: step 4 showed each ``C[i, j]`` lies in
``(0.5/sqrt(d), 1/sqrt(d))``, so each ``alpha_i`` (``t - 1`` terms divided by
``t``) lies in an interval of width ``(t-1)/t * 0.5/sqrt(d)``, less than 0.0354
for ``d = 200``. Since ``beta_i / beta_j = exp(alpha_i - alpha_j)``, no weight
can exceed another by more than a factor ``exp(0.0354) = 1.036``, *whatever
the weights Wq, Wk are*. The code below checks it.
"""

import common
import numpy as np
from checks import check_masked_softmax_backward

from minisriem import layers
from minisriem.gradcheck import check_layer
from minisriem.model import SRIEM


def main():
    rng = np.random.default_rng(0)
    check_rng = np.random.default_rng(1)  # the checks' own draws: rng's numbers stay put
    B, L, d = 3, 5, 4
    item_seq_len = np.array([5, 3, 1])

    common.heading("Forward: beta (eq. 5) and z_l (eq. 6)")
    alpha = rng.standard_normal((B, L))
    alpha[1, 3:] = 1e6  # garbage at padded positions must not matter
    beta, sm_cache = layers.masked_softmax_forward(alpha, item_seq_len)  # B,L
    print("beta =\n", np.round(beta, 4))
    print("rows sum to", beta.sum(axis=1), "; length-1 session:", beta[2])
    emb = rng.standard_normal((B, L, d))
    z_l, pool_cache = layers.weighted_pool_forward(beta, emb)  # B,d
    print("z_l of the length-1 session equals its only embedding:", np.allclose(z_l[2], emb[2, 0]))

    common.heading("Backward, checked numerically")
    dz_l = rng.standard_normal(z_l.shape)
    dbeta, demb = layers.weighted_pool_backward(dz_l, pool_cache)
    (dalpha,) = layers.masked_softmax_backward(dbeta, sm_cache)
    by_hand = beta * (dbeta - (beta * dbeta).sum(axis=1, keepdims=True))
    print("library dalpha == beta * (dbeta - sum beta dbeta):", np.allclose(dalpha, by_hand))

    def forward(alpha, emb):  # eq. (5) then (6), their caches together
        beta, sm_cache = layers.masked_softmax_forward(alpha, item_seq_len)
        z_l, pool_cache = layers.weighted_pool_forward(beta, emb)
        return z_l, (sm_cache, pool_cache)

    def backward(dz_l, cache):
        sm_cache, pool_cache = cache
        dbeta, demb = layers.weighted_pool_backward(dz_l, pool_cache)
        (dalpha,) = layers.masked_softmax_backward(dbeta, sm_cache)
        return dalpha, demb

    names = ["alpha", "emb"]
    errs = check_layer(forward, backward, [alpha, emb], {0: 0, 1: 1}, check_rng, names=names).errors
    err_a, err_e = errs["alpha"], errs["emb"]
    print(f"softmax + pooling gradient check: dalpha {err_a:.1e}, demb {err_e:.1e}")
    assert max(err_a, err_e) < 1e-8
    print("each row of dalpha sums to 0:", np.allclose(dalpha.sum(axis=1), 0))
    print("padding gets no gradient: dalpha[1, 3:] =", dalpha[1, 3:])

    common.heading("The paper's beta is almost uniform, whatever the weights")
    n, t = 500, 10
    seq = rng.integers(1, n + 1, size=(256, t))
    lens = np.full(256, t)
    bound = np.exp((t - 1) / t * 0.5 / np.sqrt(200))
    betas = {}
    for variant in ("paper", "official"):
        for scale in (1, 10, 30):
            model = SRIEM(n, d=200, l=100, variant=variant, seed=0, dtype=np.float64)
            for name in ("E", "Wq", "Wk"):  # try much larger weights than at init
                model.params[name] *= scale
            beta = model.item_weights(seq, lens)  # B,L
            ratio = (beta.max(axis=1) / beta.min(axis=1)).max()
            print(
                f"{variant:8s} E, Wq, Wk x{scale:<2d}: largest beta_max / beta_min "
                f"over 256 sessions = {ratio:.6f}"
            )
            betas[variant, scale] = beta[0]
    print(f"the paper's bound exp((t-1)/t * 0.5/sqrt(d)) = {bound:.4f} for t = {t}, d = 200;")
    print("in practice it stays far closer to 1: q_i . k_j is a sum of l positive terms,")
    print("large for almost any weights, so sigmoid(Q K^T) is pinned near 1 (step 4)")

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    x = np.arange(t)
    for k, (variant, scale) in enumerate([("paper", 10), ("official", 10)]):
        ax.bar(
            x + (k - 0.5) * 0.4,
            betas[variant, scale],
            width=0.4,
            label=f"{variant}, E, Wq, Wk x{scale}",
        )
    ax.axhline(1 / t, color="k", lw=0.8, ls="--", label="mean pooling, 1/t")
    ax.set_xlabel("position i in one session")
    ax.set_ylabel("beta_i")
    # the legend sits below the axes, where it hides no bar
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    ax.set_title("Weights of one session (eq. 5)")
    common.save_figure(fig, "05_beta.png")


# ==========================================================================
# EXERCISE
# Write the masked softmax's backward pass. ``cache`` is what
# ``layers.masked_softmax_forward`` returns: ``beta`` itself (0 at padding).
# Return ``(dalpha,)``, a tuple of one, as every backward in layers.py does.
# Run this file to check it, or from the repository root check any function:
#   python -c "from tutorials.checks import check_masked_softmax_backward as c; \
#              from minisriem import layers; c(layers.masked_softmax_backward)"
# ==========================================================================
def my_masked_softmax_backward(dbeta, cache):
    # cache is beta, the softmax's output (0 at padding)
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_masked_softmax_backward, my_masked_softmax_backward)
