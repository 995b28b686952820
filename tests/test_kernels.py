"""Every Numba kernel against its NumPy twin, on random inputs and edge cases.

The twins are independent, vectorised statements of the same computation
(minisriem/kernels.py); shapes are small so that the whole file, compile
time included, takes seconds.
"""

import numpy as np
import pytest
from numba import njit

from minisriem import kernels, layers

DTYPES = [np.float32, np.float64]
# float32 kernels sum in a different order (and use their own exp): a few ulps
TOL = {np.float32: {"rtol": 2e-5, "atol": 1e-8}, np.float64: {"rtol": 1e-12, "atol": 1e-15}}


def random_scores(rng, B, n, dtype, kind="normal"):
    if kind == "normal":
        return (rng.standard_normal((B, n)) * 6).astype(dtype)
    if kind == "ties":  # few distinct values: many exact ties
        return rng.integers(-2, 3, size=(B, n)).astype(dtype)
    if kind == "extreme":  # -inf, float32's largest values, and tiny ones
        big = np.finfo(np.float32).max
        values = np.array([-np.inf, -big, -1e30, -1.0, 0.0, 1e-30, 1.0, 1e30, big], dtype=dtype)
        return rng.choice(values, size=(B, n))
    raise ValueError(kind)


# --------------------------------------------------------------------------
# exp_nonpositive: the float32 leaf of the softmax
# --------------------------------------------------------------------------
@njit
def _exp_array(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = kernels.exp_nonpositive(x[i])
    return out


def test_float32_exp_is_accurate_on_its_whole_domain():
    x = -np.concatenate([np.linspace(0, 90, 200_001), np.geomspace(1e-12, 1e-3, 1000)])
    x = x.astype(np.float32)
    got = _exp_array(x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    normal = x > -87
    assert np.max(np.abs(got - want)[normal] / want[normal]) < 3e-7  # a few float32 ulps
    assert np.max(np.abs(got - want)[~normal]) < 2e-38  # below -87: 0, not a subnormal
    assert got[0] == 1.0


def test_float32_exp_special_values():
    x = np.array([0.0, -0.0, -np.inf, np.nan, -1e30], dtype=np.float32)
    got = _exp_array(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got[:3], [1.0, 1.0, 0.0])
    assert np.isnan(got[3]) and got[4] == 0.0


def test_float64_exp_is_the_c_librarys():
    x = -np.linspace(0, 700, 1001)
    np.testing.assert_allclose(_exp_array(x), np.exp(x), rtol=1e-15, atol=0)


# --------------------------------------------------------------------------
# softmax cross-entropy, in place
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trial", range(4))
def test_softmax_xent_matches_twin_on_random_shapes(dtype, trial):
    rng = np.random.default_rng(trial)
    B, n = int(rng.integers(1, 9)), int(rng.integers(1, 300))
    scores = random_scores(rng, B, n, dtype)
    targets = rng.integers(0, n, B)
    got, want = scores.copy(), scores.copy()
    loss = kernels.softmax_xent_inplace(got, targets)
    loss_twin = kernels.softmax_xent_inplace_numpy(want, targets)
    assert loss == pytest.approx(loss_twin, rel=TOL[dtype]["rtol"])
    np.testing.assert_allclose(got, want, **TOL[dtype])
    assert got.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_matches_the_layers(dtype):
    """A third formulation: layers.softmax_cross_entropy_forward/backward."""
    rng = np.random.default_rng(5)
    scores = random_scores(rng, 6, 40, dtype)
    targets = rng.integers(0, 40, 6)
    loss_ref, cache = layers.softmax_cross_entropy_forward(scores, targets)
    (dscores_ref,) = layers.softmax_cross_entropy_backward(1.0, cache)
    got = scores.copy()
    assert kernels.softmax_xent_inplace(got, targets) == pytest.approx(loss_ref, rel=1e-5)
    np.testing.assert_allclose(got, dscores_ref, **TOL[dtype])
    # each row of dscores sums to 0: softmax sums to 1, minus the one-hot
    np.testing.assert_allclose(got.sum(axis=1), 0, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["ties", "extreme"])
def test_softmax_xent_edge_values(dtype, kind):
    rng = np.random.default_rng(1)
    scores = random_scores(rng, 7, 33, dtype, kind)
    scores[:, 0] = 0.0  # every row has a finite entry
    if kind == "extreme":
        scores[scores == np.inf] = 0.0
    targets = rng.integers(0, 33, 7)
    got, want = scores.copy(), scores.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        loss = kernels.softmax_xent_inplace(got, targets)
        loss_twin = kernels.softmax_xent_inplace_numpy(want, targets)
    assert loss == pytest.approx(loss_twin, rel=1e-5)  # may be +inf (a target at -inf)
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_single_item_and_single_row(dtype):
    one = np.array([[3.0], [-1e30]], dtype=dtype)  # n = 1: the target is certain
    assert kernels.softmax_xent_inplace(one, np.array([0, 0])) == 0.0
    np.testing.assert_array_equal(one, 0.0)
    row = np.array([[1.0, 2.0, 2.0, -np.inf]], dtype=dtype)  # B = 1, a tie, an impossible item
    loss = kernels.softmax_xent_inplace(row, np.array([1]))
    p = np.exp([1.0, 2.0, 2.0]) / np.exp([1.0, 2.0, 2.0]).sum()
    assert loss == pytest.approx(-np.log(p[1]), rel=1e-6)
    np.testing.assert_allclose(row[0], [p[0], p[1] - 1, p[2], 0.0], rtol=1e-6)


def test_softmax_xent_nan_propagates():
    scores = np.zeros((3, 10), dtype=np.float32)
    scores[1, 4] = np.nan
    loss = kernels.softmax_xent_inplace(scores, np.array([0, 0, 0]))
    assert np.isnan(loss)
    assert np.isnan(scores[1]).all() and np.isfinite(scores[[0, 2]]).all()


def test_softmax_xent_rejects_bad_input():
    with pytest.raises(ValueError, match="target_idx"):
        kernels.softmax_xent_inplace(np.zeros((2, 5), np.float32), np.array([0, 5]))
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.softmax_xent_inplace(np.zeros((5, 2), np.float32).T, np.array([0, 1]))


# --------------------------------------------------------------------------
# rank and top-k
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["normal", "ties", "extreme"])
@pytest.mark.parametrize("trial", range(3))
def test_rank_topk_and_topk_match_their_twins(dtype, kind, trial):
    rng = np.random.default_rng(100 + trial)
    B, n = int(rng.integers(1, 12)), int(rng.integers(1, 200))
    scores = random_scores(rng, B, n, dtype, kind)
    targets = rng.integers(0, n, B)
    for k in sorted({1, min(5, n), min(20, n), n}):
        rank, topk = kernels.rank_topk(scores, targets, k)
        rank_twin, topk_twin = kernels.rank_topk_numpy(scores, targets, k)
        assert rank.dtype == topk.dtype == np.int64 and topk.shape == (B, k)
        np.testing.assert_array_equal(rank, rank_twin)
        np.testing.assert_array_equal(topk, topk_twin)
        # the top k alone (no target): the same list, kernel and twin
        only = kernels.topk(scores, k)
        assert only.dtype == np.int64 and only.shape == (B, k)
        np.testing.assert_array_equal(only, topk_twin)
        np.testing.assert_array_equal(kernels.topk_numpy(scores, k), topk_twin)


@pytest.mark.parametrize("order", ["ascending", "descending", "plateaus"])
def test_rank_topk_chunked_scan_matches_twin(order):
    # The kernel skips chunks of 16 entries with none above the k-th best so
    # far: rising scores make every chunk count, falling ones skip them all,
    # plateaus put ties across chunk edges; n is not a multiple of 16.
    rng = np.random.default_rng(7)
    n = 1000 + 7
    base = np.arange(n, dtype=np.float32)
    if order == "descending":
        base = base[::-1].copy()
    elif order == "plateaus":
        base = np.floor(base / 24).astype(np.float32)
    scores = np.stack([base, rng.permutation(base)])
    targets = np.array([3, n - 1])
    for k in (1, 20, 33):
        rank, topk = kernels.rank_topk(scores, targets, k)
        rank_twin, topk_twin = kernels.rank_topk_numpy(scores, targets, k)
        np.testing.assert_array_equal(rank, rank_twin)
        np.testing.assert_array_equal(topk, topk_twin)


def test_rank_topk_by_hand():
    scores = np.array(
        [
            [0.5, 0.9, 0.5, 0.1, 0.9],  # target 0.5 (col 2): two items strictly above
            [1.0, 1.0, 1.0, 1.0, 1.0],  # all tied: rank 1, top-k in column order
            [-np.inf, 3e38, -np.inf, 0.0, -3e38],
        ],
        dtype=np.float32,
    )
    rank, topk = kernels.rank_topk(scores, np.array([2, 3, 0]), 5)
    np.testing.assert_array_equal(rank, [3, 1, 4])
    np.testing.assert_array_equal(topk, [[1, 4, 0, 2, 3], [0, 1, 2, 3, 4], [1, 3, 4, 0, 2]])


def test_topk_by_hand():
    scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.9], [1.0, 1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(kernels.topk(scores, 3), [[1, 4, 0], [0, 1, 2]])  # ties: lower
    with pytest.raises(ValueError, match="k must be"):
        kernels.topk(scores, 0)
    with pytest.raises(ValueError, match=r"\(B, n\)"):
        kernels.topk(scores[0], 1)


def test_rank_topk_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        kernels.rank_topk(np.zeros((2, 5), np.float32), np.array([0, 1]), 6)
    with pytest.raises(ValueError, match="target_idx"):
        kernels.rank_topk(np.zeros((2, 5), np.float32), np.array([0, -1]), 2)


# --------------------------------------------------------------------------
# Adam
# --------------------------------------------------------------------------
@pytest.mark.parametrize("threads", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, 1e-2])
def test_adam_step_matches_twin_over_steps(dtype, l2, threads, monkeypatch):
    if threads == "parallel":  # the loop large arrays take, on a small one
        monkeypatch.setattr(kernels, "ADAM_PARALLEL_MIN_SIZE", 0)
    rng = np.random.default_rng(2)
    shape = (13, 7)
    w = rng.standard_normal(shape).astype(dtype)
    w_start = w.copy()
    m, v = np.zeros_like(w), np.zeros_like(w)
    w2, m2, v2 = w.copy(), m.copy(), v.copy()
    for t in range(1, 6):
        g = rng.standard_normal(shape).astype(dtype)
        g[0] = 0.0  # rows without gradient still move (L2, momentum)
        g_kept = g.copy()
        kernels.adam_step(w, g, m, v, 1e-2, 0.9, 0.999, 1e-8, l2, t)
        kernels.adam_step_numpy(w2, g, m2, v2, 1e-2, 0.9, 0.999, 1e-8, l2, t)
        np.testing.assert_array_equal(g, g_kept)  # the gradient is not modified
        for a, b in ((w, w2), (m, m2), (v, v2)):
            np.testing.assert_allclose(a, b, rtol=TOL[dtype]["rtol"] * 10, atol=1e-7)
    assert w.dtype == dtype
    assert np.all(w[1:] != w_start[1:])  # every entry with a gradient moved
    # row 0 never had a gradient: only the L2 term moves it
    assert np.all(w[0] != w_start[0]) if l2 > 0 else np.array_equal(w[0], w_start[0])


def test_adam_step_accepts_a_transposed_gradient_and_refuses_a_strided_weight():
    w = np.ones((4, 3), np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    g = np.arange(12, dtype=np.float32).reshape(3, 4).T  # F-contiguous, like dW0
    w2, m2, v2 = w.copy(), m.copy(), v.copy()
    kernels.adam_step(w, g, m, v, 0.1, 0.9, 0.999, 1e-8, 0.0, 1)
    kernels.adam_step_numpy(w2, g, m2, v2, 0.1, 0.9, 0.999, 1e-8, 0.0, 1)
    np.testing.assert_allclose(w, w2, rtol=1e-6)
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.adam_step(w.T, g.T, m.T, v.T, 0.1, 0.9, 0.999, 1e-8, 0.0, 1)


# --------------------------------------------------------------------------
# embedding scatter-add
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_scatter_add_matches_twin(dtype):
    rng = np.random.default_rng(4)
    n, d, B, L = 9, 5, 6, 4
    item_seq = rng.integers(0, n + 1, size=(B, L))  # many repeats and paddings
    item_seq[0] = [3, 3, 3, 3]
    demb = rng.standard_normal((B, L, d)).astype(dtype)
    dE = rng.standard_normal((n + 1, d)).astype(dtype)  # adds to what is there
    dE[0] = 0
    dE_twin = dE.copy()
    kernels.embedding_scatter_add(dE, item_seq, demb)
    kernels.embedding_scatter_add_numpy(dE_twin, item_seq, demb)
    np.testing.assert_allclose(dE, dE_twin, **TOL[dtype])
    np.testing.assert_array_equal(dE[0], 0)  # padding never gets gradient
    # and against the layer's own backward (a third formulation)
    _, cache = layers.embedding_forward(np.zeros((n + 1, d), dtype), item_seq)
    (dE_layer,) = layers.embedding_backward(demb, cache)
    fresh = np.zeros((n + 1, d), dtype)
    kernels.embedding_scatter_add(fresh, item_seq, demb)
    np.testing.assert_allclose(fresh, dE_layer, **TOL[dtype])


def test_embedding_scatter_add_rejects_bad_ids():
    with pytest.raises(ValueError, match="item ids"):
        kernels.embedding_scatter_add(np.zeros((4, 2)), np.array([[1, 4]]), np.zeros((1, 2, 2)))


# --------------------------------------------------------------------------
# the products with all items, split over threads
# --------------------------------------------------------------------------
@pytest.mark.parametrize("parts", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_items_matches_matmul(dtype, parts):
    rng = np.random.default_rng(8)
    B, d, n = 5, 7, 101  # 101 items: slices of unequal size
    E = rng.standard_normal((n + 1, d)).astype(dtype)
    z_h = rng.standard_normal((B, d)).astype(dtype)
    dS = rng.standard_normal((B, n)).astype(dtype)
    with kernels.blas_single_thread():
        scores = kernels.matmul_items(z_h, E[1:].T, np.empty((B, n), dtype), "b_rows", parts)
        dz_h = kernels.matmul_items(dS, E[1:], np.empty((B, d), dtype), "inner", parts)
        dE = np.full((n + 1, d), 7.0, dtype)
        kernels.matmul_items(dS.T, z_h, dE[1:], "out_rows", parts)
    np.testing.assert_allclose(scores, z_h @ E[1:].T, **TOL[dtype])
    np.testing.assert_allclose(dz_h, dS @ E[1:], rtol=TOL[dtype]["rtol"], atol=1e-5)
    np.testing.assert_allclose(dE[1:], dS.T @ z_h, **TOL[dtype])
    np.testing.assert_array_equal(dE[0], 7.0)  # only the slice given as out is written
