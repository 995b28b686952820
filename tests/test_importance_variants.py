"""The importance modules of Fig. 3 (SR-STAMP, SR-SAT): layers, modules and the model.

Every check is float64 on tiny shapes, over a batch with padding, a length-1
session, a full-length session and a repeated item
(:func:`minisriem.gradcheck.random_session_batch`), and measures
``max|numeric - analytic| / max(max|numeric|, max|analytic|)``.
"""

import numpy as np
import pytest

from minisriem import importance, layers
from minisriem.gradcheck import (
    check_layer,
    check_model,
    eval_numerical_gradient_array,
    max_relative_error,
    random_session_batch,
)
from minisriem.importance import MODULES, PARAM_SHAPES
from minisriem.model import BACKENDS, SRIEM

TOL = 1e-6
B, L, d, n = 6, 5, 4, 12
VARIANTS = ["stamp", "sat"]


@pytest.fixture
def rng():
    return np.random.default_rng(2020)


@pytest.fixture
def batch(rng):
    return random_session_batch(rng, B, L, n)


def module_params(name, rng, scale=1.0):
    shapes = PARAM_SHAPES[name](d, 3, "paper")
    return {k: scale * rng.standard_normal(s) for k, s in shapes.items()}


# --------------------------------------------------------------------------
# slow references: one session at a time, straight from the docstrings
# --------------------------------------------------------------------------
def stamp_reference(emb, item_seq_len, p):
    z_l, beta = np.zeros((len(emb), d)), np.zeros((len(emb), L))
    for b, t in enumerate(item_seq_len):
        e = emb[b, :t]  # t,d
        m_s, e_t = e.mean(axis=0), e[-1]
        query = e_t @ p["stamp_W2"] + m_s @ p["stamp_W3"] + p["stamp_ba"]
        for i in range(t):
            h = 1 / (1 + np.exp(-(e[i] @ p["stamp_W1"] + query)))
            beta[b, i] = h @ p["stamp_w0"]
            z_l[b] += beta[b, i] * e[i]
    return z_l, beta


def sat_reference(emb, item_seq_len, p):
    z_l, beta = np.zeros((len(emb), d)), np.zeros((len(emb), L))
    for b, t in enumerate(item_seq_len):
        e = emb[b, :t]
        Q, K, V = e @ p["sat_Wq"], e @ p["sat_Wk"], e @ p["sat_Wv"]
        S = Q @ K.T / np.sqrt(d)
        A = np.exp(S - S.max(axis=1, keepdims=True))
        A /= A.sum(axis=1, keepdims=True)
        z_l[b] = (A @ V).mean(axis=0)
        beta[b, :t] = A.mean(axis=0)
    return z_l, beta


def iem_reference(emb, item_seq_len, p, variant):
    """SR-IEM's module, eq. (1)-(6), one session at a time (and the released code's form)."""
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    z_l, beta = np.zeros((len(emb), d)), np.zeros((len(emb), L))
    for b, t in enumerate(item_seq_len):
        e = emb[b, :t]  # t,d
        if variant == "paper":
            Q, K = sigmoid(e @ p["Wq"]), sigmoid(e @ p["Wk"])  # (1), (2)
            C = sigmoid(Q @ K.T) / np.sqrt(d)  # (3)
            divide = t
        else:
            C = sigmoid((e @ p["Wq"]) @ (e @ p["Wk"]).T / np.sqrt(d))
            divide = max(t - 1, 1)
        alpha = np.array([sum(C[i, j] for j in range(t) if j != i) / divide for i in range(t)])
        w = np.exp(alpha - alpha.max())  # (5)
        beta[b, :t] = w / w.sum()
        z_l[b] = beta[b, :t] @ e  # (6)
    return z_l, beta


REFERENCES = {
    "stamp": lambda emb, lens, p, variant: stamp_reference(emb, lens, p),
    "sat": lambda emb, lens, p, variant: sat_reference(emb, lens, p),
    "iem": iem_reference,
}


# --------------------------------------------------------------------------
# the attention layers (in layers.py) the alternatives are built from
# --------------------------------------------------------------------------
def test_scaled_dot(rng):
    Q, K = rng.standard_normal((B, L, d)), rng.standard_normal((B, L, d))
    S, _ = layers.scaled_dot_forward(Q, K, 0.5)
    np.testing.assert_allclose(S[1], 0.5 * Q[1] @ K[1].T)
    fwd, bwd = layers.scaled_dot_forward, layers.scaled_dot_backward
    check_layer(fwd, bwd, [Q, K, 0.5], {0: 0, 1: 1}, rng, tol=TOL)


def test_attention_apply(rng):
    A, V = rng.standard_normal((B, L, L)), rng.standard_normal((B, L, d))
    fwd, bwd = layers.attention_apply_forward, layers.attention_apply_backward
    check_layer(fwd, bwd, [A, V], {0: 0, 1: 1}, rng, tol=TOL)


def test_mean_weights(batch):
    _, item_seq_len, _ = batch
    w = layers.mean_weights(item_seq_len, L, np.float32)
    assert w.dtype == np.float32
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(w[~layers.valid_mask(item_seq_len, L)] == 0)


# --------------------------------------------------------------------------
# the modules on their own
# --------------------------------------------------------------------------
def test_registered_with_disjoint_keys():
    for name in VARIANTS:
        assert name in MODULES and name in PARAM_SHAPES
        for variant in ("paper", "official"):
            keys = set(PARAM_SHAPES[name](8, 3, variant))
            assert not keys & {"E", "Wq", "Wk", "W0", "b0"}, keys


@pytest.mark.parametrize(
    "name, variant", [("stamp", "paper"), ("sat", "paper"), ("iem", "paper"), ("iem", "official")]
)
def test_module_matches_slow_reference(name, variant, rng, batch):
    item_seq, item_seq_len, _ = batch
    emb = rng.standard_normal((B, L, d))
    shapes = PARAM_SHAPES[name](d, 3, variant)
    p = {k: 2 * rng.standard_normal(s) for k, s in shapes.items()}
    z_l, cache = MODULES[name][0](emb, item_seq_len, p, variant)
    want_z, want_beta = REFERENCES[name](emb, item_seq_len, p, variant)
    np.testing.assert_allclose(z_l, want_z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cache["beta"], want_beta, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", VARIANTS)
def test_module_gradient_check(name, rng, batch):
    _, item_seq_len, _ = batch
    forward, backward = MODULES[name]
    emb = rng.standard_normal((B, L, d))
    p = module_params(name, rng)
    z_l, cache = forward(emb, item_seq_len, p, "paper")
    dz_l = rng.standard_normal(z_l.shape)
    demb, dparams = backward(dz_l, cache)
    assert set(dparams) == set(p)
    f = lambda: forward(emb, item_seq_len, p, "paper")[0]
    for x, dx, what in [(emb, demb, "emb")] + [(p[k], dparams[k], k) for k in p]:
        assert dx.shape == x.shape
        num = eval_numerical_gradient_array(f, x, dz_l)
        err = max_relative_error(num, dx)
        assert err < TOL, f"{name} {what}: relative error {err:.2e}"
    # padded positions get no gradient
    assert np.all(demb[~layers.valid_mask(item_seq_len, L)] == 0)


@pytest.mark.parametrize("name", VARIANTS)
def test_module_padding_is_inert(name, rng, batch):
    _, item_seq_len, _ = batch
    forward, backward = MODULES[name]
    emb = rng.standard_normal((B, L, d))
    p = module_params(name, rng)
    z_l, cache = forward(emb, item_seq_len, p, "paper")
    dz_l = rng.standard_normal(z_l.shape)
    demb, dparams = backward(dz_l, cache)
    noisy = emb.copy()
    pad = ~layers.valid_mask(item_seq_len, L)
    noisy[pad] = 100 * rng.standard_normal((pad.sum(), d))
    z_l2, cache2 = forward(noisy, item_seq_len, p, "paper")
    demb2, dparams2 = backward(dz_l, cache2)
    np.testing.assert_allclose(z_l2, z_l, rtol=1e-13)
    np.testing.assert_array_equal(cache2["beta"][pad], 0)
    np.testing.assert_allclose(demb2, demb, rtol=1e-12, atol=1e-14)
    for k in dparams:
        np.testing.assert_allclose(dparams2[k], dparams[k], rtol=1e-12, atol=1e-14)


def test_length_one_sessions(rng):
    emb = rng.standard_normal((2, L, d))
    item_seq_len = np.array([1, 1])
    p = module_params("stamp", rng)
    z_l, cache = importance.stamp_forward(emb, item_seq_len, p)
    # m_s = e_t = e_1, so z_l = a_1 e_1 with a_1 = w0 . sigmoid(e_1 (W1 + W2 + W3) + b_a)
    W = p["stamp_W1"] + p["stamp_W2"] + p["stamp_W3"]
    a = 1 / (1 + np.exp(-(emb[:, 0] @ W + p["stamp_ba"]))) @ p["stamp_w0"]
    np.testing.assert_allclose(z_l, a[:, None] * emb[:, 0])
    p = module_params("sat", rng)
    z_l, cache = importance.sat_forward(emb, item_seq_len, p)
    np.testing.assert_array_equal(cache["beta"][:, 0], 1.0)
    np.testing.assert_allclose(z_l, emb[:, 0] @ p["sat_Wv"])  # attention to itself only


def test_sat_beta_is_a_distribution(rng, batch):
    _, item_seq_len, _ = batch
    _, cache = importance.sat_forward(
        rng.standard_normal((B, L, d)), item_seq_len, module_params("sat", rng, 3.0)
    )
    np.testing.assert_allclose(cache["beta"].sum(axis=1), 1.0)
    assert np.all(cache["beta"] >= 0)


# --------------------------------------------------------------------------
# the modules inside the model
# --------------------------------------------------------------------------
def copy_grads(grads):
    """Plain arrays of the gradients (``grads["E"]`` is an ItemGradient on the numba backend).

    A gradient that is held never changes (see ``minisriem/model.py``); the copy only
    makes every entry an ordinary ndarray for the comparisons below.
    """
    return {key: np.array(g) for key, g in grads.items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("name", VARIANTS)
def test_model_gradient_check(name, variant, backend):
    rng = np.random.default_rng(7)
    model = SRIEM(15, d=6, l=5, variant=variant, dtype=np.float64, importance=name, backend=backend)
    for w in model.params.values():
        w *= 3.0  # away from the near-linear regime, so every gradient is sizeable
    item_seq, item_seq_len, targets = random_session_batch(rng, 7, 5, 15)
    check_model(model, item_seq, item_seq_len, targets, tol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", VARIANTS)
def test_model_padding_is_inert(name, backend):
    rng = np.random.default_rng(3)
    model = SRIEM(15, d=6, l=5, dtype=np.float64, importance=name, backend=backend)
    item_seq, item_seq_len, targets = random_session_batch(rng, 7, 5, 15)
    loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    grads = copy_grads(grads)
    noisy = item_seq.copy()
    noisy[item_seq == 0] = rng.integers(1, 16, (item_seq == 0).sum())
    model.params["E"][0] = 5 * rng.standard_normal(6)
    loss2, grads2 = model.loss_and_grads(noisy, item_seq_len, targets)
    assert loss2 == pytest.approx(loss, rel=1e-13)
    for key in grads:
        np.testing.assert_allclose(grads2[key], grads[key], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", VARIANTS)
def test_model_float32_and_learning(name):
    """float32 stays float32, and a few fixed sessions are learned."""
    from minisriem.optim import Adam

    rng = np.random.default_rng(0)
    item_seq, item_seq_len, targets = random_session_batch(rng, 40, 6, 30)
    model = SRIEM(30, d=16, l=8, seed=0, importance=name)
    assert model.item_weights(item_seq, item_seq_len).shape == (40, 6)
    opt = Adam(model.params, lr=0.05)
    first, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    assert all(g.dtype == np.float32 for g in grads.values())
    for _ in range(100):
        loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
        opt.step(model.params, grads)
    assert loss < 0.3 * first, (first, loss)
