"""Ranking metrics on small arrays computed by hand."""

import math

import numpy as np
import pytest

from minisriem.metrics import (
    format_metrics_table,
    length_groups,
    metrics_by_length,
    model_ranks,
    mrr_at_k,
    ndcg_at_k,
    popularity_ranks,
    popularity_scores,
    ranking_metrics,
    recall_at_k,
    record_names,
    target_ranks,
)


def test_rank_counts_only_strictly_higher_scores():
    scores = np.array(
        [
            [0.1, 0.5, 0.5, 0.2],  # target item 3 (column 2) ties with column 1: rank 1
            [0.9, 0.1, 0.3, 0.3],  # target item 3: only 0.9 is higher: rank 2
            [0.0, 0.0, 0.0, 0.0],  # all tied: rank 1
            [0.4, 0.3, 0.2, 0.1],  # target item 4 is last: rank 4
        ],
        dtype=np.float32,
    )
    ranks = target_ranks(scores, np.array([3, 3, 1, 4]))
    np.testing.assert_array_equal(ranks, [1, 2, 1, 4])


def test_recall_mrr_ndcg_by_hand():
    ranks = np.array([1, 3, 21, 20])
    assert recall_at_k(ranks, 20) == 3 / 4
    assert recall_at_k(ranks, 5) == 2 / 4
    assert mrr_at_k(ranks, 20) == pytest.approx((1 + 1 / 3 + 0 + 1 / 20) / 4)
    assert mrr_at_k(ranks, 2) == pytest.approx(1 / 4)  # rank 3 is above K = 2: counts 0
    assert ndcg_at_k(ranks, 20) == pytest.approx((1 + 1 / 2 + 0 + 1 / math.log2(21)) / 4)
    assert ndcg_at_k(ranks, 1) == pytest.approx(1 / 4)


def test_rank_metrics_keys_and_values():
    m = record_names(ranking_metrics(np.array([1, 2]), ks=(1, 5)))
    assert set(m) == {"Recall@1", "MRR@1", "NDCG@1", "Recall@5", "MRR@5", "NDCG@5"}
    assert m["Recall@1"] == 0.5 and m["Recall@5"] == 1.0
    assert m["MRR@5"] == pytest.approx(0.75)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_length_groups_cap_at_ten_plus():
    labels, group = length_groups(np.array([1, 2, 9, 10, 15, 69]))
    assert labels == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10+"]
    assert [labels[g] for g in group] == ["1", "2", "9", "10+", "10+", "10+"]


def test_metrics_by_length():
    ranks = np.array([1, 30, 2, 4])
    lengths = np.array([1, 1, 12, 10])
    by = {g: record_names(m) for g, m in metrics_by_length(ranks, lengths, ks=(20,)).items()}
    assert by["1"]["count"] == 2 and by["1"]["Recall@20"] == 0.5 and by["1"]["MRR@20"] == 0.5
    assert by["10+"]["count"] == 2 and by["10+"]["MRR@20"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert by["5"] == {"count": 0, "Recall@20": None, "MRR@20": None, "NDCG@20": None}
    assert sum(g["count"] for g in by.values()) == 4


def test_popularity_baseline_by_hand():
    train_targets = np.array([1, 1, 2, 3, 3, 3])  # counts: item 1: 2, 2: 1, 3: 3, 4: 0
    np.testing.assert_array_equal(popularity_scores(train_targets, 4), [2, 1, 3, 0])
    ranks = popularity_ranks(train_targets, np.array([3, 1, 4, 2]), 4)
    np.testing.assert_array_equal(ranks, [1, 2, 4, 3])


def test_popularity_ranks_agree_with_the_general_rule():
    rng = np.random.default_rng(0)
    train_targets = rng.integers(1, 30, size=200)
    test_targets = rng.integers(1, 30, size=50)
    scores = np.tile(popularity_scores(train_targets, 29), (50, 1))
    np.testing.assert_array_equal(
        popularity_ranks(train_targets, test_targets, 29), target_ranks(scores, test_targets)
    )


class _FixedScores:
    """A stand-in model whose scores are a given matrix, row by row."""

    def __init__(self, scores):
        self.all_scores = scores

    def scores(self, item_seq, item_seq_len):
        return self.all_scores[item_seq[:, 0]]


def test_model_ranks_batches_like_one_call():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(7, 12)).astype(np.float32)
    item_seq = np.arange(7)[:, None]  # row index smuggled in as the "item"
    targets = rng.integers(1, 13, size=7)
    model = _FixedScores(scores)
    expected = target_ranks(scores, targets)
    got = model_ranks(model, item_seq, np.ones(7, int), targets, batch_size=3)
    np.testing.assert_array_equal(got, expected)
    assert model_ranks(model, item_seq, np.ones(7, int), targets, 3, stop=lambda: True) is None


def test_table_shows_percent_and_dashes():
    text = format_metrics_table(
        [("a", {"count": 3, "Recall@20": 0.5, "MRR@20": 0.25}), ("b", {"count": 0})],
        ks=(20,),
        names=("Recall", "MRR"),
    )
    assert "50.00" in text and "25.00" in text and "-" in text.splitlines()[2]


# ----------------------------------------------------------------------
# The metrics of RecBole and session-rec, on a case computed by hand


def hand_case():
    """Five items; training targets 1,1,1,2,2,3 and prefixes holding items 1 and 4.

    popularity (times a training target): item 1: 3, item 2: 2, item 3: 1, items 4, 5: 0
    catalogue (seen in training): {1, 2, 3, 4}, C = 4; head = ceil(4 / 5) = 1 item: {1}
    """
    from minisriem.metrics import catalogue_mask, head_mask, item_popularity

    train_targets = np.array([1, 1, 1, 2, 2, 3])
    train_items = np.array([1, 4, 4, 1])
    popularity = item_popularity(train_targets, 5)
    catalogue = catalogue_mask(train_items, train_targets, 5)
    return popularity, catalogue, head_mask(popularity, catalogue)


def test_popularity_catalogue_and_head_by_hand():
    popularity, catalogue, head = hand_case()
    assert popularity.tolist() == [0, 3, 2, 1, 0, 0]
    assert catalogue.tolist() == [False, True, True, True, True, False]
    assert head.tolist() == [False, True, False, False, False, False]


def test_head_is_a_fifth_rounded_up_ties_to_the_lower_id():
    from minisriem.metrics import head_mask

    popularity = np.array([0, 5, 7, 7, 1, 1, 1, 0, 0, 0, 9, 0])  # 11 items
    catalogue = np.ones(12, dtype=bool)
    catalogue[0] = False
    # ceil(11 / 5) = 3: item 10 (9), then items 2 and 3 (7 each)
    assert np.flatnonzero(head_mask(popularity, catalogue)).tolist() == [2, 3, 10]
    catalogue[3] = False  # 10 items: ceil(10 / 5) = 2
    assert np.flatnonzero(head_mask(popularity, catalogue)).tolist() == [2, 10]


def test_list_metrics_by_hand():
    from minisriem.metrics import (
        avg_popularity_at_k,
        coverage_at_k,
        evaluation_metrics,
        hit_at_k,
        tail_share_at_k,
    )

    popularity, catalogue, head = hand_case()
    topk = np.array([[1, 2, 5], [1, 3, 2], [4, 1, 2]])  # three examples' top 3
    ranks = np.array([2, 1, 7])
    # top 1: items {1, 4}; top 2: {1, 2, 3, 4}; item 5 is outside the catalogue
    assert coverage_at_k(topk, 1, catalogue) == 2 / 4
    assert coverage_at_k(topk, 2, catalogue) == 4 / 4
    # popularities of the top 2: (3 + 2) / 2, (3 + 1) / 2, (0 + 3) / 2
    assert avg_popularity_at_k(topk, 2, popularity) == pytest.approx((2.5 + 2 + 1.5) / 3)
    assert avg_popularity_at_k(topk, 3, popularity) == pytest.approx((5 / 3 + 2 + 5 / 3) / 3)
    # only item 1 is in the head; in the top 3: 2/3, 2/3, 2/3 outside it; top 1: 0, 0, 1
    assert tail_share_at_k(topk, 3, head) == pytest.approx(2 / 3)
    assert tail_share_at_k(topk, 1, head) == pytest.approx(1 / 3)
    assert hit_at_k(ranks, 1) == recall_at_k(ranks, 1) == 1 / 3
    m = evaluation_metrics(ranks, topk, popularity, catalogue, ks=(1, 3))
    assert set(m) == {
        f"{name}@{k}"
        for name in ("hit", "recall", "mrr", "ndcg", "coverage", "avg_popularity", "tail_share")
        for k in (1, 3)
    }
    assert m["hit@3"] == m["recall@3"] == 2 / 3
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1) / 3)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1) / 3)
    assert m["coverage@3"] == 1.0 and m["tail_share@1"] == pytest.approx(1 / 3)


def test_model_topk_matches_the_model_and_the_baselines_path():
    from minisriem.kernels import rank_topk_numpy
    from minisriem.metrics import model_topk

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(7, 12)).astype(np.float32)

    class Fixed:  # a "baseline": scores only
        def scores(self, item_seq, item_seq_len):
            return scores[item_seq[:, 0]]

    item_seq = np.arange(7, dtype=np.int32)[:, None]
    targets = rng.integers(1, 13, size=7)
    ranks, topk = model_topk(Fixed(), item_seq, np.ones(7, np.int32), targets, 4, batch_size=3)
    want_ranks, want_top = rank_topk_numpy(scores, targets - 1, 4)
    np.testing.assert_array_equal(ranks, want_ranks)
    np.testing.assert_array_equal(topk, want_top + 1)


def test_popularity_topk_is_the_most_frequent_targets_for_everyone():
    from minisriem.metrics import popularity_topk

    top = popularity_topk(np.array([3, 3, 1, 2, 2, 5]), 5, n_examples=4, k=3)
    assert top.shape == (4, 3)
    assert top[0].tolist() == [2, 3, 1]  # counts 2, 2, 1, 1: ties to the lower id


def test_old_metric_names_are_upgraded():
    from minisriem.metrics import upgrade_metric_names

    old = {"Recall@20": 0.5, "MRR@20": 0.2, "NDCG@20": 0.3, "count": 4}
    assert upgrade_metric_names(old) == {
        "hit@20": 0.5,
        "recall@20": 0.5,
        "mrr@20": 0.2,
        "ndcg@20": 0.3,
        "count": 4,
    }
