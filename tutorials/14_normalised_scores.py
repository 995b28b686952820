"""Step 14: normalised scoring (NISER), its gradient, and what it does to popularity.

Run: python tutorials/14_normalised_scores.py
Time: about 6 s (CPU time on one thread, measured; the wall time was 10 s on a
busy machine): four 3-epoch trainings of a small model (d = 64) on the
synthetic data. Quick mode (MINISRIEM_TUTORIAL_QUICK=1, 60 steps each) about 2 s.

The idea
--------
Eq. (8) scores item ``v`` by a dot product, ``zhat_v = z_h . E[v]``. A dot
product is a length times a cosine: ``|z_h| |E[v]| cos(z_h, E[v])``. Every
training step pushes the target's score up, and the popular items are the
targets of many steps, so their rows of ``E`` grow long, and a long row
scores high for *every* session: a bias towards popular items, whatever
the session is about. NISER (Gupta et al., "NISER: Normalized Item and
Session Representations to Handle Popularity Bias", 2019) removes the
lengths:

    e_v <- E[v] / |E[v]|          every item row (where it is looked up and where it scores)
    q   <- s * z_h / |z_h|        the session
    zhat_v = q . e_v = s * cos(z_h, E[v])

The scale ``s`` (NISER: 16) is needed because a cosine lies in [-1, 1]:
without it the softmax over 43,000 items could never put much probability
on one of them (``exp(1) / (43,000 exp(-1))`` is tiny). In minisriem this is
``SRIEM(..., scale=s)`` or ``python -m minisriem.train --scale 16``, one of
SR-IEM+'s additions (``--preset sriem-plus``).

The gradient, derived
---------------------
One row at a time: ``y = x / r`` with ``r = |x| = sqrt(x . x + eps)`` (the
``eps`` keeps the padding row, all zeros, at zero). Then ``dr/dx_j = x_j / r
= y_j`` and

    dy_i/dx_j = (delta_ij - y_i y_j) / r

so for an upstream gradient ``dy``:

    dx = (dy - y (y . dy)) / r

The part of ``dy`` along ``y`` is removed: moving ``x`` along itself changes
its length, not its direction, and ``y`` is only the direction. Two
consequences a test can see: ``dx . y = 0`` (the gradient is orthogonal to
the row), and a longer ``x`` gets a smaller gradient (the ``1/r``).

The scores ``q e_v`` are eq. (8)'s with ``q`` and the normalised table in
place of ``z_h`` and ``E``: their backward is step 6's (``dq = dS e``,
``de = dS^T q``). Then ``dz_h = (s dq - y (y . s dq)) / |z_h|`` by the rule
above, and ``E``, used twice as in step 8, sums its two gradients (scores
and lookup) *before* going back through the normalisation:
``dE = l2_normalize_backward(de_scores + de_lookup)``.

What the run shows
------------------
The synthetic data has almost no popularity bias (every item is the target
of 15 to 49 training examples), so the run also trains on a skewed copy of
it (the most popular item about ten times as frequent as the rarest). With
the dot product, the length of an item's row follows its popularity
(correlation about 0.5 to 0.6 after training); with normalised rows it
cannot (about 0.05 to 0.1, the length no longer matters and is not learned).
The top 20 then hold less popular items: 4% less popular on the synthetic
data, 12% on the skewed copy (full run). These short runs of a small model
lose Recall@20 with normalisation (36.0 against 33.8, and 10.2 against 8.4):
a cosine in [-1, 1] times 16 learns more slowly from the same steps, and
what normalisation buys on real data is for the reproduction's ablation to
measure, not for this step.
"""

import common
import numpy as np
from checks import check_l2_normalize_backward

from data_tools import load_dataset
from minisriem import layers
from minisriem.gradcheck import check_layer, check_model, random_session_batch
from minisriem.metrics import avg_popularity_at_k, item_popularity, model_topk, recall_at_k
from minisriem.model import SRIEM

D, LQ, L, SCALE = 64, 32, 10, 16.0


def skewed(train, n_items, rng):
    """A popularity-skewed copy of the training examples: item ``v`` (in a random order of
    the items, rank ``r``) keeps each example it is the target of with probability
    ``1 - 0.9 r / n``, so the most popular item is the target about 10 times as often as
    the rarest."""
    rank = rng.permutation(n_items + 1)  # rank[v]: item v's place in the popularity order
    keep = rng.random(len(train[2])) < 1 - 0.9 * rank[train[2]] / n_items
    return tuple(a[keep] for a in train)


def train_and_measure(n_items, scale, train, test):
    """A model trained on ``train``: its test Recall@20, the average popularity of its
    top 20 and the correlation of its rows' lengths with the items' popularity."""
    popularity = item_popularity(train[2], n_items)  # counted on the data it trains on
    model = SRIEM(n_items, d=D, l=LQ, seed=0, scale=scale)
    common.train_model(model, *train, epochs=common.quick(3, 1), max_steps=common.quick(None, 60))
    ranks, topk = model_topk(model, *test, k=20)
    norms = np.linalg.norm(model.params["E"][1:], axis=1)
    corr = float(np.corrcoef(norms, popularity[1:])[0, 1])
    return recall_at_k(ranks, 20), avg_popularity_at_k(topk, 20, popularity), corr


def main():
    rng = np.random.default_rng(0)

    common.heading("The layer: y = x / |x|, and its gradient")
    x = rng.standard_normal((4, 5))
    x[3] = 0  # a padding row
    y, cache = layers.l2_normalize_forward(x)
    print("row lengths after:", np.round(np.linalg.norm(y, axis=1), 6), "(the zero row stays 0)")
    dy = rng.standard_normal(y.shape)
    (dx,) = layers.l2_normalize_backward(dy, cache)
    orthogonal = np.allclose((dx * y).sum(axis=1), 0, atol=1e-9)
    print("dx . y = 0 in every row (the gradient is orthogonal to the row):", orthogonal)
    x = rng.standard_normal((6, 5))
    check_layer(layers.l2_normalize_forward, layers.l2_normalize_backward, [x], {0: 0}, rng)
    print("l2_normalize gradient check: passed (relative error below 1e-6)")

    common.heading("The whole model with normalised scoring, checked numerically")
    model = SRIEM(12, d=6, l=4, seed=1, dtype=np.float64, backend="numpy", scale=SCALE)
    for w in model.params.values():
        w *= 3  # away from the flat part of the sigmoids (tests/test_model.py says why)
    batch = random_session_batch(rng, 6, 5, 12)  # padding, a length-1 session, a repeat
    errors = check_model(model, *batch)
    print("gradient check, relative error per parameter:")
    print("  " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    print(f"RESULT model_gradcheck max={max(errors.values()):.1e}")
    scores = model.scores(*batch[:2])
    print(f"every score is in [-s, s] = [-{SCALE:g}, {SCALE:g}]: {np.abs(scores).max() <= SCALE}")

    common.heading("What normalisation does to the popularity of the top 20")
    ds = load_dataset("synthetic")
    train, test = ds.train.padded(L), ds.test.padded(L)
    data = {"synthetic": train, "skewed": skewed(train, ds.n_items, rng)}
    for name, (_, _, targets) in data.items():
        pop = item_popularity(targets, ds.n_items)[1:]
        print(
            f"{name:9s}: {len(targets)} training examples, an item is the target of "
            f"{pop.mean():.1f} on average, of {pop.min()} to {pop.max()}"
        )
    print(f"\n{'data':9s} {'scores':22s} {'test R@20':>9s} {'top-20 popularity':>18s} {'corr':>6s}")
    results = {}
    for name, train_data in data.items():
        for scores, scale in (("dot product, eq. (8)", 0.0), (f"{SCALE:g} x cosine", SCALE)):
            r = results[name, scale] = train_and_measure(ds.n_items, scale, train_data, test)
            print(f"{name:9s} {scores:22s} {100 * r[0]:9.2f} {r[1]:18.1f} {r[2]:6.2f}")
    print("top-20 popularity: mean popularity (training targets) of the items recommended")
    print("corr: correlation of the length |E[v]| with item v's popularity after training")
    for name in data:
        (r_dot, p_dot, c_dot), (r_norm, p_norm, c_norm) = results[name, 0.0], results[name, SCALE]
        print(
            f"RESULT {name} popularity dot={p_dot:.1f} norm={p_norm:.1f} "
            f"ratio={p_norm / p_dot:.3f} recall_dot={r_dot:.4f} recall_norm={r_norm:.4f} "
            f"corr_dot={c_dot:.2f} corr_norm={c_norm:.2f}"
        )


# ==========================================================================
# EXERCISE
# Write the backward pass of y = x / |x| (per row of the last axis). ``cache``
# is what ``layers.l2_normalize_forward`` returns: ``(y, norm)`` with ``norm``
# of shape (..., 1). Return a 1-tuple ``(dx,)``. Check any function with:
#   python -c "from tutorials.checks import check_l2_normalize_backward as c; \
#              from minisriem import layers; c(layers.l2_normalize_backward)"
# ==========================================================================
def my_l2_normalize_backward(dy, cache):
    y, norm = cache
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_l2_normalize_backward, my_l2_normalize_backward)
