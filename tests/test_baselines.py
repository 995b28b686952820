"""S-POP and Item-KNN against hand-computed cases and slow dense references."""

import numpy as np
import pytest

from data_tools.split import augment, split_validation
from minisriem.baselines import ItemKNN, SPop, training_sessions


def random_sessions(rng, S=60, n=25, max_len=9):
    """S random sessions of 2..max_len clicks over items 1..n, repeats allowed."""
    lengths = rng.integers(2, max_len + 1, S)
    offsets = np.zeros(S + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = rng.integers(1, n + 1, offsets[-1]).astype(np.int32)
    return offsets, items


def dense_similarity(offsets, items, n, lmbd=0.0):
    """The slow reference: a dense session-by-item incidence matrix, then cosine."""
    X = np.zeros((len(offsets) - 1, n + 1))
    for s in range(len(offsets) - 1):
        X[s, items[offsets[s] : offsets[s + 1]]] = 1  # a session counts once per item
    co = X.T @ X  # (n+1, n+1): |S_i & S_j|
    support = np.diag(co).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = co / np.sqrt(np.outer(support + lmbd, support + lmbd))
    sim = np.nan_to_num(sim)
    np.fill_diagonal(sim, 0)
    return sim[1:, 1:]  # (n, n), item j+1 at index j


def test_training_sessions_undo_prefix_augmentation():
    rng = np.random.default_rng(0)
    offsets, items = random_sessions(rng)
    split = augment(offsets, items)
    got_offsets, got_items = training_sessions(split)
    np.testing.assert_array_equal(got_offsets, offsets)
    np.testing.assert_array_equal(got_items, items)
    # also after a validation split, and whatever the order of the examples
    train, valid = split_validation(split, 0.2)
    shuffled = train.subset(rng.permutation(len(train)))
    o, it = training_sessions(shuffled)
    n_train = len(np.unique(train.session))
    np.testing.assert_array_equal(o, offsets[: n_train + 1])
    np.testing.assert_array_equal(it, items[: offsets[n_train]])
    # CSR input passes through
    assert training_sessions((offsets, items))[1] is not None


def test_spop_by_hand():
    # training clicks: item 1 x3, item 2 x1, item 3 x2, item 4 x0
    offsets, items = np.array([0, 3, 6]), np.array([1, 1, 3, 2, 3, 1])
    spop = SPop().fit((offsets, items), 4)
    np.testing.assert_array_equal(spop.popularity, [3, 1, 2, 0])
    scores = spop.scores(np.array([[2, 4, 4], [4, 0, 0], [3, 2, 0]]), np.array([3, 1, 2]))
    order = np.argsort(-scores, axis=1, kind="stable") + 1
    np.testing.assert_array_equal(order[0], [4, 2, 1, 3])  # 4 twice, 2 once, then popularity
    np.testing.assert_array_equal(order[1], [4, 1, 3, 2])
    np.testing.assert_array_equal(order[2], [3, 2, 1, 4])  # tie in count: popularity decides
    # padding is ignored, whatever id it holds
    again = spop.scores(np.array([[2, 4, 4], [4, 3, 3], [3, 2, 1]]), np.array([3, 1, 2]))
    np.testing.assert_array_equal(again, scores)


@pytest.mark.parametrize("lmbd", [0.0, 20.0])
def test_itemknn_matches_dense_reference(lmbd):
    rng = np.random.default_rng(1)
    n = 25
    offsets, items = random_sessions(rng, n=n)
    # tiny blocks: the block-wise reduction must give the same counts as one block
    knn = ItemKNN(lmbd=lmbd, fallback=None, block_pairs=50).fit((offsets, items), n)
    one_block = ItemKNN(lmbd=lmbd, fallback=None).fit((offsets, items), n)
    np.testing.assert_array_equal(knn.sim, one_block.sim)
    want = dense_similarity(offsets, items, n, lmbd)
    item_seq = np.array([[3, 7, 0], [5, 0, 0], [1, 2, 9]])
    item_seq_len = np.array([2, 1, 3])
    scores = knn.scores(item_seq, item_seq_len)
    np.testing.assert_allclose(scores, want[[6, 4, 8]], rtol=1e-12)
    items_of, sims = knn.neighbours(7)
    assert np.all(np.diff(sims) <= 0) and 7 not in items_of


def test_itemknn_fallback_ranks_non_neighbours_by_popularity_after_neighbours():
    rng = np.random.default_rng(2)
    n = 30
    offsets, items = random_sessions(rng, S=15, n=n, max_len=4)
    knn = ItemKNN().fit((offsets, items), n)
    plain = ItemKNN(fallback=None).fit((offsets, items), n)
    item_seq, item_seq_len = np.array([[items[0]]]), np.array([1])
    s, p = knn.scores(item_seq, item_seq_len)[0], plain.scores(item_seq, item_seq_len)[0]
    neighbour = p > 0
    assert neighbour.any() and (~neighbour).any()
    np.testing.assert_array_equal(s[neighbour], p[neighbour])
    assert s[~neighbour].max() < 0 <= s[neighbour].min()
    pop = np.bincount(items, minlength=n + 1)[1:]
    rest = np.flatnonzero(~neighbour)
    assert np.all(np.diff(pop[rest[np.argsort(-s[rest], kind="stable")]]) <= 0)


def test_itemknn_top_k_keeps_ties():
    # item 1 shares one session with each of 2, 3, 4 (equal similarity) and two with 5
    sessions = [[1, 2], [1, 3], [1, 4], [1, 5], [1, 5]]
    offsets = np.cumsum([0] + [len(s) for s in sessions])
    items = np.concatenate(sessions)
    full = ItemKNN(fallback=None).fit((offsets, items), 5)
    top2 = ItemKNN(k=2, fallback=None).fit((offsets, items), 5)
    top1 = ItemKNN(k=1, fallback=None).fit((offsets, items), 5)
    assert set(full.neighbours(1)[0]) == {2, 3, 4, 5}
    assert set(top2.neighbours(1)[0]) == {2, 3, 4, 5}  # 2, 3, 4 tie for 2nd place
    assert set(top1.neighbours(1)[0]) == {5}


def test_baselines_score_matrix_layout():
    rng = np.random.default_rng(3)
    offsets, items = random_sessions(rng, n=12)
    item_seq, item_seq_len = np.array([[4, 0], [2, 6]]), np.array([1, 2])
    for rec in (SPop(), ItemKNN()):
        rec.fit((offsets, items), 12)
        scores = rec.scores(item_seq, item_seq_len)
        assert scores.shape == (2, 12) and scores.dtype == np.float64
        with pytest.raises(ValueError):
            rec.scores(np.array([[13, 0]]), np.array([1]))
