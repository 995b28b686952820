"""The whole model: gradient checks in both variants, padding, length-1 sessions, learning."""

import numpy as np
import pytest

from minisriem.gradcheck import check_model, random_session_batch
from minisriem.importance import iem_forward
from minisriem.model import SRIEM

N, D, LQ, L, B = 15, 6, 5, 5, 7
BACKENDS = ["numba", "numpy"]


def make_model(variant, dtype=np.float64, seed=0, scale=1.0, backend="numba"):
    """A tiny model whose parameters are scaled up for the gradient check.

    At the paper's initialisation the sigmoid in eq. (1)-(3) makes the
    gradients of Wq and Wk small (docs/MODEL.md: C lives in a narrow band), and
    a relative check of a nearly-zero gradient measures rounding, not the
    backward pass. Scaling the parameters by ``scale`` moves the sigmoids
    into their sensitive range so every gradient is well above the
    finite-difference noise (about 1e-11 with h = 1e-5 in float64).
    """
    model = SRIEM(N, d=D, l=LQ, variant=variant, seed=seed, dtype=dtype, backend=backend)
    for w in model.params.values():
        w *= scale
    return model


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_model_gradient_check(variant, backend):
    rng = np.random.default_rng(7)
    model = make_model(variant, scale=3.0, backend=backend)
    item_seq, item_seq_len, targets = random_session_batch(rng, B, L, N)
    errors = check_model(model, item_seq, item_seq_len, targets, tol=1e-6)
    assert set(errors) == set(model.params)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_parameter_shapes_and_init(variant):
    model = SRIEM(40, d=8, l=3, variant=variant, seed=1)
    k = 3 if variant == "paper" else 8
    want = {"E": (41, 8), "Wq": (8, k), "Wk": (8, k), "W0": (8, 16)}
    if variant == "official":
        want["b0"] = (8,)
    assert {name: w.shape for name, w in model.params.items()} == want
    for w in model.params.values():
        assert w.dtype == np.float32
        assert np.abs(w).max() <= 1 / np.sqrt(8)
    assert np.all(model.params["E"][0] == 0)
    # the same seed gives the same parameters, another seed other ones
    again = SRIEM(40, d=8, l=3, variant=variant, seed=1).params
    other = SRIEM(40, d=8, l=3, variant=variant, seed=2).params
    assert all(np.array_equal(model.params[k], again[k]) for k in want)
    assert not np.array_equal(model.params["W0"], other["W0"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_float32_is_the_default_and_stays_float32(variant, backend):
    rng = np.random.default_rng(0)
    model = SRIEM(N, d=D, l=LQ, variant=variant, backend=backend)
    item_seq, item_seq_len, targets = random_session_batch(rng, B, L, N)
    _, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.scores(item_seq, item_seq_len).dtype == np.float32


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_padding_is_inert(variant, backend):
    rng = np.random.default_rng(3)
    model = make_model(variant, scale=2.0, backend=backend)
    item_seq, item_seq_len, targets = random_session_batch(rng, B, L, N)
    loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    scores = model.scores(item_seq, item_seq_len)

    # other ids at padded positions, and a different padding embedding
    pad = item_seq == 0
    noisy_seq = item_seq.copy()
    noisy_seq[pad] = rng.integers(1, N + 1, pad.sum())
    model.params["E"][0] = rng.standard_normal(D) * 5
    for seq in (item_seq, noisy_seq):
        loss2, grads2 = model.loss_and_grads(seq, item_seq_len, targets)
        assert loss2 == pytest.approx(loss, rel=1e-13)
        np.testing.assert_allclose(model.scores(seq, item_seq_len), scores, rtol=1e-13)
        for name in grads:
            np.testing.assert_allclose(grads2[name], grads[name], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_length_one_sessions(variant):
    model = make_model(variant, scale=2.0)
    item_seq = np.array([[4, 0, 0, 0], [9, 0, 0, 0], [2, 3, 0, 0]])
    item_seq_len = np.array([1, 1, 2])
    beta = model.item_weights(item_seq, item_seq_len)
    np.testing.assert_array_equal(beta[:2], [[1, 0, 0, 0], [1, 0, 0, 0]])
    emb = model.params["E"][item_seq]
    z_l, cache = iem_forward(emb, item_seq_len, model.params, variant)
    np.testing.assert_array_equal(cache["alpha"][:2], 0.0)
    np.testing.assert_allclose(z_l[:2], emb[:2, 0])  # z_l = z_s = e_1


def test_paper_importance_is_nearly_uniform():
    """docs/MODEL.md: in the paper's form no two betas differ by more than ~1.04x."""
    rng = np.random.default_rng(0)
    model = SRIEM(200, d=200, l=100, variant="paper")
    for w in model.params.values():
        w *= 10  # whatever the weights
    item_seq, item_seq_len, _ = random_session_batch(rng, 64, 10, 200)
    beta = model.item_weights(item_seq, item_seq_len)
    for b, t in enumerate(item_seq_len):
        assert beta[b, :t].max() / beta[b, :t].min() < np.exp(0.5 / np.sqrt(200)) + 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", ["paper", "official"])
def test_the_model_can_learn(variant, backend):
    """A few dozen fixed sessions: Adam drives the loss far below log(n)."""
    from minisriem.optim import Adam

    rng = np.random.default_rng(0)
    n = 30
    item_seq, item_seq_len, targets = random_session_batch(rng, 40, 6, n)
    model = SRIEM(n, d=16, l=8, variant=variant, seed=0, backend=backend)
    opt = Adam(model.params, lr=0.05, backend=backend)
    first, _ = model.loss_and_grads(item_seq, item_seq_len, targets)
    for _ in range(150):
        loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
        opt.step(model.params, grads)
    assert first == pytest.approx(np.log(n), rel=0.05)
    assert loss < 0.2 * first, (first, loss)


def test_bad_input_is_a_clear_error():
    model = SRIEM(10, d=4, l=2)
    with pytest.raises(ValueError, match="empty sessions"):
        model.scores(np.array([[1, 2], [0, 0]]), np.array([2, 0]))
    with pytest.raises(ValueError, match="targets must be item ids"):
        model.loss_and_grads(np.array([[1, 2]]), np.array([2]), np.array([11]))
    with pytest.raises(ValueError, match="variant"):
        SRIEM(10, variant="torch")
    with pytest.raises(ValueError, match="backend"):
        SRIEM(10, backend="torch")


@pytest.mark.parametrize("variant", ["paper", "official"])
@pytest.mark.parametrize("dtype,rtol,atol", [(np.float64, 1e-10, 1e-13), (np.float32, 2e-4, 2e-6)])
def test_backends_agree(variant, dtype, rtol, atol):
    """The kernels give what the layers give: loss, every gradient, scores, ranks."""
    rng = np.random.default_rng(11)
    n = 57
    item_seq, item_seq_len, targets = random_session_batch(rng, 9, 6, n)
    results = {}
    for backend in BACKENDS:
        model = SRIEM(n, d=8, l=4, variant=variant, seed=3, dtype=dtype, backend=backend)
        for w in model.params.values():
            w *= 4  # away from the uniform softmax, so the check is not trivially close
        loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
        rank, topk = model.rank_topk(item_seq, item_seq_len, targets, k=5)
        results[backend] = (loss, grads, model.scores(item_seq, item_seq_len), rank)
    (loss1, grads1, scores1, rank1), (loss2, grads2, scores2, rank2) = results.values()
    assert loss1 == pytest.approx(loss2, rel=rtol)
    assert loss1 > 0.5  # a real loss, not a saturated one
    for name in grads1:
        assert np.abs(grads1[name]).max() > 1e-3, name
        np.testing.assert_allclose(grads1[name], grads2[name], rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_allclose(scores1, scores2, rtol=rtol, atol=atol)
    np.testing.assert_array_equal(rank1, rank2)
    assert topk.shape == (9, 5) and topk.min() >= 1 and topk.max() <= n


@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_is_the_ranking_top_k_without_targets(backend):
    rng = np.random.default_rng(12)
    n = 40
    item_seq, item_seq_len, targets = random_session_batch(rng, 7, 5, n)
    model = SRIEM(n, d=8, l=4, seed=1, backend=backend)
    model.params["E"][5] = model.params["E"][6]  # items 5 and 6 tie in every session
    top, top_scores = model.topk(item_seq, item_seq_len, k=n, return_scores=True)
    _, want = model.rank_topk(item_seq, item_seq_len, targets, k=n)
    np.testing.assert_array_equal(top, want)
    np.testing.assert_array_equal(model.topk(item_seq, item_seq_len, k=3), want[:, :3])
    scores = model.scores(item_seq, item_seq_len)
    np.testing.assert_array_equal(top_scores, np.take_along_axis(scores, top - 1, axis=1))
    assert np.all(np.diff(top_scores, axis=1) <= 0)  # best first
    pos5, pos6 = (np.argmax(top == i, axis=1) for i in (5, 6))
    assert np.all(pos5 < pos6)  # a tie goes to the lower id


def test_numba_backend_reuses_its_workspace_but_never_overwrites_kept_gradients():
    rng = np.random.default_rng(0)
    model = SRIEM(N, d=D, l=LQ, backend="numba")
    batch1 = random_session_batch(rng, B, L, N)
    batch2 = random_session_batch(rng, B, L, N)
    _, grads1 = model.loss_and_grads(*batch1)
    kept = {name: g.copy() for name, g in grads1.items()}
    _, grads2 = model.loss_and_grads(*batch2)
    _, grads3 = model.loss_and_grads(*batch2)  # grads1 and grads2 were copied out of the workspace
    for name in kept:
        np.testing.assert_array_equal(grads1[name], kept[name])
    assert not np.array_equal(grads2["E"], kept["E"])
    np.testing.assert_array_equal(grads2["E"], grads3["E"])

    # a training loop that drops its gradients before the next step reuses the
    # workspace's memory and copies nothing
    del grads1, grads2, grads3
    _, grads = model.loss_and_grads(*batch1)
    address = grads["E"].P.ctypes.data
    del grads
    for _ in range(3):
        _, grads = model.loss_and_grads(*batch2)
        assert grads["E"].P.ctypes.data == address
        del grads

    # a smaller batch (the last one of an epoch) reuses the buffers and is still right
    small = tuple(a[:3] for a in batch1)
    _, grads_small = model.loss_and_grads(*small)
    _, want = SRIEM(N, d=D, l=LQ, backend="numpy").loss_and_grads(*small)
    for name in want:
        np.testing.assert_allclose(grads_small[name], want[name], rtol=2e-4, atol=2e-6)
