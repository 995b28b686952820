"""Step 8: the whole model: composing the caches, and a model-level gradient check.

Run: python tutorials/08_whole_model.py
Time: about 1 s (CPU time on one thread, measured; about the wall time on an
idle machine). Nothing to gain from threads: it is mostly starting Python.

The idea
--------
Steps 2-7 built every piece as a pair ``out, cache = forward(...)`` /
``grads = backward(dout, cache)``. The model is those pieces in a row:

    emb   = E[item_seq]                          step 2    (B, L, d)
    z_l   = IEM(emb)                             steps 3-5 (B, d): eq. (1)-(6)
    z_s   = emb[b, t_b - 1]                      step 6    (B, d)
    z_h   = W0 [z_l ; z_s]                       step 6    (B, d): eq. (7)
    zhat  = z_h E[1:]^T                          step 6    (B, n): eq. (8)
    loss  = mean_b (lse(zhat_b) - zhat_b,y)      step 7    eq. (9)-(10)

The forward pass keeps every cache; the backward pass walks the same list in
reverse, handing each ``backward`` the gradient of its output and its own
cache. ``minisriem/importance.py`` does this for eq. (1)-(6) (its cache is a
dict holding the layers' caches, by name, in ``cache["layers"]``) and ``minisriem/model.py`` for the
rest: read ``SRIEM.session_forward`` and ``SRIEM.session_backward`` side by
side and you will see one line backward for each line forward.

The backward functions, and what each returns
----------------------------------------------
Every ``backward(dout, cache)`` of ``layers.py`` returns a tuple: the
gradients of its forward's *array* arguments, in the forward's order, a tuple
of one when there is one:

    layers.embedding_backward(demb, cache)             -> (dE,)
    layers.linear_backward(dy, cache)                  -> (dx, dW, db)   db None without a bias
    layers.sigmoid_backward(ds, cache)                 -> (dx,)
    layers.affinity_backward(dC, cache)                -> (dQ, dK)
    layers.masked_average_backward(dalpha, cache)      -> (dC,)
    layers.masked_softmax_backward(dbeta, cache)       -> (dalpha,)
    layers.weighted_pool_backward(dz_l, cache)         -> (dbeta, demb)
    layers.last_item_backward(dz_s, cache)             -> (demb,)
    layers.fusion_backward(dz_h, cache)                -> (dz_l, dz_s, dW0, db0)  db0: None, paper
    layers.scores_backward(dscores, cache)             -> (dz_h, dE)
    layers.softmax_cross_entropy_backward(dloss, cache) -> (dscores,)
    importance.iem_backward(dz_l, cache)               -> (demb, {"Wq": dWq, "Wk": dWk})

So the query's linear layer gives ``demb_q, dWq, _ = layers.linear_backward(dQ, q_lin)``
(the ``_`` is the bias gradient, None here), and the sigmoid
``(dQ,) = layers.sigmoid_backward(dQ, q_sig)``.

Where a value is used more than once, gradients ADD
---------------------------------------------------
This is the one new rule. If ``x`` feeds two computations ``f(x)`` and
``g(x)``, then ``dloss/dx = dloss/df * df/dx + dloss/dg * dg/dx``: each use
sends back its own share and the shares are summed. In SR-IEM:

* ``emb`` is used four times: by the query (eq. 1), the key (eq. 2), the
  pooling (eq. 6) and the last-item gather. ``iem_backward`` sums three
  ``demb`` pieces and ``session_backward`` adds the fourth.
* ``E`` is used twice: looked up (step 2) and scored against (step 6). The
  model adds the scatter-added lookup gradient to the scoring gradient.

Forgetting one of these sums is the classic bug of a hand-written backward
pass. A gradient check of the whole model catches it.

Checking the whole model, and a subtlety
----------------------------------------
We compare every parameter's gradient from ``loss_and_grads`` with central
differences of the loss, in float64 on a tiny model. A central difference
``(f(x+h) - f(x-h)) / 2h`` with ``h = 1e-5`` carries an absolute error of
roughly 1e-10 (rounding of ``f``, divided by ``2h``). A gradient that is
itself tiny cannot be checked relative to that noise, and the paper's Wq and
Wk have tiny gradients: at the paper's sizes about 1e-17 (step 4), and even in
this tiny model (``l = 4``, so ``q . k`` is about 1 instead of 25) about 1e-5,
which already shows up as a relative error near 1e-5. We therefore scale
every parameter up (x3), which moves the sigmoids of eq. (1)-(3) into their
sensitive range and the gradients well above the noise; the backward pass is
the same code either way.
"""

import common
import numpy as np
from checks import check_iem_backward, check_model_loss_and_grads

from minisriem import layers
from minisriem.gradcheck import check_model, random_session_batch
from minisriem.importance import iem_forward
from minisriem.model import SRIEM


def main():
    rng = np.random.default_rng(0)
    n, d, l, B, L = 12, 6, 4, 6, 5
    item_seq, item_seq_len, targets = random_session_batch(rng, B, L, n)
    print("a batch with a length-1 session, a full one and a repeated item:\n", item_seq)

    common.heading("Composing the forward pass by hand, from the layers")
    model = SRIEM(n, d=d, l=l, variant="paper", seed=0, dtype=np.float64)
    p = model.params
    emb, emb_cache = layers.embedding_forward(p["E"], item_seq)
    z_l, iem_cache = iem_forward(emb, item_seq_len, p, "paper")
    z_s, last_cache = layers.last_item_forward(emb, item_seq_len)
    z_h, fus_cache = layers.fusion_forward(z_l, z_s, p["W0"])
    scores, sc_cache = layers.scores_forward(z_h, p["E"])
    loss, ce_cache = layers.softmax_cross_entropy_forward(scores, targets - 1)
    print(
        f"loss by hand {loss:.12f}; model.loss_and_grads "
        f"{model.loss_and_grads(item_seq, item_seq_len, targets)[0]:.12f}"
    )
    print("iem cache keys:", sorted(iem_cache), "; its layer caches:", len(iem_cache["layers"]))

    common.heading("The gradients of E: two uses, two parts")
    _, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    (dscores,) = layers.softmax_cross_entropy_backward(1.0, ce_cache)
    dz_h, dE_scores = layers.scores_backward(dscores, sc_cache)
    dE_lookup = grads["E"] - dE_scores
    used = np.unique(item_seq[item_seq > 0])
    unused = np.setdiff1d(np.arange(1, n + 1), used)
    print(
        "rows of items in the batch get a lookup part:",
        bool(np.all(np.abs(dE_lookup[used]).sum(axis=1) > 0)),
    )
    print(
        "rows of the other items get only the scoring part:",
        bool(np.allclose(dE_lookup[unused], 0)),
    )

    common.heading("Model-level gradient check, both variants")

    def model_errors(variant, scale):
        model = SRIEM(n, d=d, l=l, variant=variant, seed=1, dtype=np.float64)
        for w in model.params.values():
            w *= scale
        _, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
        sizes = {name: np.abs(g).max() for name, g in grads.items()}
        # tol=inf: measure every error, even the paper's at init, without asserting
        errs = check_model(model, item_seq, item_seq_len, targets, tol=np.inf, min_gradient=0)
        return errs, sizes

    errs, sizes = model_errors("paper", 1.0)
    print(
        f"paper at init: largest |dWq| = {sizes['Wq']:.1e}, relative error "
        f"{errs['Wq']:.1e}: the difference is finite-difference noise, not a bug"
    )
    for variant in ("paper", "official"):
        errs, sizes = model_errors(variant, 3.0)
        shown = ", ".join(f"{k} {v:.1e}" for k, v in errs.items())
        print(f"{variant:8s} params x3: model gradient check: {shown}")
        assert max(errs.values()) < 1e-6

    common.heading("What a forgotten sum looks like")
    model = SRIEM(n, d=d, l=l, variant="official", seed=1, dtype=np.float64)
    loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    z_h, cache = model.session_forward(item_seq, item_seq_len)
    scores, sc_cache = layers.scores_forward(z_h, model.params["E"])
    _, ce_cache = layers.softmax_cross_entropy_forward(scores, targets - 1)
    (dscores,) = layers.softmax_cross_entropy_backward(1.0, ce_cache)
    dz_h, dE_scores = layers.scores_backward(dscores, sc_cache)
    both = check_model(model, item_seq, item_seq_len, targets, tol=np.inf)["E"]
    forgotten = check_model(  # the same gradients, but dE without its lookup part
        model,
        item_seq,
        item_seq_len,
        targets,
        tol=np.inf,
        loss_and_grads=lambda *batch: (loss, {**grads, "E": dE_scores}),
    )["E"]
    print(f"dE with both parts: relative error {both:.1e}; scoring part only: {forgotten:.1e}")


# ==========================================================================
# EXERCISE (two parts)
# 1. Write the importance module's backward pass (eq. 1-6), from the layers'
#    backward functions above, in both variants. ``cache`` is what
#    ``minisriem.importance.iem_forward`` returns; ``cache["layers"]`` is a named
#    tuple (``importance.IEMCaches``) of the layers' caches: c.q_lin, c.k_lin,
#    c.q_sig, c.k_sig (None for "official", which has no sigmoid), c.aff, c.avg,
#    c.sm, c.pool. Return ``(demb, {"Wq": dWq, "Wk": dWk})``.
#    Remember: emb feeds three branches.
# 2. The whole model, eq. (1)-(10): write ``my_model_loss_and_grads(model,
#    item_seq, item_seq_len, targets) -> (loss, grads)``, a dict with a
#    gradient for every key of ``model.params`` ("E", "Wq", "Wk", "W0", and
#    "b0" for "official"), from the layers and an IEM backward (yours from
#    part 1, or the library's). Do not call the model's own methods. Compose
#    the forward as ``main()`` does, then walk back; E gets two parts.
# Run this file to check both, or from the repository root check any function:
#   python -c "from tutorials.checks import check_iem_backward as c; \
#              from minisriem.importance import iem_backward; c(iem_backward)"
#   python -c "from tutorials.checks import check_model_loss_and_grads as c; \
#              c(lambda m, *batch: m.loss_and_grads(*batch))"
# ==========================================================================
def my_iem_backward(dz_l, cache):
    # c = cache["layers"] holds c.q_lin, c.k_lin, c.q_sig, c.k_sig, c.aff, c.avg, c.sm, c.pool
    raise NotImplementedError  # replace with your code


def my_model_loss_and_grads(model, item_seq, item_seq_len, targets):
    # model.params holds "E", "Wq", "Wk", "W0", and "b0" when model.variant == "official"
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_iem_backward, my_iem_backward)
    common.run_exercise(check_model_loss_and_grads, my_model_loss_and_grads)
