"""Float64 gradient checks for every layer on its own, plus each layer's masks.

Each check uses the fake loss ``sum(out * dout)`` with a random ``dout``, so
one scalar checks the whole backward pass of a layer, and measures
``max|numeric - analytic| / max(max|numeric|, max|analytic|)`` per input.
"""

import numpy as np
import pytest

from minisriem import gradcheck, layers
from minisriem.gradcheck import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    max_relative_error,
    random_session_batch,
)

TOL = 1e-6
B, L, d, l, n = 5, 4, 6, 3, 9


def check_layer(forward, backward, args, wrt, rng):
    return gradcheck.check_layer(forward, backward, args, wrt, rng, tol=TOL)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def batch(rng):
    return random_session_batch(rng, B, L, n)


def test_embedding(rng, batch):
    item_seq, _, _ = batch
    E = rng.standard_normal((n + 1, d))
    out, cache = layers.embedding_forward(E, item_seq)
    dout = rng.standard_normal(out.shape)
    (dE,) = layers.embedding_backward(dout, cache)
    num = eval_numerical_gradient_array(lambda: layers.embedding_forward(E, item_seq)[0], E, dout)
    # rows 1..n are items and must match; row 0 is padding, which by design
    # receives no gradient (downstream layers mask it, so its true gradient
    # in the model is zero), however often 0 occurs
    assert max_relative_error(num[1:], dE[1:]) < TOL
    assert (item_seq == 0).any()
    assert np.all(dE[0] == 0)
    # repeated items accumulate: row 2 repeats one item
    out, cache = layers.embedding_forward(E, item_seq)
    dout = np.ones_like(out)
    (dE,) = layers.embedding_backward(dout, cache)
    counts = np.bincount(item_seq.ravel(), minlength=n + 1)
    counts[0] = 0
    np.testing.assert_allclose(dE[:, 0], counts)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, bias):
    x = rng.standard_normal((B, L, d))
    W = rng.standard_normal((d, l))
    b = rng.standard_normal(l) if bias else None
    wrt = {0: 0, 1: 1, 2: 2} if bias else {0: 0, 1: 1}
    grads = check_layer(layers.linear_forward, layers.linear_backward, [x, W, b], wrt, rng)
    assert (grads[2] is None) == (not bias)


def test_sigmoid(rng):
    x = 3 * rng.standard_normal((B, L, l))
    check_layer(layers.sigmoid_forward, layers.sigmoid_backward, [x], {0: 0}, rng)


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s, _ = layers.sigmoid_forward(x)
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-20)


@pytest.mark.parametrize("inner,outer", [(1.0, 1 / np.sqrt(d)), (1 / np.sqrt(d), 1.0)])
def test_affinity(rng, inner, outer):
    Q = rng.standard_normal((B, L, l))
    K = rng.standard_normal((B, L, l))
    fwd = lambda Q, K: layers.affinity_forward(Q, K, inner, outer)
    check_layer(fwd, layers.affinity_backward, [Q, K], {0: 0, 1: 1}, rng)
    C, _ = fwd(Q, K)
    assert np.all(C > 0) and np.all(C < outer)


@pytest.mark.parametrize("divide_by", ["t", "t-1"])
def test_masked_average(rng, batch, divide_by):
    _, item_seq_len, _ = batch
    C = rng.standard_normal((B, L, L))
    fwd = lambda C: layers.masked_average_forward(C, item_seq_len, divide_by)
    (dC,) = check_layer(fwd, layers.masked_average_backward, [C], {0: 0}, rng)
    # the diagonal and every padded row and column get no gradient
    assert np.all(dC[:, np.arange(L), np.arange(L)] == 0)
    for b, t in enumerate(item_seq_len):
        assert np.all(dC[b, t:, :] == 0) and np.all(dC[b, :, t:] == 0)
    # against a plain loop over eq. (4)
    alpha, _ = fwd(C)
    for b, t in enumerate(item_seq_len):
        denom = t if divide_by == "t" else max(t - 1, 1)
        for i in range(L):
            want = sum(C[b, i, j] for j in range(t) if j != i) / denom if i < t else 0.0
            assert alpha[b, i] == pytest.approx(want)


def test_masked_average_ignores_nan_at_padding(batch):
    _, item_seq_len, _ = batch
    C = np.ones((B, L, L))
    C[0, :, 1:] = np.nan  # session 0 has length 1: columns 1.. are padding
    alpha, _ = layers.masked_average_forward(C, item_seq_len)
    assert np.all(np.isfinite(alpha))


def test_masked_softmax(rng, batch):
    _, item_seq_len, _ = batch
    alpha = rng.standard_normal((B, L))
    fwd = lambda a: layers.masked_softmax_forward(a, item_seq_len)
    (dalpha,) = check_layer(fwd, layers.masked_softmax_backward, [alpha], {0: 0}, rng)
    beta, _ = fwd(alpha)
    valid = layers.valid_mask(item_seq_len, L)
    np.testing.assert_allclose(beta.sum(axis=1), 1.0)
    assert np.all(beta[~valid] == 0) and np.all(dalpha[~valid] == 0)
    assert beta[0, 0] == 1.0  # a length-1 session puts all weight on its item


def test_weighted_pool(rng, batch):
    _, item_seq_len, _ = batch
    beta, _ = layers.masked_softmax_forward(rng.standard_normal((B, L)), item_seq_len)
    emb = rng.standard_normal((B, L, d))
    check_layer(
        layers.weighted_pool_forward, layers.weighted_pool_backward, [beta, emb], {0: 0, 1: 1}, rng
    )


def test_last_item(rng, batch):
    _, item_seq_len, _ = batch
    emb = rng.standard_normal((B, L, d))
    fwd = lambda e: layers.last_item_forward(e, item_seq_len)
    check_layer(fwd, layers.last_item_backward, [emb], {0: 0}, rng)
    z_s, _ = fwd(emb)
    np.testing.assert_array_equal(z_s[1], emb[1, L - 1])
    np.testing.assert_array_equal(z_s[0], emb[0, 0])


@pytest.mark.parametrize("bias", [True, False])
def test_fusion(rng, bias):
    z_l, z_s = rng.standard_normal((B, d)), rng.standard_normal((B, d))
    W0 = rng.standard_normal((d, 2 * d))
    b0 = rng.standard_normal(d) if bias else None
    wrt = {0: 0, 1: 1, 2: 2, 3: 3} if bias else {0: 0, 1: 1, 2: 2}
    check_layer(layers.fusion_forward, layers.fusion_backward, [z_l, z_s, W0, b0], wrt, rng)
    z_h, _ = layers.fusion_forward(z_l, z_s, W0, b0)
    want = np.concatenate([z_l, z_s], 1) @ W0.T + (0 if b0 is None else b0)
    np.testing.assert_allclose(z_h, want)


def test_scores(rng):
    z_h = rng.standard_normal((B, d))
    E = rng.standard_normal((n + 1, d))
    dz_h, dE = check_layer(
        layers.scores_forward, layers.scores_backward, [z_h, E], {0: 0, 1: 1}, rng
    )
    assert np.all(dE[0] == 0)
    s, _ = layers.scores_forward(z_h, E)
    assert s.shape == (B, n)
    np.testing.assert_allclose(s[:, 2], z_h @ E[3])  # column j is item j + 1


def test_softmax_cross_entropy(rng):
    scores = 3 * rng.standard_normal((B, n))
    target_idx = rng.integers(0, n, B)
    loss, cache = layers.softmax_cross_entropy_forward(scores, target_idx)
    (dscores,) = layers.softmax_cross_entropy_backward(1.0, cache)
    num = eval_numerical_gradient(
        lambda: layers.softmax_cross_entropy_forward(scores, target_idx)[0], scores
    )
    assert max_relative_error(num, dscores) < TOL
    p = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.log(p[np.arange(B), target_idx]).mean())


def test_softmax_cross_entropy_is_stable_for_large_scores():
    scores = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], dtype=np.float32)
    with np.errstate(over="raise"):
        loss, cache = layers.softmax_cross_entropy_forward(scores, np.array([1, 2]))
        (dscores,) = layers.softmax_cross_entropy_backward(1.0, cache)
    assert loss == pytest.approx((1e4 + np.log(3)) / 2, rel=1e-6)
    assert np.all(np.isfinite(dscores))
    np.testing.assert_allclose(dscores.sum(axis=1), 0.0, atol=1e-6)


# ----------------------------------------------------------------------
# SR-IEM+ layers


def test_l2_normalize(rng):
    x = rng.standard_normal((B, L, d))
    x[0, 0] = 0.0  # a zero row (padding) stays zero, no division by zero
    y, _ = layers.l2_normalize_forward(x)
    np.testing.assert_allclose(np.linalg.norm(y[1:], axis=-1), 1.0)
    assert np.all(y[0, 0] == 0) and np.all(np.isfinite(y))
    # the gradient away from 0 (at 0 the function has a kink of height 1/sqrt(eps))
    x = rng.standard_normal((B, L, d))
    check_layer(layers.l2_normalize_forward, layers.l2_normalize_backward, [x], {0: 0}, rng)


def test_dropout_is_inverted_seeded_and_gradient_checked(rng):
    x = rng.standard_normal((400, d))
    y1, mask = layers.dropout_forward(x, 0.25, np.random.default_rng(5))
    y2, _ = layers.dropout_forward(x, 0.25, np.random.default_rng(5))
    np.testing.assert_array_equal(y1, y2)  # the same seed, the same mask
    kept = mask != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_allclose(y1[kept], x[kept] / 0.75)
    assert np.all(y1[~kept] == 0)
    seed = 9
    check_layer(
        lambda x: layers.dropout_forward(x, 0.5, np.random.default_rng(seed)),
        layers.dropout_backward,
        [x[:5]],
        {0: 0},
        rng,
    )
    with pytest.raises(ValueError, match="dropout probability"):
        layers.dropout_forward(x, 1.0, rng)
