"""Adam with coupled L2 and the step schedule, against steps computed by hand."""

import numpy as np
import pytest

from minisriem.optim import Adam, step_lr


def test_adam_matches_a_hand_computed_step():
    w = {"w": np.array([0.5, -1.0])}
    opt = Adam(w, lr=0.01, l2=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    # step 1: g = [0.2, 0.3] + 0.1 * w = [0.25, 0.2]
    # m = 0.1 g, v = 0.001 g^2; bias-corrected m_hat = g, v_hat = g^2
    # w -= 0.01 * g / (|g| + 1e-8)
    opt.step(w, {"w": np.array([0.2, 0.3])})
    np.testing.assert_allclose(
        w["w"], [0.5 - 0.01 * 0.25 / (0.25 + 1e-8), -1.0 - 0.01 * 0.2 / (0.2 + 1e-8)], rtol=1e-12
    )
    # step 2 on the first entry, written out in full
    w1 = w["w"][0]
    g1, g2 = 0.25, -0.1 + 0.1 * w1
    m = 0.9 * (0.1 * g1) + 0.1 * g2
    v = 0.999 * (0.001 * g1**2) + 0.001 * g2**2
    want = w1 - 0.01 * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
    opt.step(w, {"w": np.array([-0.1, 0.0])})
    assert w["w"][0] == pytest.approx(want, rel=1e-12)
    assert opt.t == 2


def test_adam_without_l2_ignores_weights_and_updates_in_place():
    w = {"a": np.full((2, 2), 7.0, dtype=np.float32)}
    ref = w["a"]
    opt = Adam(w, lr=0.1)
    opt.step(w, {"a": np.full((2, 2), 3.0, dtype=np.float32)})
    assert w["a"] is ref and w["a"].dtype == np.float32
    np.testing.assert_allclose(w["a"], 7.0 - 0.1, rtol=1e-6)


def test_adam_state_round_trip():
    rng = np.random.default_rng(0)
    w1 = {"a": rng.standard_normal(5)}
    w2 = {"a": w1["a"].copy()}
    opt1, opt2 = Adam(w1, lr=0.01, l2=1e-3), Adam(w2, lr=0.5, l2=1e-3)
    g = rng.standard_normal(5)
    opt1.step(w1, {"a": g})
    w2["a"][...] = w1["a"]
    opt2.load_state_dict(opt1.state_dict())
    opt1.step(w1, {"a": -g})
    opt2.step(w2, {"a": -g})
    np.testing.assert_array_equal(w1["a"], w2["a"])


@pytest.mark.parametrize("epoch,want", [(0, 1e-3), (2, 1e-3), (3, 1e-4), (5, 1e-4), (6, 1e-5)])
def test_step_schedule(epoch, want):
    assert step_lr(1e-3, epoch) == pytest.approx(want)
    assert step_lr(1e-3, epoch, step=3, gamma=0.1) == pytest.approx(want)
