"""Probes of the gap to the paper that need no training: the same scores, other tie rules.

Our rank counts only the items scored strictly higher than the target (ties
in the target's favour). The authors' code takes ``topk(20)``, which puts an
item tied with the target before or after it in an order nobody chose. For
one model's scores the probe ranks the target three ways:

    favour   rank = 1 + #{v : s_v > s_target}                     (ours)
    against  rank = #{v : s_v >= s_target}                         (every tie ahead)
    average  rank = 1 + #{v : s_v > s_target} + (#ties - 1) / 2    (the tied group's mean)

where ``#ties`` counts the items scored exactly the target's score (the
target included). The three agree when no item ties the target.
"""

import numpy as np

TIE_RULES = ("favour", "against", "average")


def tie_ranks(scores, targets):
    """The target's rank under each tie rule.

    Parameters
    ----------
    scores : float array (B, n), column ``j`` scores item ``j + 1``
    targets : int array (B,), item ids 1..n

    Returns
    -------
    dict ``{"favour", "against", "average"}`` of float64 arrays (B,)
    """
    scores = np.asarray(scores)
    target_score = scores[np.arange(len(targets)), np.asarray(targets) - 1][:, None]  # B,1
    above = (scores > target_score).sum(axis=1)  # B
    ties = (scores == target_score).sum(axis=1)  # B, the target included
    return {
        "favour": 1.0 + above,
        "against": (above + ties).astype(np.float64),
        "average": 1.0 + above + (ties - 1) / 2.0,
    }


def model_tie_ranks(model, item_seq, item_seq_len, targets, batch_size=512):
    """:func:`tie_ranks` over a whole test set, scored in batches by ``model.scores``."""
    out = {rule: np.empty(len(targets)) for rule in TIE_RULES}
    for start in range(0, len(targets), batch_size):
        end = min(start + batch_size, len(targets))
        scores = model.scores(item_seq[start:end], item_seq_len[start:end])
        for rule, ranks in tie_ranks(scores, targets[start:end]).items():
            out[rule][start:end] = ranks
    return out


def at20(ranks):
    """Recall@20 and MRR@20 (fractions) of float ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    inside = ranks <= 20
    return {
        "Recall@20": float(inside.mean()),
        "MRR@20": float(np.where(inside, 1 / ranks, 0).mean()),
    }
