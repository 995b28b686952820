"""Step 7: full-softmax cross-entropy and its gradient (eq. 9-10), and why log-sum-exp.

Run: python tutorials/07_cross_entropy.py
Time: about 1 s (CPU time on one thread, measured; about the wall time on an
idle machine). Nothing to gain from threads: it is mostly starting Python.

The idea
--------
The scores ``zhat`` of step 6 become probabilities over all ``n`` items,

    yhat = softmax(zhat),   yhat_v = exp(zhat_v) / sum_u exp(zhat_u)      (9)

and training makes the item the user really clicked next, the *target* ``y``,
probable. The loss of one session is the cross-entropy

    loss = -log yhat_y = log(sum_u exp(zhat_u)) - zhat_y                 (10)

averaged over the sessions of a batch. It is 0 when the model puts all its
probability on the target and ``log n`` when it spreads it evenly, which is
roughly what an untrained model does: a useful first sanity check.

Eq. (10) as printed also adds ``(1 - y_v) log(1 - yhat_v)`` for every other
item (a binary cross-entropy per item). The usual choice with a softmax, and
ours, is the plain ``-log yhat_y``. For small ``yhat_v`` the extra term is
``-log(1 - yhat_v) ~ yhat_v``, so while every wrong item's probability is
small, as in an untrained model, it adds about ``sum_{v != y} yhat_v = 1 - yhat_y``,
at most about 1, against ``-log yhat_y`` of about ``log n``. It is not bounded
in general: a model that puts probability ``p`` on one wrong item pays
``-log(1 - p)`` for it, which grows without limit as ``p`` nears 1. The code
below computes both, including such a confident mistake.

Why log-sum-exp
---------------
Computing ``exp(zhat)`` directly fails in two ways. If a score exceeds 88.7,
``exp`` overflows float32 to ``inf`` and the loss becomes ``inf/inf = nan``.
If all scores are very negative, every ``exp`` underflows to 0 and the loss
``-log(0/0)`` is ``nan`` too. The fix uses ``log sum exp(z) = m + log sum
exp(z - m)`` with ``m = max(z)``, which is exact algebra (factor ``exp(m)``
out of the sum). Then the largest term is ``exp(0) = 1``, the sum lies in
``[1, n]``, and nothing overflows or underflows to zero. We also never form
``log(yhat_y)``: ``loss = lse - zhat_y`` is computed from the scores.

The gradient, derived
---------------------
For one session, ``d lse / d zhat_v = exp(zhat_v) / sum_u exp(zhat_u) = yhat_v``
and ``d zhat_y / d zhat_v`` is 1 for ``v = y`` and 0 otherwise, so

    dzhat_v = yhat_v - [v == y]          (softmax minus one-hot)

The mean over the batch divides by ``B``. The gradient pushes the target's
score up by ``1 - yhat_y`` and every other score down by its probability;
the pushes sum to zero.
"""

import common
import numpy as np
from checks import check_softmax_cross_entropy

from minisriem import layers
from minisriem.gradcheck import check_layer
from minisriem.model import SRIEM


def naive_cross_entropy(scores, target_idx):
    """eq. (9)-(10) written literally: softmax first, then -log. Do not use."""
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(len(scores)), target_idx]).mean())


def main():
    rng = np.random.default_rng(0)
    check_rng = np.random.default_rng(1)  # the checks' own draws: rng's numbers stay put
    B, n = 4, 6

    common.heading("Forward and backward")
    scores = rng.standard_normal((B, n))
    target_idx = rng.integers(0, n, size=B)  # columns: item id - 1
    loss, cache = layers.softmax_cross_entropy_forward(scores, target_idx)
    (dscores,) = layers.softmax_cross_entropy_backward(1.0, cache)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    onehot = np.eye(n)[target_idx]
    print(f"loss = {loss:.6f}; naive formula gives {naive_cross_entropy(scores, target_idx):.6f}")
    print("dscores == (softmax - onehot) / B:", np.allclose(dscores, (p - onehot) / B))
    print("each row of dscores sums to 0:", np.allclose(dscores.sum(axis=1), 0))
    check = check_layer(
        lambda s: layers.softmax_cross_entropy_forward(s, target_idx),
        layers.softmax_cross_entropy_backward,
        [scores],
        {0: 0},
        check_rng,
        names=["scores"],
    )
    err = check.errors["scores"]
    print(f"cross-entropy gradient check: relative error {err:.1e}")
    assert err < 1e-8

    common.heading("Why log-sum-exp: large and very negative scores, float32")
    for shift in (100.0, -200.0):
        s32 = (scores + shift).astype(np.float32)
        with np.errstate(all="ignore"):
            naive = naive_cross_entropy(s32, target_idx)
        stable, _ = layers.softmax_cross_entropy_forward(s32, target_idx)
        print(f"scores + {shift:6.0f}: naive loss {naive}, log-sum-exp loss {stable:.6f}")
    assert np.isfinite(layers.softmax_cross_entropy_forward(scores + 1e4, target_idx)[0])

    common.heading("Eq. (10) as printed, with the (1 - y) log(1 - yhat) term")
    for n_big in (6, 1000):
        s = rng.standard_normal((B, n_big))
        t = rng.integers(0, n_big, size=B)
        q = np.exp(s - s.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        ce = float(-np.log(q[np.arange(B), t]).mean())
        others = np.ones_like(q, dtype=bool)
        others[np.arange(B), t] = False
        extra = float(-(np.log1p(-q) * others).sum(axis=1).mean())
        print(
            f"n = {n_big:4d}: -log yhat_y = {ce:.4f}; extra term = {extra:.4f}; "
            f"1 - yhat_y = {float(1 - q[np.arange(B), t].mean()):.4f}"
        )
    for p_wrong in (0.9, 0.999):  # one confident wrong item, the rest spread evenly
        q = np.full(1000, (1 - p_wrong) / 999)
        q[1] = p_wrong  # the target is item 0
        extra = float(-np.log1p(-q[1:]).sum())
        print(
            f"a confident mistake, yhat of one wrong item = {p_wrong}: extra term = "
            f"{extra:.4f} (-log(1 - {p_wrong}) = {-np.log1p(-p_wrong):.4f}), not bounded by 1"
        )

    common.heading("An untrained model's loss is about log n")
    n_items = 300
    model = SRIEM(n_items, d=32, l=16, seed=0)
    seq = rng.integers(1, n_items + 1, size=(128, 10))
    lens = rng.integers(1, 11, size=128)
    seq[np.arange(10)[None, :] >= lens[:, None]] = 0
    loss0, _ = model.loss_and_grads(seq, lens, rng.integers(1, n_items + 1, size=128))
    print(f"loss at init {loss0:.4f}, log n = {np.log(n_items):.4f}")


# ==========================================================================
# EXERCISE
# Write the loss and its backward pass. ``my_cross_entropy_forward(scores,
# target_idx)`` returns ``(loss, cache)``, the batch mean of
# ``lse(scores[b]) - scores[b, target_idx[b]]``, finite for scores in the
# thousands; ``my_cross_entropy_backward(dloss, cache)`` returns ``(dscores,)``.
# The cache is yours to design.
# Run this file to check it, or from the repository root check any pair:
#   python -c "from tutorials.checks import check_softmax_cross_entropy as c; \
#              from minisriem import layers; \
#              c(layers.softmax_cross_entropy_forward, layers.softmax_cross_entropy_backward)"
# ==========================================================================
def my_cross_entropy_forward(scores, target_idx):
    raise NotImplementedError  # replace with your code


def my_cross_entropy_backward(dloss, cache):
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(
        check_softmax_cross_entropy, my_cross_entropy_forward, my_cross_entropy_backward
    )
