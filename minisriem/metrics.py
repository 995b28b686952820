"""Ranking metrics: Recall@K, MRR@K and NDCG@K, overall and by session length.

Everything starts from the rank of each example's true next item among all
``n`` items. The tie rule is the strict one::

    rank = 1 + number of items scored strictly higher than the target

so an item tied with the target does not count against it. Then, for one
example with rank ``r``:

    Recall@K  1 if r <= K else 0
    MRR@K     1 / r if r <= K else 0
    NDCG@K    1 / log2(r + 1) if r <= K else 0    (one relevant item, so IDCG = 1)

and a metric is the mean over examples. Values are fractions in [0, 1];
tables print them as percentages, as the paper does.
"""

import numpy as np

from minisriem.kernels import rank_topk

KS = (5, 10, 20)
"""The cut-offs reported by default."""

MAX_LENGTH = 10
"""Sessions of this length and longer form one group, labelled "10+"."""


def target_ranks(scores, targets):
    """Rank of each row's true item among all items, ties counted in its favour.

    Parameters
    ----------
    scores : float array of shape (B, n)
        Column ``j`` scores item ``j + 1`` (the model's layout).
    targets : int array of shape (B,)
        True item ids, 1..n.

    Returns
    -------
    ranks : int64 array of shape (B,), values in 1..n
    """
    ranks, _ = rank_topk(scores, np.asarray(targets) - 1, 1)
    return ranks


def model_ranks(model, item_seq, item_seq_len, targets, batch_size=512, stop=None):
    """Ranks a model gives the true next items, scored in batches.

    Parameters
    ----------
    model : SRIEM (its ``rank_topk``), or anything with ``scores(item_seq, item_seq_len)``
    item_seq : int array of shape (N, L), left-aligned, 0-padded
    item_seq_len : int array of shape (N,)
    targets : int array of shape (N,), item ids 1..n
    batch_size : int
    stop : callable or None
        Asked between batches; when it returns True the ranking is abandoned.

    Returns
    -------
    ranks : int64 array of shape (N,), or None when ``stop`` ended it early
    """
    n = len(targets)
    ranks = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch_size):
        if stop is not None and stop():
            return None
        end = min(start + batch_size, n)
        batch = item_seq[start:end], item_seq_len[start:end]
        if hasattr(model, "rank_topk"):  # SRIEM: scores into one reused (B, n) buffer
            ranks[start:end] = model.rank_topk(*batch, targets[start:end], k=1)[0]
        else:  # the baselines
            ranks[start:end] = target_ranks(model.scores(*batch), targets[start:end])
    return ranks


def recall_at_k(ranks, k):
    """Share of examples whose true item is in the top ``k``.

    Parameters
    ----------
    ranks : int array of shape (N,)
    k : int

    Returns
    -------
    float
    """
    ranks = np.asarray(ranks)
    return float(np.mean(ranks <= k)) if ranks.size else float("nan")


def mrr_at_k(ranks, k):
    """Mean reciprocal rank, counting 0 for an example ranked below ``k``.

    Parameters
    ----------
    ranks : int array of shape (N,)
    k : int

    Returns
    -------
    float
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return float("nan")
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))


def ndcg_at_k(ranks, k):
    """Normalised discounted cumulative gain with one relevant item.

    An example scores ``1 / log2(rank + 1)`` when ``rank <= k``, else 0.

    Parameters
    ----------
    ranks : int array of shape (N,)
    k : int

    Returns
    -------
    float
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return float("nan")
    return float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)))


def rank_metrics(ranks, ks=KS):
    """Recall, MRR and NDCG at every cut-off.

    Parameters
    ----------
    ranks : int array of shape (N,)
    ks : sequence of int

    Returns
    -------
    dict
        ``{"Recall@5": ..., "MRR@5": ..., "NDCG@5": ..., "Recall@10": ...}``,
        fractions in [0, 1] (NaN when there is no example).
    """
    out = {}
    for k in ks:
        out[f"Recall@{k}"] = recall_at_k(ranks, k)
        out[f"MRR@{k}"] = mrr_at_k(ranks, k)
        out[f"NDCG@{k}"] = ndcg_at_k(ranks, k)
    return out


def length_groups(lengths, max_length=MAX_LENGTH):
    """Group label of each example: its session length, or "10+" from ``max_length`` on.

    The length of an example is the true length of its prefix (the items
    before the target). Lengths of ``max_length`` and more share one group;
    with ``max_length = L = 10`` that group is also exactly the capped length
    the model sees, since it reads only the ``L`` most recent items.

    Parameters
    ----------
    lengths : int array of shape (N,), values >= 1
    max_length : int

    Returns
    -------
    labels : list of str, the group names in order: "1", ..., "9", "10+"
    group : int array of shape (N,), index into ``labels`` of each example
    """
    labels = [str(t) for t in range(1, max_length)] + [f"{max_length}+"]
    group = np.minimum(np.asarray(lengths), max_length) - 1
    return labels, group


def metrics_by_length(ranks, lengths, ks=KS, max_length=MAX_LENGTH):
    """:func:`rank_metrics` for each session length (the data of the paper's Fig. 2).

    Parameters
    ----------
    ranks : int array of shape (N,)
    lengths : int array of shape (N,)
        True prefix length of each example (see :func:`length_groups`).
    ks : sequence of int
    max_length : int

    Returns
    -------
    dict
        ``{"1": {"count": c, "Recall@5": ...}, ..., "10+": {...}}``; a group
        with no example has count 0 and metrics None.
    """
    ranks = np.asarray(ranks)
    labels, group = length_groups(lengths, max_length)
    out = {}
    for g, label in enumerate(labels):
        mine = ranks[group == g]
        metrics = rank_metrics(mine, ks)
        if not mine.size:  # None rather than NaN, which JSON cannot hold
            metrics = dict.fromkeys(metrics)
        out[label] = {"count": int(mine.size), **metrics}
    return out


def popularity_scores(train_targets, n_items):
    """The popularity baseline: every item scored by how often it is a training target.

    It recommends the same list to every session, the most frequent next
    items first; a model worth having beats it by a wide margin.

    Parameters
    ----------
    train_targets : int array of shape (N,), item ids 1..n
    n_items : int

    Returns
    -------
    scores : float32 array of shape (n,); entry ``j`` is item ``j + 1``'s count
    """
    counts = np.bincount(np.asarray(train_targets), minlength=n_items + 1)[1:]
    return counts.astype(np.float32)


def popularity_ranks(train_targets, test_targets, n_items):
    """Ranks the popularity baseline gives the true items (strict tie rule).

    Parameters
    ----------
    train_targets : int array of shape (N_train,)
    test_targets : int array of shape (N,)
    n_items : int

    Returns
    -------
    ranks : int64 array of shape (N,)
    """
    scores = popularity_scores(train_targets, n_items)  # n
    test_targets = np.asarray(test_targets)
    # rank = 1 + #{items with a strictly higher count}: count how many counts
    # exceed each target's count with one sort instead of an (N, n) matrix.
    ordered = np.sort(scores)
    higher = len(ordered) - np.searchsorted(ordered, scores[test_targets - 1], side="right")
    return (1 + higher).astype(np.int64)


def format_metrics_table(rows, ks=KS, names=("Recall", "MRR", "NDCG")):
    """A plain-text table of metrics in percent, one row per named result.

    Parameters
    ----------
    rows : list of (str, dict)
        A label and a dict as returned by :func:`rank_metrics` (a ``"count"``
        entry, when present, becomes an "examples" column).
    ks : sequence of int
    names : sequence of str, the metrics to show

    Returns
    -------
    str
    """
    columns = [f"{name}@{k}" for k in ks for name in names]
    has_count = any("count" in r for _, r in rows)
    width = max([len(label) for label, _ in rows] + [5])
    head = f"{'':<{width}}" + ("  examples" if has_count else "")
    head += "".join(f"  {c:>9}" for c in columns)
    lines = [head]
    for label, r in rows:
        line = f"{label:<{width}}"
        if has_count:
            line += f"  {r.get('count', ''):>8}"
        for c in columns:
            value = r.get(c)
            missing = value is None or np.isnan(value)
            line += f"  {'-':>9}" if missing else f"  {100 * value:9.2f}"
        lines.append(line)
    return "\n".join(lines)
