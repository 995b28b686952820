"""Checks for the tutorials' exercises: point one at your code and run it.

Each ``check_*`` function takes the function(s) you wrote, runs them on small
random float64 inputs that include padding, length-1 sessions and a repeated
item, and raises ``AssertionError`` with a message saying what is wrong. It
returns None when your code is right. For example, from the repository root::

    python -c "from tutorials.checks import check_sigmoid_backward; \\
               from mycode import sigmoid_backward; check_sigmoid_backward(sigmoid_backward)"

or fill in the stub in the ``EXERCISE`` section at the end of a step and run
the step. Gradients are compared with central differences
(:mod:`minisriem.gradcheck`); a correct backward pass agrees to about 1e-9,
and anything above 1e-6 is a bug.

Where a check takes a ``forward`` too, you may pass your own forward pass
(its cache is then yours to design) or leave the library's. A backward
returns a tuple, as every backward of :mod:`minisriem.layers` does (``(dx,)``
when there is one gradient); a check also accepts the bare array.
"""

import os
import sys
from itertools import combinations

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from minisriem import layers
from minisriem.gradcheck import check_layer, check_model, checked_array, random_session_batch
from minisriem.importance import iem_forward
from minisriem.optim import Adam

__all__ = [
    "check_pad_sessions",
    "check_embedding_backward",
    "check_sigmoid_backward",
    "check_masked_average_backward",
    "check_masked_softmax_backward",
    "check_scores_backward",
    "check_softmax_cross_entropy",
    "check_iem_backward",
    "check_model_loss_and_grads",
    "check_adam",
    "check_recall_mrr",
    "check_embedding_scatter_add",
    "check_noise_lowest_share",
    "check_beta_ratio_bound",
    "check_l2_normalize_backward",
]

TOL = 1e-6  # largest accepted relative error of a gradient


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _same(name, got, want, tol=1e-10):
    got = checked_array(name, got, np.shape(want))
    err = np.abs(got - want).max(initial=0.0)
    if err > tol * max(1.0, np.abs(want).max(initial=0.0)):
        i = tuple(int(k) for k in np.unravel_index(np.argmax(np.abs(got - want)), np.shape(want)))
        raise AssertionError(
            f"{name} is wrong: at index {i} you have {got[i]!r}, expected {want[i]!r}"
        )


def _gradcheck(name, forward, backward, args, wrt, rng, arg_names, **options):
    """:func:`minisriem.gradcheck.check_layer` at :data:`TOL`, its message prefixed by ``name``.

    ``options`` are ``check_layer``'s ``known_mistakes`` (run first: a check for
    one known mistake names its cause, where the gradient check that follows can
    only say "wrong") and ``hint``. Returns the gradients.
    """
    try:
        return check_layer(forward, backward, args, wrt, rng, TOL, arg_names, **options)
    except AssertionError as e:
        raise AssertionError(f"{name}: {e}") from None


# --------------------------------------------------------------------------
# step 1: sessions as data
# --------------------------------------------------------------------------
def _pad_reference(sessions, L):
    item_seq = np.zeros((len(sessions), L), dtype=np.int64)
    item_seq_len = np.zeros(len(sessions), dtype=np.int64)
    for b, s in enumerate(sessions):
        kept = list(s)[-L:]
        item_seq[b, : len(kept)] = kept
        item_seq_len[b] = len(kept)
    return item_seq, item_seq_len


def check_pad_sessions(pad_sessions):
    """Check ``pad_sessions(sessions, L) -> (item_seq, item_seq_len)``.

    ``sessions`` is a list of lists of item ids (each at least one item);
    the result keeps each session's ``L`` most recent items, left-aligned in
    a ``(B, L)`` integer array padded with 0, and their count.
    """
    rng = np.random.default_rng(1)
    cases = [
        ([[3, 1, 4]], 5),
        ([[7]], 3),
        ([[1, 2, 3, 4, 5, 6]], 4),  # longer than L: keep the last 4
        ([[2, 2, 2], [9, 8]], 3),
    ]
    sessions = [list(rng.integers(1, 50, size=rng.integers(1, 15))) for _ in range(20)]
    cases.append((sessions, 10))
    for sessions, L in cases:
        out = pad_sessions(sessions, L)
        if out is None:
            raise AssertionError("pad_sessions returned None: did you forget a `return`?")
        item_seq, item_seq_len = out
        want_seq, want_len = _pad_reference(sessions, L)
        where = f"pad_sessions({sessions if len(sessions) < 3 else '...'}, L={L})"
        _same(f"{where}: item_seq_len", item_seq_len, want_len)
        if not np.array_equal(np.asarray(item_seq), want_seq):
            raise AssertionError(
                f"{where}: item_seq is\n{np.asarray(item_seq)}\nexpected\n{want_seq}\n"
                "(keep the L most recent items, in click order, then 0s)"
            )


# --------------------------------------------------------------------------
# step 2: embedding
# --------------------------------------------------------------------------
def check_embedding_backward(backward, forward=layers.embedding_forward):
    """Check ``embedding_backward(demb, cache) -> (dE,)``.

    ``cache`` is what ``forward(E, item_seq)`` returned; the library's is
    ``(item_seq, E.shape)``. ``dE`` must scatter-add every looked-up row's
    gradient into ``E``, accumulate repeated items, and leave row 0 (padding)
    exactly zero.
    """
    rng = np.random.default_rng(2)
    B, L, d, n = 5, 4, 3, 6
    item_seq, _, _ = random_session_batch(rng, B, L, n)
    E = rng.standard_normal((n + 1, d))
    _same("forward(E, item_seq)[0]", forward(E, item_seq)[0], E[item_seq])
    real = (item_seq != 0)[:, :, None]  # B,L,1
    counts = np.bincount(item_seq.ravel(), minlength=n + 1)

    def forward_as_used(E):
        # the model masks every padded position after the lookup, so check the layer that
        # way: the padded outputs count for nothing, and row 0's true gradient is 0
        emb, cache = forward(E, item_seq)
        return emb * real, cache

    def known_mistakes(dout, grads):
        dE = np.asarray(grads[0])
        if np.any(dE[0] != 0):
            raise AssertionError(
                "row 0 of dE is not zero: 0 is the padding id, not an item, and must "
                "receive no gradient (set dE[0] = 0)"
            )
        buffered = np.zeros_like(E)
        buffered[item_seq.ravel()] += dout.reshape(-1, d)
        if np.any(counts[1:] > 1) and np.allclose(dE[1:], buffered[1:]):
            raise AssertionError(
                "item(s) that occur more than once must get the SUM of their rows' "
                "gradients: `dE[idx] += g` keeps only one of them; use np.add.at"
            )

    _gradcheck(
        "embedding_backward",
        forward_as_used,
        backward,
        [E],
        {0: 0},
        rng,
        ["E"],
        known_mistakes=known_mistakes,
    )


# --------------------------------------------------------------------------
# step 3: sigmoid
# --------------------------------------------------------------------------
def check_sigmoid_backward(backward, forward=layers.sigmoid_forward):
    """Check ``sigmoid_backward(ds, cache) -> (dx,)``; the library's cache is ``s``."""
    rng = np.random.default_rng(3)
    x = 3 * rng.standard_normal((4, 5, 3))
    s = 1 / (1 + np.exp(-x))
    _same("forward(x)[0]", forward(x)[0], s)

    def known_mistakes(ds, grads):
        if np.allclose(np.asarray(grads[0]), ds * s):
            raise AssertionError(
                "dx = ds * s misses a factor: the sigmoid's derivative is s * (1 - s)"
            )

    _gradcheck(
        "sigmoid_backward",
        forward,
        backward,
        [x],
        {0: 0},
        rng,
        ["x"],
        known_mistakes=known_mistakes,
    )


# --------------------------------------------------------------------------
# step 4: masked average (eq. 4)
# --------------------------------------------------------------------------
def check_masked_average_backward(backward, forward=layers.masked_average_forward):
    """Check ``masked_average_backward(dalpha, cache) -> (dC,)``.

    ``forward(C, item_seq_len, divide_by)`` is eq. (4), for ``divide_by`` in
    ``"t"`` (the paper) and ``"t-1"`` (the released code). ``dC`` must be
    zero on the diagonal and in every padded row and column.
    """
    rng = np.random.default_rng(4)
    B, L = 6, 4
    _, item_seq_len, _ = random_session_batch(rng, B, L, 9)
    for divide_by in ("t", "t-1"):
        C = rng.standard_normal((B, L, L))
        want, _ = layers.masked_average_forward(C, item_seq_len, divide_by)
        _same(
            f"forward(C, item_seq_len, {divide_by!r})[0]",
            forward(C, item_seq_len, divide_by)[0],
            want,
        )
        fwd = lambda C, divide_by=divide_by: forward(C, item_seq_len, divide_by)

        def masks_hold(dalpha, grads):
            dC = np.asarray(grads[0])
            for b, t in enumerate(item_seq_len):
                if np.any(dC[b, t:, :] != 0) or np.any(dC[b, :, t:] != 0):
                    raise AssertionError(
                        f"dC of session {b} (t = {t}) is not zero at padding (rows and "
                        f"columns {t}..{L - 1}): multiply by the mask M, which is False there"
                    )
            if np.any(dC[:, np.arange(L), np.arange(L)] != 0):
                raise AssertionError(
                    "dC is not zero on the diagonal, which eq. (4) masks: M[b, i, i] is False"
                )

        _gradcheck(
            f"masked_average_backward (divide_by={divide_by!r})",
            fwd,
            backward,
            [C],
            {0: 0},
            rng,
            ["C"],
            known_mistakes=masks_hold,
        )


# --------------------------------------------------------------------------
# step 5: masked softmax (eq. 5)
# --------------------------------------------------------------------------
def check_masked_softmax_backward(backward, forward=layers.masked_softmax_forward):
    """Check ``masked_softmax_backward(dbeta, cache) -> (dalpha,)``; the library's cache: ``beta``.

    ``dalpha`` must be zero at padded positions.
    """
    rng = np.random.default_rng(5)
    B, L = 6, 5
    _, item_seq_len, _ = random_session_batch(rng, B, L, 9)
    alpha = 2 * rng.standard_normal((B, L))
    want, _ = layers.masked_softmax_forward(alpha, item_seq_len)
    _same("forward(alpha, item_seq_len)[0]", forward(alpha, item_seq_len)[0], want)
    pad = ~layers.valid_mask(item_seq_len, L)

    def known_mistakes(dbeta, grads):
        dalpha = np.asarray(grads[0])
        if np.any(dalpha[pad] != 0):
            raise AssertionError(
                "dalpha is not zero at padded positions: beta is 0 there, and so is "
                "dalpha_j = beta_j * (dbeta_j - sum_i beta_i dbeta_i)"
            )
        if np.allclose(dalpha, want * dbeta):
            raise AssertionError(
                "dalpha = beta * dbeta misses the term - beta_j * sum_i beta_i dbeta_i: "
                "every beta_i depends on every alpha_j through the softmax's denominator"
            )

    _gradcheck(
        "masked_softmax_backward",
        lambda a: forward(a, item_seq_len),
        backward,
        [alpha],
        {0: 0},
        rng,
        ["alpha"],
        known_mistakes=known_mistakes,
    )


# --------------------------------------------------------------------------
# step 6: scores (eq. 8)
# --------------------------------------------------------------------------
def check_scores_backward(backward, forward=layers.scores_forward):
    """Check ``scores_backward(dscores, cache) -> (dz_h, dE)``.

    Column ``j`` of the scores is item ``j + 1``; row 0 of ``E`` is padding,
    is never scored and must get a zero gradient.
    """
    rng = np.random.default_rng(6)
    B, d, n = 4, 3, 7
    z_h = rng.standard_normal((B, d))
    E = rng.standard_normal((n + 1, d))
    _same("forward(z_h, E)[0]", forward(z_h, E)[0], z_h @ E[1:].T)

    def known_mistakes(dscores, grads):
        if np.any(np.asarray(grads[1])[0] != 0):
            raise AssertionError(
                "dE[0] is not zero: row 0 is padding and is never scored. Column j of the "
                "scores is item j + 1, so dE[1:] = dscores^T z_h (an off-by-one puts it in dE[:-1])"
            )

    _gradcheck(
        "scores_backward",
        forward,
        backward,
        [z_h, E],
        {0: 0, 1: 1},
        rng,
        ["z_h", "E"],
        known_mistakes=known_mistakes,
    )


# --------------------------------------------------------------------------
# step 7: softmax cross-entropy (eq. 9-10)
# --------------------------------------------------------------------------
_OVERFLOW = (
    "exp overflows (exp(x) is inf in float64 beyond x = 709). Subtract each row's "
    "maximum before the exp (log-sum-exp)."
)
_LOG_ZERO = (
    "log(0): a probability underflowed to 0 (exp of a very negative number) and its log "
    "is -inf. Do not take the log of the softmax: compute loss = lse - score_target from "
    "the scores, with lse = m + log(sum(exp(scores - m)))."
)


def _loss_or_cause(forward, scores, target_idx, scale):
    """``forward``'s loss as a float, or an AssertionError naming what went wrong."""
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            out = forward(scores, target_idx)
    except FloatingPointError as e:
        where = f" (scores of size ~{scale:g}: {e})"
        cause = _LOG_ZERO if "divide" in str(e) else _OVERFLOW
        raise AssertionError(cause + where) from None
    if out is None:
        raise AssertionError("forward returned None: did you forget a `return`?")
    loss = float(out[0])
    if not np.isfinite(loss):  # a NaN or inf made without a floating-point warning
        cause = _LOG_ZERO if loss == np.inf else _OVERFLOW
        raise AssertionError(f"loss is {loss} for scores of size ~{scale:g}. {cause}")
    return loss


def check_softmax_cross_entropy(forward, backward):
    """Check ``forward(scores, target_idx) -> (loss, cache)`` and ``backward(dloss, cache)``.

    ``loss`` is the batch mean of ``-log softmax(scores[b])[target_idx[b]]``;
    it must stay finite for scores in the thousands (use log-sum-exp).
    """
    rng = np.random.default_rng(7)
    B, n = 5, 8
    target_idx = rng.integers(0, n, size=B)
    for scale in (1.0, 1000.0):
        scores = scale * rng.standard_normal((B, n))
        want, _ = layers.softmax_cross_entropy_forward(scores, target_idx)
        loss = _loss_or_cause(forward, scores, target_idx, scale)
        if abs(loss - want) > 1e-9 * max(1.0, abs(want)):
            raise AssertionError(f"loss is {loss!r}, expected {want!r} (scores of size ~{scale:g})")
    scores = rng.standard_normal((B, n))
    fwd = lambda s: (np.array(forward(s, target_idx)[0]), forward(s, target_idx)[1])
    _gradcheck(
        "softmax_cross_entropy backward",
        fwd,
        lambda dl, c: backward(float(dl), c),
        [scores],
        {0: 0},
        rng,
        ["scores"],
    )


# --------------------------------------------------------------------------
# step 8: the importance module's backward pass
# --------------------------------------------------------------------------
def check_iem_backward(backward, forward=iem_forward):
    """Check ``iem_backward(dz_l, cache) -> (demb, {"Wq": dWq, "Wk": dWk})`` in both variants.

    ``cache`` is what ``iem_forward(emb, item_seq_len, params, variant)``
    returned; the library's keeps every layer's cache in ``cache["layers"]``, an
    :class:`minisriem.importance.IEMCaches` (fields ``q_lin, k_lin, q_sig, k_sig,
    aff, avg, sm, pool``).
    """
    rng = np.random.default_rng(8)
    B, L, d, l = 5, 4, 6, 3
    item_seq, item_seq_len, _ = random_session_batch(rng, B, L, 9)
    for variant in ("paper", "official"):
        k = l if variant == "paper" else d
        emb = rng.uniform(-1, 1, (B, L, d))
        emb[item_seq == 0] = 0
        # weights large enough that the sigmoids are not flat (see step 8)
        Wq, Wk = rng.uniform(-1, 1, (d, k)), rng.uniform(-1, 1, (d, k))

        def fwd(emb, Wq, Wk, variant=variant):
            return forward(emb, item_seq_len, {"Wq": Wq, "Wk": Wk}, variant)

        def bwd(dz_l, cache):
            res = backward(dz_l, cache)
            if res is None:
                raise AssertionError("iem_backward returned None: did you forget a `return`?")
            demb, dparams = res
            return demb, dparams["Wq"], dparams["Wk"]

        def known_mistakes(dz_l, grads, fwd=fwd, emb=emb, Wq=Wq, Wk=Wk, variant=variant):
            if forward is iem_forward:  # the library's cache: its pieces name the mistake
                _, cache = fwd(emb, Wq, Wk)  # the cache bwd was given
                demb, dWq, dWk = (np.asarray(g) for g in grads)
                _iem_known_mistakes(variant, dz_l, cache, demb, {"Wq": dWq, "Wk": dWk})

        _gradcheck(
            f"variant {variant!r}",
            fwd,
            bwd,
            [emb, Wq, Wk],
            {0: 0, 1: 1, 2: 2},
            rng,
            ["emb", "Wq", "Wk"],
            known_mistakes=known_mistakes,
            hint="Walk the layers backwards one at a time: pool, softmax, masked average, "
            "affinity, (sigmoids), linear.",
        )


def _iem_pieces(dz_l, cache):
    """The library's backward pass of eq. (1)-(6), kept in pieces."""
    c = cache["layers"]
    dbeta, demb_pool = layers.weighted_pool_backward(dz_l, c.pool)
    (dalpha,) = layers.masked_softmax_backward(dbeta, c.sm)
    (dC,) = layers.masked_average_backward(dalpha, c.avg)
    dQ, dK = layers.affinity_backward(dC, c.aff)
    dQ_raw, dK_raw = dQ, dK
    if c.q_sig is not None:
        (dQ,), (dK,) = layers.sigmoid_backward(dQ, c.q_sig), layers.sigmoid_backward(dK, c.k_sig)
    demb_q, dWq, _ = layers.linear_backward(dQ, c.q_lin)
    demb_k, dWk, _ = layers.linear_backward(dK, c.k_lin)
    _, dWq_raw, _ = layers.linear_backward(dQ_raw, c.q_lin)
    _, dWk_raw, _ = layers.linear_backward(dK_raw, c.k_lin)
    return {
        "pool": demb_pool,
        "query": demb_q,
        "key": demb_k,
        "dWq": dWq,
        "dWk": dWk,
        "dWq_no_sigmoid": dWq_raw,
        "dWk_no_sigmoid": dWk_raw,
    }


def _iem_known_mistakes(variant, dz_l, cache, demb, dparams):
    """Name the usual mistakes of an IEM backward pass before the gradient check."""
    p = _iem_pieces(dz_l, cache)
    close = lambda a, b: np.allclose(a, b, rtol=1e-7, atol=1e-12)
    branches = ("pool", "query", "key")
    full = p["pool"] + p["query"] + p["key"]
    if not close(demb, full):
        for k in (1, 2):
            for used in combinations(branches, k):
                if close(demb, sum(p[b] for b in used)):
                    missing = [b for b in branches if b not in used]
                    raise AssertionError(
                        f"demb holds only the {' and '.join(used)} "
                        f"branch(es); add the {' and '.join(missing)} branch(es). emb feeds "
                        "three computations (the query, eq. 1; the key, eq. 2; the pooling, "
                        "eq. 6), so its gradient is the sum of three pieces."
                    )
    dWq, dWk = np.asarray(dparams["Wq"]), np.asarray(dparams["Wk"])
    if close(dWq, p["dWk"]) and close(dWk, p["dWq"]) and not close(dWq, p["dWq"]):
        raise AssertionError(
            "dWq and dWk are swapped. In C = Q K^T, the query is "
            "the row (item i), the key the column (item j): dQ = dS K, dK = dS^T Q."
        )
    if variant == "paper" and close(dWq, p["dWq_no_sigmoid"]):
        raise AssertionError(
            "dWq skips the sigmoid of eq. (1). Q = sigmoid(E_s Wq): pass "
            "dQ through sigmoid_backward (cache q_sig) before linear_backward."
        )


def check_model_loss_and_grads(loss_and_grads):
    """Check ``loss_and_grads(model, item_seq, item_seq_len, targets) -> (loss, grads)``.

    The whole model, eq. (1)-(10), on a tiny float64 ``SRIEM`` of each
    variant (weights scaled x3, as step 8 explains): the loss must match the
    library's, and every parameter's gradient the central differences.
    """
    from minisriem.model import SRIEM

    rng = np.random.default_rng(88)
    n, d, l, B, L = 9, 5, 3, 6, 4
    item_seq, item_seq_len, targets = random_session_batch(rng, B, L, n)
    for variant in ("paper", "official"):
        model = SRIEM(n, d=d, l=l, variant=variant, seed=3, dtype=np.float64)
        for w in model.params.values():
            w *= 3.0
        want_loss, _ = model.loss_and_grads(item_seq, item_seq_len, targets)
        out = loss_and_grads(model, item_seq, item_seq_len, targets)
        if out is None:
            raise AssertionError("loss_and_grads returned None: return (loss, grads)")
        loss, grads = out
        if abs(float(loss) - want_loss) > 1e-9 * max(1.0, abs(want_loss)):
            raise AssertionError(
                f"variant {variant!r}: loss {float(loss)!r}, expected {want_loss!r}: check the "
                "forward pass (column j of the scores is item j + 1; targets - 1)"
            )
        missing = sorted(set(model.params) - set(grads))
        if missing:
            raise AssertionError(f"variant {variant!r}: no gradient for {missing}")
        for name, w in model.params.items():
            checked_array(f"variant {variant!r}: the gradient of {name}", grads[name], w.shape)
        if np.allclose(grads["E"], _scoring_part(model, item_seq, item_seq_len, targets)):
            raise AssertionError(
                f"variant {variant!r}: the gradient of E is the scoring part alone: add the "
                "lookup part, embedding_backward(demb, cache), where demb sums the last item's "
                "and the importance module's pieces."
            )
        try:
            check_model(
                model, item_seq, item_seq_len, targets, TOL, loss_and_grads=lambda *_, out=out: out
            )
        except AssertionError as e:
            hint = ""
            if "gradient of E " in str(e):
                hint = (
                    " E is used twice (looked up, and scored against): its gradient is the "
                    "scoring part plus the scatter-added lookup part, and demb itself sums "
                    "the last-item and importance pieces."
                )
            raise AssertionError(f"variant {variant!r}: {e}.{hint}") from None


def _scoring_part(model, item_seq, item_seq_len, targets):
    """The part of dE that comes from the scores (eq. 8) alone."""
    z_h, _ = model.session_forward(item_seq, item_seq_len)
    scores, sc_cache = layers.scores_forward(z_h, model.params["E"])
    _, ce_cache = layers.softmax_cross_entropy_forward(scores, targets - 1)
    (dscores,) = layers.softmax_cross_entropy_backward(1.0, ce_cache)
    return layers.scores_backward(dscores, sc_cache)[1]


# --------------------------------------------------------------------------
# step 9: Adam with L2
# --------------------------------------------------------------------------
def check_adam(update):
    """Check ``update(w, dw, config) -> (next_w, config)``: one Adam step with coupled L2.

    ``config`` is a dict with ``lr, l2, beta1, beta2, eps`` and the state
    ``m, v`` (arrays like ``w``) and ``t`` (steps taken so far, 0 at first).
    The result must match :class:`minisriem.optim.Adam` over several steps.
    """
    rng = np.random.default_rng(9)
    w = rng.standard_normal((4, 3))
    hp = {"lr": 0.01, "l2": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    config = dict(hp, m=np.zeros_like(w), v=np.zeros_like(w), t=0)
    ref = {"w": w.copy()}
    opt = Adam(ref, lr=hp["lr"], l2=hp["l2"], beta1=hp["beta1"], beta2=hp["beta2"], eps=hp["eps"])
    for step in range(1, 6):
        dw = rng.standard_normal(w.shape)
        out = update(w.copy(), dw.copy(), config)
        if out is None:
            raise AssertionError("update returned None: return (next_w, config)")
        w, config = out
        opt.step(ref, {"w": dw})
        try:
            _same(f"w after step {step}", w, ref["w"], tol=1e-9)
        except AssertionError as e:
            raise AssertionError(
                f"{e}. Check, in order: L2 is added to the gradient (g = dw + l2 * w), not "
                "subtracted from w afterwards; m and v are updated and stored in config; "
                "t is incremented before the bias corrections 1 - beta**t."
            ) from None


# --------------------------------------------------------------------------
# step 10: Recall@K and MRR@K
# --------------------------------------------------------------------------
def _recall_mrr_reference(scores, target_idx, k):
    target = scores[np.arange(len(scores)), target_idx][:, None]
    rank = 1 + (scores > target).sum(axis=1)
    hit = rank <= k
    return float(hit.mean()), float(np.where(hit, 1.0 / rank, 0.0).mean())


def check_recall_mrr(recall_mrr):
    """Check ``recall_mrr(scores, target_idx, k) -> (recall, mrr)``, both batch means.

    The rank of the target is ``1 + #items scored strictly higher``: an item
    tied with the target does not push it down.
    """
    cases = [
        (np.array([[0.1, 0.9, 0.3, 0.5]]), np.array([2]), 2, (0.0, 0.0)),  # rank 3 > k
        (np.array([[0.1, 0.9, 0.3, 0.5]]), np.array([2]), 3, (1.0, 1 / 3)),
        (np.array([[0.5, 0.5, 0.5, 0.5]]), np.array([3]), 1, (1.0, 1.0)),  # all tied: rank 1
        (np.array([[0.2, 0.9, 0.7, 0.7]]), np.array([2]), 1, (0.0, 0.0)),  # rank 2: one above
        (np.array([[0.2, 0.9, 0.7, 0.7]]), np.array([2]), 2, (1.0, 0.5)),  # the tie is not
    ]
    rng = np.random.default_rng(10)
    scores = rng.integers(0, 5, size=(50, 12)).astype(float)  # many ties
    target_idx = rng.integers(0, 12, size=50)
    for k in (1, 3, 12):
        cases.append((scores, target_idx, k, _recall_mrr_reference(scores, target_idx, k)))
    for scores, target_idx, k, (want_r, want_m) in cases:
        out = recall_mrr(scores, target_idx, k)
        if out is None:
            raise AssertionError("recall_mrr returned None: return (recall, mrr)")
        r, m = (float(x) for x in out)
        shown = scores if len(scores) == 1 else f"(a {scores.shape} array with ties)"
        if abs(r - want_r) > 1e-12 or abs(m - want_m) > 1e-12:
            raise AssertionError(
                f"scores {shown}, target_idx {target_idx if len(target_idx) == 1 else '...'}, "
                f"k={k}: you give recall {r:.4f}, mrr {m:.4f}; expected {want_r:.4f}, "
                f"{want_m:.4f}. Rank = 1 + number of items scored STRICTLY higher; "
                "MRR counts 0 beyond k."
            )


# --------------------------------------------------------------------------
# step 11: scatter-add
# --------------------------------------------------------------------------
def check_embedding_scatter_add(scatter_add):
    """Check ``scatter_add(dE, item_seq, demb)``, which adds into ``dE`` in place.

    ``dE[item_seq[b, i]] += demb[b, i]`` for every real position (item id
    not 0): a repeated item accumulates, and the padding row 0 gets nothing.
    The function returns nothing; ``dE`` (n+1, d) is changed in place.
    """
    rng = np.random.default_rng(11)
    for B, L, d, n in ((3, 4, 2, 5), (40, 10, 6, 30)):
        item_seq, _, _ = random_session_batch(rng, B, L, n)  # repeats and padding
        demb = rng.standard_normal((B, L, d))
        start = rng.standard_normal((n + 1, d))  # adds to what is there
        want = start.copy()
        real = item_seq != 0
        np.add.at(want, item_seq[real], demb[real])
        got = start.copy()
        out = scatter_add(got, item_seq, demb)
        if out is not None and out is not got and not np.shares_memory(out, got):
            raise AssertionError("scatter_add must change dE in place (and may return None)")
        try:
            _same(f"dE after scatter_add (B={B}, L={L}, d={d})", got, want, tol=1e-12)
        except AssertionError as e:
            hint = (
                " An item that occurs several times must get the sum of all its rows "
                "(`dE[item_seq] += demb` keeps only one of them); padding (id 0) gets "
                "nothing; add to dE, do not overwrite it."
            )
            raise AssertionError(f"{e}.{hint}") from None


# --------------------------------------------------------------------------
# step 12: does the noise click get the lowest weight?
# --------------------------------------------------------------------------
def check_noise_lowest_share(noise_lowest_share):
    """Check ``noise_lowest_share(beta, item_seq_len, noise) -> float``.

    Among sessions with at least one noise click and one clean click among
    their real positions, the share in which the lowest weight of a noise
    click is strictly below the lowest weight of a clean click. Padded
    positions (``beta == 0`` there) are not clicks.
    """
    beta = np.array(
        [
            [0.2, 0.5, 0.3, 0.0],  # noise at 0: lowest -> hit
            [0.4, 0.1, 0.5, 0.0],  # noise at 2: not lowest
            [0.5, 0.5, 0.0, 0.0],  # noise at 1, tied with the clean click: not a hit
            [1.0, 0.0, 0.0, 0.0],  # length 1: not counted
            [0.3, 0.3, 0.4, 0.0],  # no noise: not counted
            [0.25, 0.25, 0.2, 0.3],  # noise at 2 and 3; the lowest (0.2) is noise -> hit
        ]
    )
    item_seq_len = np.array([3, 3, 2, 1, 3, 4])
    noise = np.zeros((6, 4), dtype=bool)
    noise[0, 0] = noise[1, 2] = noise[2, 1] = noise[3, 0] = noise[5, 2] = noise[5, 3] = True
    got = noise_lowest_share(beta, item_seq_len, noise)
    if got is None:
        raise AssertionError("noise_lowest_share returned None: did you forget a `return`?")
    if abs(float(got) - 2 / 4) > 1e-12:
        raise AssertionError(
            f"on the worked example in check_noise_lowest_share you give {float(got)}, "
            "expected 0.5 (2 hits among 4 counted sessions). Count only sessions with a noise "
            "and a clean click; ignore padded positions, whose beta is 0; a tie is not a hit."
        )


# --------------------------------------------------------------------------
# step 13: how far apart can two betas be?
# --------------------------------------------------------------------------
def check_beta_ratio_bound(beta_ratio_bound):
    """Check ``beta_ratio_bound(d, t, variant) -> float``.

    The least upper bound of ``beta_i / beta_j`` over all weights and all
    sessions of length ``t``, for ``variant`` "paper" or "official".
    """
    for d, t in ((200, 10), (200, 2), (16, 5), (100, 1)):
        for variant in ("paper", "official"):
            if t == 1:
                want = 1.0
            elif variant == "paper":
                want = float(np.exp((t - 1) / t * 0.5 / np.sqrt(d)))
            else:
                want = float(np.e)
            got = beta_ratio_bound(d, t, variant)
            if got is None:
                raise AssertionError("beta_ratio_bound returned None: did you forget a `return`?")
            if abs(float(got) - want) > 1e-9 * want:
                raise AssertionError(
                    f"beta_ratio_bound(d={d}, t={t}, {variant!r}) = {float(got)!r}, expected "
                    f"{want!r}. Find the range of C_ij, then of alpha_i (how many terms, "
                    "divided by what?), then beta_i / beta_j = exp(alpha_i - alpha_j)."
                )


# --------------------------------------------------------------------------
# step 14: normalised scoring (NISER)
# --------------------------------------------------------------------------
def check_l2_normalize_backward(backward, forward=layers.l2_normalize_forward):
    """Check ``l2_normalize_backward(dy, cache) -> (dx,)`` of ``y = x / |x|`` per row."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((3, 4, 5))
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True) + 1e-12)
    _same("forward(x)[0]", forward(x)[0], x / norm)

    def known_mistakes(dout, grads):
        y, dx = x / norm, grads[0]
        if np.abs((dx * y).sum(axis=-1)).max() > 1e-8:
            raise AssertionError(
                "dx is not orthogonal to y in every row: y only holds x's direction, so "
                "moving x along itself changes nothing. Remove the part of dy along y: "
                "dx = (dy - y * sum(dy * y)) / |x|"
            )

    _gradcheck(
        "l2_normalize_backward",
        forward,
        backward,
        [x],
        {0: 0},
        rng,
        ["x"],
        known_mistakes=known_mistakes,
    )
