"""The fast path's kernels against their NumPy twins, and the model's workspace.

Every kernel of issue 16 (minisriem/kernels.py) is compared with its twin on
random inputs that include padding and length-1 sessions: the session part
of SR-IEM (one kernel per direction, the layers as twins), the two passes
over item blocks (with several threads and block sizes that do not divide
the items), the lookup rows, and the block-wise Adam step on E.
"""

import numpy as np
import pytest

from minisriem import kernels, layers
from minisriem.gradcheck import random_session_batch
from minisriem.model import SRIEM
from minisriem.optim import Adam
from minisriem.workspace import Workspace

DTYPES = [np.float32, np.float64]
TOL = {np.float32: {"rtol": 2e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-11, "atol": 1e-13}}


def real_rows(rng, item_seq_len, k, dtype, scale=1.0):
    return (rng.standard_normal((int(np.sum(item_seq_len)), k)) * scale).astype(dtype)


# --------------------------------------------------------------------------
# the session part: iem_pool_forward / iem_pool_backward
# --------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trial", range(3))
def test_iem_pool_kernels_match_the_layers(variant, dtype, trial):
    rng = np.random.default_rng(trial)
    B, L, d, l = 9, 6, 7, 5
    _, item_seq_len, _ = random_session_batch(rng, B, L, 20)  # length 1 and full rows
    item_seq_len[3] = 1
    qk_lin = real_rows(rng, item_seq_len, 2 * l, dtype, scale=2.0)
    emb = real_rows(rng, item_seq_len, d, dtype)
    zcat, cache = kernels.iem_pool_forward(qk_lin, emb, item_seq_len, variant, L)
    zcat_twin, cache_twin = kernels.iem_pool_forward_numpy(qk_lin, emb, item_seq_len, variant, L)
    assert zcat.dtype == dtype and zcat.shape == (B, 2 * d)
    np.testing.assert_allclose(zcat, zcat_twin, **TOL[dtype])
    np.testing.assert_allclose(cache["beta"], cache_twin["beta"], **TOL[dtype])
    assert np.all(cache["beta"][layers.valid_mask(item_seq_len, L) == 0] == 0)
    np.testing.assert_allclose(cache["beta"].sum(axis=1), 1.0, rtol=1e-5)
    assert cache["beta"][0, 0] == 1.0  # a length-1 session puts all weight on its item

    dzcat = rng.standard_normal((B, 2 * d)).astype(dtype)
    dqk, demb = kernels.iem_pool_backward(dzcat, cache)
    dqk_twin, demb_twin = kernels.iem_pool_backward_numpy(dzcat, cache_twin)
    assert dqk.shape == qk_lin.shape and demb.shape == emb.shape
    assert np.abs(dqk).max() > 1e-3  # the affinity path carries gradient
    np.testing.assert_allclose(dqk, dqk_twin, **TOL[dtype])
    np.testing.assert_allclose(demb, demb_twin, **TOL[dtype])
    # a length-1 session: no other item, so no affinity and no query/key gradient
    first = int(np.sum(item_seq_len[:3]))
    np.testing.assert_array_equal(dqk[first], 0)


def test_iem_pool_kernel_rejects_bad_shapes():
    emb = np.zeros((5, 4))
    with pytest.raises(ValueError, match="summing to 5"):
        kernels.iem_pool_forward(np.zeros((5, 6)), emb, np.array([2, 2]), "paper", 3)
    with pytest.raises(ValueError, match="qk_lin"):
        kernels.iem_pool_forward(np.zeros((5, 3)), emb, np.array([2, 3]), "paper", 3)
    with pytest.raises(ValueError, match="variant"):
        kernels.iem_pool_forward(np.zeros((5, 6)), emb, np.array([2, 3]), "nope", 3)


# --------------------------------------------------------------------------
# the two passes over item blocks
# --------------------------------------------------------------------------
def test_item_blocks_cover_every_item_once():
    for n, parts, block in ((101, 1, 7), (101, 3, 10), (5, 2, 100), (64, 2, 32)):
        ranges = kernels.item_blocks(n, parts, block)
        assert len(ranges) == parts
        flat = [b for part in ranges for b in part]
        assert flat[0][0] == 0 and flat[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(flat[:-1], flat[1:], strict=True))
        assert all(0 < hi - lo <= block for lo, hi in flat)


def item_problem(rng, dtype, B=6, n=103, d=5, scale=3.0):
    z_h = (rng.standard_normal((B, d)) * scale).astype(dtype)
    E_items = rng.standard_normal((n, d)).astype(dtype)
    target_idx = rng.integers(0, n, size=B)
    target_idx[0], target_idx[1] = 0, n - 1  # the first and the last column
    return z_h, E_items, target_idx


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("parts,block", [(1, 1000), (1, 10), (2, 16), (3, 7)])
def test_item_pass_matches_twin(dtype, parts, block):
    rng = np.random.default_rng(parts * 100 + block)
    z_h, E_items, target_idx = item_problem(rng, dtype)
    B, n = z_h.shape[0], E_items.shape[0]
    P = np.full(B * n, np.nan, dtype=dtype)
    with kernels.blas_single_thread():
        loss, dz_h, row_scale = kernels.item_pass_forward(z_h, E_items, target_idx, P, parts, block)
    loss_twin, dz_twin, dS_twin = kernels.item_pass_forward_numpy(z_h, E_items, target_idx)
    assert loss == pytest.approx(loss_twin, rel=TOL[dtype]["rtol"])
    assert loss > 1.0  # not a saturated softmax
    np.testing.assert_allclose(dz_h, dz_twin, **TOL[dtype])
    assert not np.isnan(P).any()  # every block was written

    # ItemGradient, dense: dE = [0; dS^T z_h] + the lookup rows
    items = np.array([1, 7, n])
    rows = rng.standard_normal((3, z_h.shape[1])).astype(dtype)
    g = kernels.ItemGradient(
        P, z_h, target_idx, row_scale, items, rows, (n + 1, z_h.shape[1]), parts, block
    )
    want = np.zeros((n + 1, z_h.shape[1]), dtype)
    want[1:] = dS_twin.T @ z_h
    want[items] += rows
    np.testing.assert_allclose(np.asarray(g), want, **TOL[dtype])
    np.testing.assert_array_equal(g.copy()[0], 0)  # padding gets nothing
    assert g.shape == want.shape and g.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("parts,block", [(1, 1000), (2, 16), (3, 7)])
def test_item_gradient_adam_step_matches_dense_adam(dtype, parts, block):
    rng = np.random.default_rng(5)
    z_h, E_items, target_idx = item_problem(rng, dtype)
    B, n = z_h.shape[0], E_items.shape[0]
    d = z_h.shape[1]
    E = np.concatenate([np.zeros((1, d), dtype), E_items])
    m = rng.standard_normal(E.shape).astype(dtype) * 0.1
    v = rng.random(E.shape).astype(dtype) * 0.1
    m[0] = v[0] = 0
    E2, m2, v2 = E.copy(), m.copy(), v.copy()
    P = np.empty(B * n, dtype)
    with kernels.blas_single_thread():
        _, _, row_scale = kernels.item_pass_forward(z_h, E[1:], target_idx, P, parts, block)
    items = np.array([2, 3, 50])
    rows = rng.standard_normal((3, d)).astype(dtype)
    g = kernels.ItemGradient(P, z_h, target_idx, row_scale, items, rows, E.shape, parts, block)
    dense = g.dense()
    with kernels.blas_single_thread():
        g.adam_step(E, m, v, 1e-2, 0.9, 0.999, 1e-8, 1e-3, 3)
    kernels.adam_step_numpy(E2, dense, m2, v2, 1e-2, 0.9, 0.999, 1e-8, 1e-3, 3)
    for a, b in ((E, E2), (m, m2), (v, v2)):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype]["rtol"] * 10, atol=1e-7)
    np.testing.assert_array_equal(E[0], 0)
    # P now holds dS; the gradient still reads the same
    assert g.is_dS
    np.testing.assert_allclose(g.dense(), dense, **TOL[dtype])


def test_item_pass_propagates_nan_into_the_loss():
    rng = np.random.default_rng(1)
    z_h, E_items, target_idx = item_problem(rng, np.float32)
    E_items[40, 2] = np.nan
    P = np.empty(z_h.shape[0] * E_items.shape[0], np.float32)
    loss, _, _ = kernels.item_pass_forward(z_h, E_items, target_idx, P, 1, 16)
    assert np.isnan(loss)


def test_item_pass_rejects_bad_input():
    z_h, E_items = np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="target_idx"):
        kernels.item_pass_forward(z_h, E_items, np.array([0, 4]), np.empty(8, np.float32))
    with pytest.raises(ValueError, match="buffer of 8"):
        kernels.item_pass_forward(z_h, E_items, np.array([0, 3]), np.empty(7, np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lookup_rows_match_the_scatter_add(dtype):
    rng = np.random.default_rng(4)
    n, d, B, L = 9, 5, 6, 4
    item_seq = rng.integers(0, n + 1, size=(B, L))  # many repeats and paddings
    item_seq[0] = [3, 3, 3, 3]
    demb = rng.standard_normal((B, L, d)).astype(dtype)
    items, rows = kernels.lookup_rows(item_seq, demb)
    assert np.all(np.diff(items) > 0) and items.min() >= 1
    dense = np.zeros((n + 1, d), dtype)
    dense[items] = rows
    twin = np.zeros((n + 1, d), dtype)
    kernels.embedding_scatter_add_numpy(twin, item_seq, demb)
    np.testing.assert_allclose(dense, twin, **TOL[dtype])


# --------------------------------------------------------------------------
# the model's workspace and the whole fast path
# --------------------------------------------------------------------------
def test_workspace_reuses_memory_by_name_and_grows():
    ws = Workspace()
    a = ws.get("x", (3, 4), np.float32)
    a[...] = 1
    b = ws.get("x", (2, 5), np.float32)
    assert np.shares_memory(a, b) and b.shape == (2, 5)
    c = ws.get("x", (10, 10), np.float32)  # larger: new memory
    assert not np.shares_memory(a, c)
    assert not np.shares_memory(c, ws.get("y", (10, 10), np.float32))
    assert ws.nbytes == 2 * 400


def test_workspace_detaches_the_results_still_held():
    class Result:
        detached = 0

        def detach(self):
            self.detached += 1

    ws = Workspace()
    kept, dropped = Result(), Result()
    ws.share(kept)
    ws.share(dropped)
    del dropped
    ws.advance()
    assert kept.detached == 1 and ws.generation == 1
    ws.advance()  # registered once: not detached again
    assert kept.detached == 1


@pytest.mark.parametrize("importance", ["iem", "stamp"])
@pytest.mark.parametrize("parts", [1, 2])
def test_training_steps_agree_with_the_numpy_backend(importance, parts, monkeypatch):
    """Five Adam steps on both backends: the same parameters within float32 rounding."""
    monkeypatch.setattr(kernels, "item_parts", lambda: parts)
    monkeypatch.setattr(kernels, "ITEM_BLOCK", 23)
    rng = np.random.default_rng(2)
    n = 150
    models = [
        SRIEM(n, d=12, l=6, seed=1, importance=importance, backend=b) for b in ("numba", "numpy")
    ]
    opts = [Adam(m.params, lr=1e-2, l2=1e-4, backend=m.backend) for m in models]
    for _ in range(5):
        batch = random_session_batch(rng, 10, 5, n)
        losses = []
        for model, opt in zip(models, opts, strict=True):
            loss, grads = model.loss_and_grads(*batch)
            opt.step(model.params, grads)
            losses.append(loss)
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for name, w in models[0].params.items():
        np.testing.assert_allclose(w, models[1].params[name], rtol=1e-4, atol=2e-5, err_msg=name)


def test_one_thread_training_is_bitwise_repeatable(monkeypatch):
    monkeypatch.setattr(kernels, "item_parts", lambda: 1)
    rng = np.random.default_rng(0)
    batches = [random_session_batch(rng, 8, 5, 60) for _ in range(3)]
    finals = []
    for _ in range(2):
        model = SRIEM(60, d=8, l=4, seed=0)
        opt = Adam(model.params, lr=1e-2, l2=1e-5)
        for batch in batches:
            _, grads = model.loss_and_grads(*batch)
            opt.step(model.params, grads)
        finals.append({k: w.copy() for k, w in model.params.items()})
    for name in finals[0]:
        np.testing.assert_array_equal(finals[0][name], finals[1][name])
