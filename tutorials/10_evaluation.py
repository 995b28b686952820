"""Step 10: evaluation: Recall@K and MRR@K, the tie rule, a worked example.

Run: python tutorials/10_evaluation.py
Time: about 5 s (CPU time on one thread, measured; about the wall time on an
idle machine); quick mode (MINISRIEM_TUTORIAL_QUICK=1) about 2 s. To run
faster: quick mode; keep the default of one thread on a busy machine.

The metrics
-----------
For each test example the model scores all ``n`` items (eq. 8) and we look
at where the true next item lands. Its *rank* is

    rank = 1 + number of items scored strictly higher than the target

Then, with the paper's ``K = 20``,

    Recall@K = share of examples with rank <= K        (is it in the top K?)
    MRR@K    = mean of 1/rank, counting 0 when rank > K (how high is it?)

MRR rewards rank 1 with 1, rank 2 with 1/2, rank 20 with 1/20. Both are
shares, between 0 and 1; tables (the paper's, ``python -m minisriem.train``'s,
and the ones below) print them in percent, 100 times the share.

The tie rule
------------
If another item has *exactly* the target's score, is it ahead or behind? Our
rule (``minisriem.metrics``) counts only strictly higher scores, so ties go
in the target's favour: the rank is the best position the target could get.
Other choices exist: counting ties against the target (the worst position),
or breaking them at random, as PyTorch's ``topk`` in the authors' code does in
effect. For a trained model exact ties in float32 are rare and the choice
hardly matters, but a rule must be stated: a model that gives every item the
same score would get rank 1 everywhere, Recall@20 = 100%, under ours, and
0% under the pessimistic one. The code below measures how often ties happen.

Worked example
--------------
Five items, scores ``[2.0, 0.5, 2.0, 3.0, 1.0]`` (column j is item j+1), and
the true next item is item 3 (column 2, score 2.0). Only column 3 (3.0) is
strictly higher; column 0 ties and does not count: rank = 2. So Recall@1 = 0,
Recall@2 = 1, MRR@20 = 1/2. Over four examples with ranks 1, 3, 25 and 2:
Recall@20 = 3/4 = 0.75 and MRR@20 = (1 + 1/3 + 0 + 1/2) / 4 = 0.4583.

Reference point: a model is only worth its cost if it beats *popularity*,
which recommends the items most often clicked next in training, the same
list to every session. On the synthetic data every intent is equally
popular, so popularity is weak by design.

Reading the figure by length: on the synthetic data a prefix of length 1 is
always a clean click (step 1: the first click is never noise), a short prefix
holds few clicks to locate the session's centre with, and a long one holds
more clicks but more noise; each length mixes these effects differently.
"""

import common
import numpy as np
from checks import check_recall_mrr

from data_tools import load_dataset
from minisriem.metrics import (
    metrics_by_length,
    model_ranks,
    mrr_at_k,
    popularity_ranks,
    recall_at_k,
    target_ranks,
)
from minisriem.model import SRIEM


def main():
    common.heading("The worked example")
    scores = np.array([[2.0, 0.5, 2.0, 3.0, 1.0]])
    rank = target_ranks(scores, np.array([3]))  # target: item 3 = column 2
    print("scores", scores[0], "target item 3 -> rank", rank[0])
    assert rank[0] == 2
    ranks = np.array([1, 3, 25, 2])
    r20, m20 = recall_at_k(ranks, 20), mrr_at_k(ranks, 20)
    print(f"ranks {ranks}: Recall@20 = {r20:.4f}, MRR@20 = {m20:.4f}")
    print(f"RESULT worked recall20={r20:.4f} mrr20={m20:.4f}")

    common.heading("Three tie rules on a constant scorer")
    flat = np.zeros((4, 50), dtype=np.float32)
    targets = np.array([1, 7, 20, 50])
    t = flat[np.arange(4), targets - 1][:, None]
    optimistic = 1 + (flat > t).sum(axis=1)
    pessimistic = (flat >= t).sum(axis=1)
    print(
        f"ranks: strictly higher (ours) {optimistic}, higher or equal {pessimistic}, "
        f"random tie-break on average {(optimistic + pessimistic) / 2}"
    )

    common.heading("A briefly trained model on the synthetic data")
    ds = load_dataset("synthetic")
    train = ds.train.padded(L=10)
    test_seq, test_len, test_tgt = ds.test.padded(L=10)
    n = common.quick(len(test_tgt), 1000)
    test_seq, test_len, test_tgt = test_seq[:n], test_len[:n], test_tgt[:n]
    model = SRIEM(ds.n_items, d=200, l=100, variant="official", seed=0)
    common.train_model(model, *train, epochs=1, max_steps=common.quick(None, 25))
    ranks = model_ranks(model, test_seq, test_len, test_tgt)
    pop = popularity_ranks(train[2], test_tgt, ds.n_items)
    for name, r in (("popularity", pop), ("SR-IEM", ranks)):
        print(
            f"{name:10s} Recall@20 {100 * recall_at_k(r, 20):6.2f}   "
            f"MRR@20 {100 * mrr_at_k(r, 20):6.2f}"
        )
    scores = model.scores(test_seq[:500], test_len[:500])
    tgt_score = scores[np.arange(len(scores)), test_tgt[:500] - 1][:, None]
    ties = ((scores == tgt_score).sum(axis=1) - 1).astype(bool)
    print(f"examples whose target ties with another item: {ties.sum()} of {len(ties)}")

    common.heading("By session length (the paper's Fig. 2)")
    by_len = metrics_by_length(ranks, test_len)
    pop_len = metrics_by_length(pop, test_len)
    for label, row in by_len.items():
        if row["count"]:
            print(
                f"length {label:>3s}: {row['count']:5d} examples, Recall@20 "
                f"{100 * row['recall@20']:6.2f}, MRR@20 {100 * row['mrr@20']:6.2f}"
            )

    plt = common.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8))
    labels = [k for k, v in by_len.items() if v["count"]]
    x = np.arange(len(labels))
    for ax, (metric, name) in zip(
        axes, (("recall@20", "Recall@20"), ("mrr@20", "MRR@20")), strict=True
    ):
        ax.plot(x, [100 * by_len[k][metric] for k in labels], "o-", label="SR-IEM")
        ax.plot(x, [100 * pop_len[k][metric] for k in labels], "s--", label="popularity")
        ax.set_xticks(x, labels)
        ax.set_xlabel("session length (items before the target)")
        ax.set_ylabel(f"{name} (%)")
    axes[0].legend()
    fig.suptitle("Test metrics by session length, synthetic data")
    common.save_figure(fig, "10_by_length.png")


# ==========================================================================
# EXERCISE
# Write ``recall_mrr(scores, target_idx, k) -> (recall, mrr)``: scores is
# (B, n), target_idx the (B,) target columns (item id - 1); return the batch
# means of Recall@k and MRR@k under the strict tie rule.
# Run this file to check it, or from the repository root:
#   python -c "from tutorials.checks import check_recall_mrr as c; \
#              from mycode import recall_mrr; c(recall_mrr)"
# ==========================================================================
def my_recall_mrr(scores, target_idx, k):
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_recall_mrr, my_recall_mrr)
