"""Session kNN: V-SKNN (minisriem.sknn) and STAN (minisriem.stan). The Numba kernels
beside their NumPy twins, hand-computed examples, the fallback, deterministic sampling."""

import numpy as np
import pytest

from minisriem.metrics import target_ranks
from minisriem.session_knn import SessionIndex
from minisriem.sknn import (
    SCORE_WEIGHTINGS,
    VSKNN,
    WEIGHTINGS,
    position_weights,
)
from minisriem.stan import STAN, session_position_weights


def random_sessions(rng, n_sessions, n_items, max_len=8):
    """Training sessions in CSR layout (lengths 1..max_len, repeated items likely)."""
    lengths = rng.integers(1, max_len + 1, n_sessions)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, n_items + 1, offsets[-1])
    return offsets, items


def random_batch(rng, B, L, n_items):
    """A padded batch with every length 1..L present (length-1 sessions included)."""
    item_seq_len = np.concatenate([np.arange(1, L + 1), rng.integers(1, L + 1, B - L)])
    item_seq = rng.integers(1, n_items + 1, (B, L))
    item_seq[np.arange(L)[None, :] >= item_seq_len[:, None]] = 0
    targets = rng.integers(1, n_items + 1, B)
    return item_seq, item_seq_len, targets


@pytest.mark.parametrize("weighting", sorted(WEIGHTINGS))
@pytest.mark.parametrize("score_weighting", sorted(SCORE_WEIGHTINGS))
def test_kernel_matches_twin(weighting, score_weighting):
    rng = np.random.default_rng(len(weighting) * 7 + len(score_weighting))
    n = 40
    data = random_sessions(rng, 300, n)
    batch = random_batch(rng, 60, 12, n)  # lengths past 10: "linear" weights reach 0
    for sampling in ("recent", "random"):
        for k, m in ((3, 15), (50, 10_000)):  # truncated neighbours and sample; all of them
            settings = dict(k=k, m=m, weighting=weighting, score_weighting=score_weighting)
            fast = VSKNN(**settings, sampling=sampling).fit(data, n)
            slow = VSKNN(**settings, sampling=sampling, backend="numpy").fit(data, n)
            s_fast, s_slow = fast.scores(*batch[:2]), slow.scores(*batch[:2])
            # same additions in the same order: equal to the last bit
            np.testing.assert_array_equal(s_fast, s_slow)
            np.testing.assert_array_equal(fast.ranks(*batch), target_ranks(s_slow, batch[2]))


def test_ranks_without_fallback_match_dense_ranks():
    rng = np.random.default_rng(5)
    n = 30
    data = random_sessions(rng, 200, n)
    batch = random_batch(rng, 40, 6, n)
    knn = VSKNN(k=4, m=20, fallback=None).fit(data, n)
    scores = knn.scores(*batch[:2])
    assert (scores == 0).any()  # untouched items tie at 0
    np.testing.assert_array_equal(knn.ranks(*batch), target_ranks(scores, batch[2]))


def test_fallback_is_below_neighbour_items_and_by_popularity():
    rng = np.random.default_rng(2)
    n = 50
    data = random_sessions(rng, 150, n)
    item_seq, item_seq_len, _ = random_batch(rng, 30, 5, n)
    knn = VSKNN(k=5, m=30).fit(data, n)
    scores = knn.scores(item_seq, item_seq_len)
    pop = np.bincount(data[1], minlength=n + 1)[1:]
    for row in scores:
        nb = row > 0
        assert nb.any() and (~nb).any()
        # every neighbour item above every other; the others in order of popularity
        assert row[nb].min() > row[~nb].max()
        others = np.flatnonzero(~nb)
        order = others[np.argsort(-row[others], kind="stable")]
        assert np.all(np.diff(pop[order]) <= 0)


# a tiny world, computed by hand
#   session 0: 1 2 3      session 2: 3 5 3      session 4: 1 5
#   session 1: 2 4        session 3: 6 6
# clicks per item (popularity): 1:2 2:2 3:3 4:1 5:2 6:2
TINY = (np.array([0, 3, 5, 8, 10, 12]), np.array([1, 2, 3, 2, 4, 3, 5, 3, 6, 6, 1, 5]))


def test_hand_computed_neighbours_and_scores():
    # current session [1, 3] with "div" weights: item 1 (p=1 of 2) 1/2, item 3 (p=2) 1.
    # candidates share 1 or 3: sessions 0, 2, 4; sim = dot product / 2 distinct items:
    #   s0 {1,2,3}: (1/2 + 1) / 2 = 0.75   s2 {3,5}: 1/2 = 0.5   s4 {1,5}: (1/2)/2 = 0.25
    for backend in ("numba", "numpy"):
        knn = VSKNN(k=2, m=100, weighting="div", backend=backend).fit(TINY, 6)
        sessions, sim, steps = knn.neighbours([1, 3])
        np.testing.assert_array_equal(sessions, [0, 2])
        np.testing.assert_allclose(sim, [0.75, 0.5])
        np.testing.assert_array_equal(steps, [1, 1])  # both share the last click, 3
        scores = knn.scores(np.array([[1, 3]]), np.array([2]))[0]
        # neighbour items: 1, 2 from s0; 3 from both; 5 from s2. Fallback: pop / 4 - 1
        np.testing.assert_allclose(scores, [0.75, 0.75, 1.25, -0.75, 0.5, -0.5])
        # ranks, strict ties: item 2 ties item 1 and is beaten only by 3; item 4 is last
        ranks = knn.ranks(np.array([[1, 3]] * 3), np.array([2] * 3), np.array([2, 4, 6]))
        np.testing.assert_array_equal(ranks, [2, 6, 5])


def test_hand_computed_sample_and_decay():
    # m = 2 keeps the two most recent candidates, sessions 4 and 2
    knn = VSKNN(k=2, m=2, weighting="div").fit(TINY, 6)
    sessions, sim, steps = knn.neighbours([1, 3])
    np.testing.assert_array_equal(sessions, [2, 4])
    np.testing.assert_allclose(sim, [0.5, 0.25])
    np.testing.assert_array_equal(steps, [1, 2])  # s4 shares only item 1, one step back
    scores = knn.scores(np.array([[1, 3]]), np.array([2]))[0]
    np.testing.assert_allclose(scores[[0, 2, 4]], [0.25, 0.5, 0.75])
    # score_weighting "div" divides s4's share by its step, 2
    knn = VSKNN(k=2, m=2, weighting="div", score_weighting="div").fit(TINY, 6)
    scores = knn.scores(np.array([[1, 3]]), np.array([2]))[0]
    np.testing.assert_allclose(scores[[0, 2, 4]], [0.125, 0.5, 0.625])


def test_ties_go_to_the_more_recent_session():
    # [3] alone: sessions 0 and 2 both contain 3, similarity 1 each; k = 1 keeps session 2
    knn = VSKNN(k=1, m=100).fit(TINY, 6)
    sessions, sim, _ = knn.neighbours([3])
    np.testing.assert_array_equal(sessions, [2])
    np.testing.assert_allclose(sim, [1.0])
    scores = knn.scores(np.array([[3, 0]]), np.array([1]))[0]
    assert scores[2] == 1.0 and scores[4] == 1.0 and scores[0] < 0  # s0's items fall back


def test_repeated_item_keeps_its_most_recent_weight():
    # [3, 1, 3] with "div" weights 1/3, 2/3, 1: item 3 weighs 1 (its last click), item 1 2/3
    knn = VSKNN(k=10, m=100, weighting="div").fit(TINY, 6)
    sessions, sim, _ = knn.neighbours([3, 1, 3])
    np.testing.assert_array_equal(sessions, [0, 2, 4])
    np.testing.assert_allclose(sim, [(1 + 2 / 3) / 2, 1 / 2, (2 / 3) / 2])


def test_position_weights():
    w = position_weights(np.array([3, 1, 12]), 12, "linear")
    np.testing.assert_allclose(w[0, :4], [0.8, 0.9, 1.0, 0.0])
    np.testing.assert_allclose(w[1, :2], [1.0, 0.0])
    assert w[2, -1] == 1.0 and np.all(w[2, :2] == 0) and w[2, 2] == pytest.approx(0.1)
    np.testing.assert_allclose(
        position_weights(np.array([4]), 4, "quadratic")[0], [1 / 16, 1 / 4, 9 / 16, 1]
    )


def test_random_sampling_is_deterministic_and_independent_of_batching():
    rng = np.random.default_rng(11)
    n = 25
    data = random_sessions(rng, 400, n)
    item_seq, item_seq_len, _ = random_batch(rng, 30, 5, n)
    a = VSKNN(k=5, m=8, sampling="random", seed=3).fit(data, n)
    b = VSKNN(k=5, m=8, sampling="random", seed=3).fit(data, n)
    np.testing.assert_array_equal(
        a.scores(item_seq, item_seq_len), b.scores(item_seq, item_seq_len)
    )
    alone = np.concatenate(
        [a.scores(item_seq[i : i + 1], item_seq_len[i : i + 1]) for i in range(5)]
    )
    np.testing.assert_array_equal(alone, a.scores(item_seq, item_seq_len)[:5])
    # another seed draws another sample (400 sessions, 8 kept: the same for all 30 is impossible)
    c = VSKNN(k=5, m=8, sampling="random", seed=4).fit(data, n)
    assert not np.array_equal(a.scores(item_seq, item_seq_len), c.scores(item_seq, item_seq_len))
    # "recent" keeps the latest candidates
    recent = VSKNN(k=100, m=8).fit(data, n)
    sessions, _, _ = recent.neighbours(item_seq[0, : item_seq_len[0]])
    index = SessionIndex(*data, n)
    cand = np.unique(np.concatenate([index.sessions_of(i) for i in item_seq[0, : item_seq_len[0]]]))
    np.testing.assert_array_equal(np.sort(sessions), np.sort(cand)[-8:])


def test_index_holds_distinct_pairs():
    index = SessionIndex(*TINY, 6)
    np.testing.assert_array_equal(index.items_of(2), [3, 5])
    np.testing.assert_array_equal(index.sessions_of(3), [0, 2])
    np.testing.assert_array_equal(index.sessions_of(5), [2, 4])
    assert len(index.sessions_of(0)) == 0


def test_bad_settings_and_inputs():
    with pytest.raises(ValueError, match="weighting"):
        VSKNN(weighting="cubic")
    with pytest.raises(ValueError, match="score_weighting"):
        VSKNN(score_weighting="linear")
    with pytest.raises(ValueError, match="k and m"):
        VSKNN(k=0)
    with pytest.raises(ValueError, match="sampling"):
        VSKNN(sampling="first")
    knn = VSKNN().fit(TINY, 6)
    with pytest.raises(ValueError, match="item ids"):
        knn.scores(np.array([[7]]), np.array([1]))
    with pytest.raises(ValueError, match="targets"):
        knn.ranks(np.array([[1]]), np.array([1]), np.array([0]))
    with pytest.raises(ValueError, match="training item ids"):
        VSKNN().fit(TINY, 5)


def test_set_params_rescores_a_fitted_index():
    rng = np.random.default_rng(8)
    n = 30
    data = random_sessions(rng, 200, n)
    batch = random_batch(rng, 20, 6, n)
    changed = (
        VSKNN(k=3, m=10).fit(data, n).set_params(k=7, m=40, weighting="log", score_weighting="div")
    )
    fresh = VSKNN(k=7, m=40, weighting="log", score_weighting="div").fit(data, n)
    np.testing.assert_array_equal(changed.scores(*batch[:2]), fresh.scores(*batch[:2]))
    with pytest.raises(ValueError, match="weighting"):
        changed.set_params(k=1, m=1, weighting="nope", score_weighting="same")


# --------------------------------------------------------------------------
# STAN
# --------------------------------------------------------------------------
LAMBDAS = [(2.5, None, 2.5), (None, 50.0, None), (1.0, 10.0, 0.5), (None, None, None)]


@pytest.mark.parametrize("lambdas", LAMBDAS)
def test_stan_kernel_matches_twin(lambdas):
    spw, snh, inh = lambdas
    rng = np.random.default_rng(3)
    n = 35
    data = random_sessions(rng, 300, n)
    batch = random_batch(rng, 60, 12, n)  # every length 1..12, length-1 sessions included
    for k, m in ((3, 15), (50, 10_000)):
        settings = dict(k=k, m=m, lambda_spw=spw, lambda_snh=snh, lambda_inh=inh)
        fast = STAN(**settings).fit(data, n)
        slow = STAN(**settings, backend="numpy").fit(data, n)
        s_fast, s_slow = fast.scores(*batch[:2]), slow.scores(*batch[:2])
        np.testing.assert_array_equal(s_fast, s_slow)  # same additions, same order
        np.testing.assert_array_equal(fast.ranks(*batch), target_ranks(s_slow, batch[2]))


def test_stan_hand_computed_cosine_and_tie():
    # [1, 3], no decays: the binary cosine. |s| = 2 distinct items.
    #   s0 {1,2,3}: 2 / (sqrt 2 sqrt 3)   s2 {3,5}: 1 / 2   s4 {1,5}: 1 / 2 (newer than s2)
    for backend in ("numba", "numpy"):
        stan = STAN(k=2, m=100, lambda_spw=None, lambda_inh=None, backend=backend).fit(TINY, 6)
        sessions, sim = stan.neighbours([1, 3])
        np.testing.assert_array_equal(sessions, [0, 4])
        a = 2 / np.sqrt(6)
        np.testing.assert_allclose(sim, [a, 0.5])
        scores = stan.scores(np.array([[1, 3]]), np.array([2]))[0]
        # items 1, 2, 3 from s0; 1 and 5 from s4; 4 and 6 by popularity (pop / 4 - 1)
        np.testing.assert_allclose(scores, [a + 0.5, a, a, -0.75, 0.5, -0.5])


def test_stan_hand_computed_item_positions():
    # lambda_inh = 1: s0 = 1 2 3 has its last shared click (3) at position 3, so
    # item 1 (position 1) weighs e^-2, item 2 e^-1, item 3 1; s4 = 1 5 shares 1 at position 1
    stan = STAN(k=2, m=100, lambda_spw=None, lambda_inh=1.0).fit(TINY, 6)
    scores = stan.scores(np.array([[1, 3]]), np.array([2]))[0]
    a = 2 / np.sqrt(6)
    e = np.exp(-1.0)
    np.testing.assert_allclose(scores[[0, 1, 2, 4]], [a * e**2 + 0.5, a * e, a, 0.5 * e])


def test_stan_hand_computed_recency_and_session_positions():
    # lambda_snh = 1 session: age(c) = 4 - c, so s0 x e^-4, s2 x e^-2, s4 x 1
    stan = STAN(k=3, m=100, lambda_spw=None, lambda_snh=1.0, lambda_inh=None).fit(TINY, 6)
    sessions, sim = stan.neighbours([1, 3])
    np.testing.assert_array_equal(sessions, [4, 2, 0])
    np.testing.assert_allclose(sim, [0.5, 0.5 * np.exp(-2), 2 / np.sqrt(6) * np.exp(-4)])
    # lambda_spw = 1: item 1 (one click back) weighs e^-1, item 3 weighs 1
    stan = STAN(k=3, m=100, lambda_spw=1.0, lambda_inh=None).fit(TINY, 6)
    _, sim = stan.neighbours([1, 3])
    w1 = np.exp(-1.0)
    norm = np.sqrt(w1**2 + 1)
    np.testing.assert_allclose(
        sim, [(w1 + 1) / (norm * np.sqrt(3)), 1 / (norm * np.sqrt(2)), w1 / (norm * np.sqrt(2))]
    )
    # m = 1 keeps only the most recent candidate
    sessions, _ = STAN(k=3, m=1).fit(TINY, 6).neighbours([1, 3])
    np.testing.assert_array_equal(sessions, [4])


def test_session_position_weights():
    w = session_position_weights(np.array([3, 1]), 4, 2.0)
    np.testing.assert_allclose(w, [[np.exp(-1), np.exp(-0.5), 1, 0], [1, 0, 0, 0]])


def test_stan_set_params_and_bad_settings():
    rng = np.random.default_rng(4)
    n = 20
    data = random_sessions(rng, 100, n)
    batch = random_batch(rng, 15, 5, n)
    settings = dict(k=5, m=30, lambda_spw=1.0, lambda_snh=20.0, lambda_inh=None)
    changed = STAN().fit(data, n).set_params(**settings)
    fresh = STAN(**settings).fit(data, n)
    np.testing.assert_array_equal(changed.scores(*batch[:2]), fresh.scores(*batch[:2]))
    with pytest.raises(ValueError, match="lambda_inh"):
        STAN(lambda_inh=0)
    with pytest.raises(ValueError, match="k and m"):
        STAN(m=0)


# --------------------------------------------------------------------------
# the tuning script's record
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["vsknn", "stan"])
def test_tuning_script_record(tmp_path, method):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    grid = ["--k", "5,40", "--m", "50"]
    grid += ["--weighting", "div"] if method == "vsknn" else ["--lambda-inh", "2.5,none"]
    grid += ["--lambda-snh", "none", "--lambda-spw", "2.5"] if method == "stan" else []
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, str(root / "benchmarks" / "tune_vsknn.py"), "--method", method]
    cmd += ["--dataset", "synthetic", "--out", str(tmp_path), *grid]
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    record = json.loads((tmp_path / f"{method}.json").read_text())
    rows = record["validation"]["points"]
    assert len(rows) == 2 * (4 if method == "vsknn" else 2)
    key = [(r["Recall@20"], r["MRR@20"]) for r in rows]
    assert record["validation"]["chosen"] == key.index(max(key))
    with np.load(tmp_path / record["ranks_file"]) as z:
        ranks = z["ranks"]
    assert len(ranks) == record["test_examples"]
    assert record["test"]["Recall@20"] == pytest.approx(np.mean(ranks <= 20))
    assert sum(g["count"] for g in record["by_length"].values()) == len(ranks)
