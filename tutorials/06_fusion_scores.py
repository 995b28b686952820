"""Step 6: fusion with the current interest, and scoring every item (eq. 7-8).

Run: python tutorials/06_fusion_scores.py
Time: about 1 s (CPU time on one thread, measured; about the wall time on an
idle machine). Nothing to gain from threads: it is mostly starting Python.

The idea
--------
``z_l`` (step 5) summarises the whole session. What the user clicks next
also depends strongly on what they clicked last, so SR-IEM takes the last
item's embedding as the *current interest*:

    z_s = e_t                       (the last real item, position t - 1)

and fuses the two with one linear map (``[a ; b]`` stacks two vectors):

    z_h = W0 [z_l ; z_s]            (7)     W0 : (d, 2d),  z_h : (d,)

Every item ``v`` then gets a score, the dot product of ``z_h`` with the
item's own embedding, the same ``E`` that step 2 looked items up in:

    zhat_v = z_h . E[v]             (8)     for v = 1..n

In a batch: ``scores = z_h @ E[1:].T``, shape ``(B, n)``. Column ``j`` holds
item ``j + 1``, because row 0 of ``E`` is padding and is not scored. (This
off-by-one is the most common bug around eq. 8; the exercise tests for it.)

The gradients, derived
----------------------
Last item. ``z_s[b] = emb[b, t_b - 1]`` copies one position, so its gradient
goes back to that position and every other position gets 0.

Fusion. With ``x = [z_l ; z_s]`` (length 2d) and ``z_h[r] = sum_c W0[r, c] x[c]``:

    dx = W0^T dz_h     -> dz_l = dx[:d],  dz_s = dx[d:]
    dW0 = dz_h x^T     (summed over the batch)

(The library writes this as a linear layer ``x @ W0.T``; its bias ``b0`` is
used only by the released code's variant, with ``db0 = sum_b dz_h[b]``.)

Scores. ``scores[b, j] = sum_k z_h[b, k] E[j+1, k]``, so

    dz_h = dscores @ E[1:]          dE[1:] = dscores^T @ z_h          dE[0] = 0

Here ``E`` gets a gradient from *every* item, not only those in the batch:
each score is pushed up or down. In the model, ``E`` is used twice, for the
lookup of step 2 and for the scores here, and its gradient is the sum of
both (step 8 composes them).
"""

import common
import numpy as np
from checks import check_scores_backward

from minisriem import layers
from minisriem.gradcheck import check_layer
from minisriem.layers import mean_weights


def main():
    rng = np.random.default_rng(0)
    check_rng = np.random.default_rng(1)  # the checks' own draws: rng's numbers stay put
    d, n = 5, 10
    item_seq = np.array([[3, 1, 4, 1], [5, 9, 0, 0], [2, 0, 0, 0]])
    item_seq_len = np.array([4, 2, 1])
    E = rng.standard_normal((n + 1, d))
    E[0] = 0
    W0 = rng.standard_normal((d, 2 * d)) / np.sqrt(2 * d)
    emb = E[item_seq]  # B,L,d (a copy: here we treat emb and E as separate inputs)
    # B,d: a stand-in for SR-IEM's z_l, the mean over each session's REAL items
    # (weights 1/t, 0 at padding; steps 4-5 insist on the mask, and so do we)
    z_l, _ = layers.weighted_pool_forward(mean_weights(item_seq_len, emb.shape[1]), emb)

    common.heading("Forward: z_s, z_h (eq. 7), scores (eq. 8)")
    z_s, last_cache = layers.last_item_forward(emb, item_seq_len)  # B,d
    print("z_s[1] is item", item_seq[1, item_seq_len[1] - 1], ":", np.allclose(z_s[1], E[9]))
    z_h, fus_cache = layers.fusion_forward(z_l, z_s, W0)  # B,d
    scores, sc_cache = layers.scores_forward(z_h, E)  # B,n
    print("scores.shape =", scores.shape, "(n =", n, "items; column j is item j+1)")
    top = np.argsort(-scores[0])[:3] + 1  # +1: column -> item id
    print("top-3 items for session 0:", top, "scores", np.round(np.sort(scores[0])[::-1][:3], 3))

    common.heading("Backward, checked numerically")
    dscores = rng.standard_normal(scores.shape)
    dz_h, dE = layers.scores_backward(dscores, sc_cache)
    dz_l, dz_s, dW0, db0 = layers.fusion_backward(dz_h, fus_cache)
    (demb,) = layers.last_item_backward(dz_s, last_cache)

    def fused_forward(z_l, W0, emb):  # eq. (7) and (8), with the last item's gather
        z_s, last_cache = layers.last_item_forward(emb, item_seq_len)
        z_h, fus_cache = layers.fusion_forward(z_l, z_s, W0)
        scores, sc_cache = layers.scores_forward(z_h, E)
        return scores, (last_cache, fus_cache, sc_cache)

    def fused_backward(dscores, cache):
        last_cache, fus_cache, sc_cache = cache
        dz_h, _ = layers.scores_backward(dscores, sc_cache)
        dz_l, dz_s, dW0, _ = layers.fusion_backward(dz_h, fus_cache)
        (demb,) = layers.last_item_backward(dz_s, last_cache)
        return dz_l, dW0, demb

    scores_only = check_layer(
        layers.scores_forward, layers.scores_backward, [z_h, E], {1: 1}, check_rng
    )
    fused = check_layer(
        fused_forward,
        fused_backward,
        [z_l, W0, emb],
        {0: 0, 1: 1, 2: 2},
        check_rng,
        names=["dz_l", "dW0", "demb (via z_s)"],
    )
    errs = {"dE (scores only)": scores_only.errors["argument 1"], **fused.errors}
    print("fusion + scores gradient check: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    assert max(errs.values()) < 1e-8
    print("dE[0] (padding, never scored) =", dE[0])
    print(
        "only the last real position gets gradient through z_s: demb[1] rows nonzero =",
        np.flatnonzero(np.abs(demb[1]).sum(axis=1)),
    )

    common.heading("The off-by-one: E[:n] instead of E[1:]")
    wrong = z_h @ E[:n].T
    print(
        "scoring with E[:n] gives item 1 the score of the padding row (always 0):",
        np.allclose(wrong[:, 0], 0),
    )


# ==========================================================================
# EXERCISE
# Write the scores' backward pass. ``cache`` is what
# ``layers.scores_forward`` returns: ``(z_h, E)``. Return ``(dz_h, dE)``.
# Run this file to check it, or from the repository root check any function:
#   python -c "from tutorials.checks import check_scores_backward as c; \
#              from minisriem import layers; c(layers.scores_backward)"
# ==========================================================================
def my_scores_backward(dscores, cache):
    z_h, E = cache
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_scores_backward, my_scores_backward)
