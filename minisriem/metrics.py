"""Ranking metrics: Recall@K, MRR@K and NDCG@K, overall and by session length,
and the list metrics the field's frameworks print (coverage, popularity, tail share).

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

With one true next item per example, HitRate@K (RecBole's ``hit``,
session-rec's ``HitRate``) is the same number as Recall@K (SR-GNN's
``Recall@20``, its paper's ``P@20``). The list metrics look at the top-K
items recommended to each example (``topk``, best first):

    coverage@K        share of the catalogue (the items seen in the training
                      examples, in a prefix or as a target) that appears in
                      some example's top K
    avg_popularity@K  mean over examples of the mean popularity of its top K;
                      an item's popularity is its number of occurrences as
                      the next item of a training example (RecBole's item
                      counter on the pre-split form: a count, not a fraction)
    tail_share@K      mean over examples of the share of its top K outside
                      the head: the most popular 20% of the catalogue
                      (ceil(C / 5) items, ties by the lower id)
"""

import numpy as np

from minisriem.kernels import rank_topk

KS = (5, 10, 20)
"""The cut-offs reported by default."""

HEAD_FIFTHS = 1
"""The head is the most popular ``HEAD_FIFTHS / 5`` of the catalogue (20%)."""

EVALUATION_METRICS = (
    "hit",
    "recall",
    "mrr",
    "ndcg",
    "coverage",
    "avg_popularity",
    "tail_share",
)
"""The metric names of :func:`evaluation_metrics`, in table order."""

POPULARITY_RULE = (
    "popularity = occurrences as the next item of a training example; catalogue = items "
    "seen in the training examples; head = the most popular ceil(C / 5) catalogue items"
)

OLD_NAMES = {"Recall": ("hit", "recall"), "MRR": ("mrr",), "NDCG": ("ndcg",)}
"""Keys of evaluation files written before the list metrics, and their new names."""

RECORD_NAMES = {"recall": "Recall", "mrr": "MRR", "ndcg": "NDCG"}
"""The names the training records keep (see :func:`record_names`)."""

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
    ranked = model_topk(model, item_seq, item_seq_len, targets, 1, batch_size, stop)
    return None if ranked is None else ranked[0]


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
    """:func:`ranking_metrics` for each session length (the data of the paper's Fig. 2).

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
        ``{"1": {"count": c, "hit@5": ..., "recall@5": ...}, ..., "10+": {...}}``;
        a group with no example has count 0 and metrics None.
    """
    ranks = np.asarray(ranks)
    labels, group = length_groups(lengths, max_length)
    out = {}
    for g, label in enumerate(labels):
        mine = ranks[group == g]
        values = ranking_metrics(mine, ks)
        if not mine.size:  # None rather than NaN, which JSON cannot hold
            values = dict.fromkeys(values)
        out[label] = {"count": int(mine.size), **values}
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
        A label and a dict of metrics keyed ``name@K`` (a ``"count"`` entry,
        when present, becomes an "examples" column).
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


# ----------------------------------------------------------------------
# The metrics of RecBole and session-rec: hit rate and the top-K list metrics


def hit_at_k(ranks, k):
    """HitRate@K: share of examples whose true item is in the top ``k``.

    With one true item per example this is :func:`recall_at_k` (the same
    number under either name).

    Parameters
    ----------
    ranks : int array of shape (N,)
    k : int

    Returns
    -------
    float
    """
    return recall_at_k(ranks, k)


def model_topk(model, item_seq, item_seq_len, targets, k, batch_size=512, stop=None):
    """Ranks of the true next items and each example's top ``k`` items, in batches.

    Parameters
    ----------
    model : SRIEM (its ``rank_topk``), or anything with ``scores(item_seq, item_seq_len)``
    item_seq : int array of shape (N, L), left-aligned, 0-padded
    item_seq_len : int array of shape (N,)
    targets : int array of shape (N,), item ids 1..n
    k : int, at most the number of items
    batch_size : int
    stop : callable or None
        Asked between batches; when it returns True the ranking is abandoned.

    Returns
    -------
    ranks : int64 array of shape (N,), strict tie rule
    topk : int64 array of shape (N, k), item ids 1..n, best first, ties by the lower id
    (None instead of the pair when ``stop`` ended it early)
    """
    n = len(targets)
    ranks = np.empty(n, dtype=np.int64)
    topk = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, batch_size):
        if stop is not None and stop():
            return None
        end = min(start + batch_size, n)
        batch = item_seq[start:end], item_seq_len[start:end]
        if hasattr(model, "rank_topk"):  # SRIEM: scores into one reused (B, n) buffer
            ranks[start:end], topk[start:end] = model.rank_topk(*batch, targets[start:end], k=k)
        else:  # the baselines
            r, top = rank_topk(model.scores(*batch), np.asarray(targets[start:end]) - 1, k)
            ranks[start:end], topk[start:end] = r, top + 1
    return ranks, topk


def popularity_topk(train_targets, n_items, n_examples, k):
    """The popularity baseline's top ``k`` (the same list for every example).

    Parameters
    ----------
    train_targets : int array of shape (N_train,)
    n_items : int
    n_examples : int
    k : int

    Returns
    -------
    topk : int64 array of shape (n_examples, k), a read-only broadcast view;
        the most frequent training targets first, ties by the lower id
    """
    scores = popularity_scores(train_targets, n_items)  # n
    best = np.argsort(-scores, kind="stable")[:k] + 1  # k
    return np.broadcast_to(best.astype(np.int64), (n_examples, len(best)))


def item_popularity(train_targets, n_items):
    """Each item's popularity: how often it is the next item of a training example.

    Parameters
    ----------
    train_targets : int array of shape (N_train,), item ids 1..n
    n_items : int

    Returns
    -------
    popularity : int64 array of shape (n + 1,); entry ``i`` is item ``i``'s count
        (entry 0, the padding id, is 0)
    """
    return np.bincount(np.asarray(train_targets), minlength=n_items + 1).astype(np.int64)


def catalogue_mask(train_items, train_targets, n_items):
    """The catalogue: items seen in the training examples, in a prefix or as a target.

    Parameters
    ----------
    train_items : int array of shape (nnz,), the prefix items (CSR ``items``)
    train_targets : int array of shape (N_train,)
    n_items : int

    Returns
    -------
    seen : bool array of shape (n + 1,); ``seen[i]`` when item ``i`` is in the catalogue
    """
    seen = np.zeros(n_items + 1, dtype=bool)
    seen[np.asarray(train_items)] = True
    seen[np.asarray(train_targets)] = True
    seen[0] = False
    return seen


def head_mask(popularity, catalogue):
    """The head: the most popular ``ceil(C / 5)`` of the ``C`` catalogue items.

    Ties in popularity go to the lower item id.

    Parameters
    ----------
    popularity : int array of shape (n + 1,)
    catalogue : bool array of shape (n + 1,)

    Returns
    -------
    head : bool array of shape (n + 1,)
    """
    members = np.flatnonzero(catalogue)  # increasing ids
    size = -(-len(members) * HEAD_FIFTHS // 5)  # ceil, in integers
    by_popularity = members[np.argsort(-popularity[members], kind="stable")]
    head = np.zeros(len(popularity), dtype=bool)
    head[by_popularity[:size]] = True
    return head


def coverage_at_k(topk, k, catalogue):
    """Share of the catalogue recommended in at least one example's top ``k``.

    Recommended items outside the catalogue (never seen in training) do not count.

    Parameters
    ----------
    topk : int array of shape (N, >= k), item ids, best first
    k : int
    catalogue : bool array of shape (n + 1,)

    Returns
    -------
    float
    """
    size = int(catalogue.sum())
    if not size or not len(topk):
        return float("nan")
    shown = np.zeros(len(catalogue), dtype=bool)
    shown[np.asarray(topk)[:, :k]] = True
    return float((shown & catalogue).sum() / size)


def avg_popularity_at_k(topk, k, popularity):
    """Mean over examples of the mean popularity of the top ``k`` items (a count).

    Parameters
    ----------
    topk : int array of shape (N, >= k)
    k : int
    popularity : int array of shape (n + 1,)

    Returns
    -------
    float
    """
    if not len(topk):
        return float("nan")
    return float(popularity[np.asarray(topk)[:, :k]].mean())


def tail_share_at_k(topk, k, head):
    """Mean over examples of the share of the top ``k`` items outside the head.

    Parameters
    ----------
    topk : int array of shape (N, >= k)
    k : int
    head : bool array of shape (n + 1,), from :func:`head_mask`

    Returns
    -------
    float
    """
    if not len(topk):
        return float("nan")
    return float(1.0 - head[np.asarray(topk)[:, :k]].mean())


def ranking_metrics(ranks, ks=KS):
    """hit, recall, MRR and NDCG at every cut-off, under the new names.

    Parameters
    ----------
    ranks : int array of shape (N,)
    ks : sequence of int

    Returns
    -------
    dict
        ``{"hit@5": ..., "recall@5": ..., "mrr@5": ..., "ndcg@5": ..., "hit@10": ...}``
    """
    out = {}
    for k in ks:
        out[f"hit@{k}"] = hit_at_k(ranks, k)
        out[f"recall@{k}"] = recall_at_k(ranks, k)
        out[f"mrr@{k}"] = mrr_at_k(ranks, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
    return out


def evaluation_metrics(ranks, topk, popularity, catalogue, ks=KS):
    """Every metric of :data:`EVALUATION_METRICS` at every cut-off.

    Parameters
    ----------
    ranks : int array of shape (N,)
    topk : int array of shape (N, max(ks)), item ids, best first
    popularity : int array of shape (n + 1,), from :func:`item_popularity`
    catalogue : bool array of shape (n + 1,), from :func:`catalogue_mask`
    ks : sequence of int

    Returns
    -------
    dict
        ``{"hit@5": ..., "recall@5": ..., "mrr@5": ..., "ndcg@5": ...,
        "coverage@5": ..., "avg_popularity@5": ..., "tail_share@5": ..., ...}``;
        all fractions except ``avg_popularity`` (NaN when there is no example).
    """
    head = head_mask(popularity, catalogue)
    out = {}
    for k in ks:
        out.update(ranking_metrics(ranks, (k,)))
        out[f"coverage@{k}"] = coverage_at_k(topk, k, catalogue)
        out[f"avg_popularity@{k}"] = avg_popularity_at_k(topk, k, popularity)
        out[f"tail_share@{k}"] = tail_share_at_k(topk, k, head)
    return out


def record_names(metrics):
    """``metrics`` under the names the training records keep: ``Recall@K``, ``MRR@K``, ``NDCG@K``.

    The epoch records (``metrics.jsonl``, the meta of ``model.npz``, the
    reproduction's state) were written with these names before the list
    metrics existed, and keep them so that old run directories keep loading.
    ``hit@K`` (the same number as ``recall@K``) and other metrics are left
    out; keys that name no metric (no ``@``, such as ``count``) are kept.
    :func:`upgrade_metric_names` goes the other way.

    Parameters
    ----------
    metrics : dict, e.g. from :func:`ranking_metrics`

    Returns
    -------
    dict
    """
    out = {}
    for key, value in metrics.items():
        name, at, k = key.partition("@")
        if not at:
            out[key] = value
        elif name in RECORD_NAMES:
            out[f"{RECORD_NAMES[name]}@{k}"] = value
    return out


def upgrade_metric_names(metrics):
    """Rename the keys of an older evaluation file (``Recall@20``, ``MRR@20``, ...).

    ``Recall@K`` becomes ``hit@K`` and ``recall@K`` (the same number),
    ``MRR@K`` ``mrr@K`` and ``NDCG@K`` ``ndcg@K``; other keys are kept.

    Parameters
    ----------
    metrics : dict

    Returns
    -------
    dict
    """
    out = {}
    for key, value in metrics.items():
        name, at, k = key.partition("@")
        for new in OLD_NAMES.get(name, ()) if at else ():
            out.setdefault(f"{new}@{k}", value)
        if not at or name not in OLD_NAMES:
            out[key] = value
    return out
