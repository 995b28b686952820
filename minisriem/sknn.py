"""V-SKNN: session-based nearest neighbours with a weighted session vector.

The "vector multiplication" session-kNN of Ludewig & Jannach (2018,
"Evaluation of session-based recommendation algorithms"), as implemented in
their session-rec framework (``VMContextKNN``), with our evaluation::

    from minisriem.sknn import VSKNN
    knn = VSKNN(k=100, m=1000, weighting="div").fit(ds.train, ds.n_items)
    scores = knn.scores(item_seq, item_seq_len)          # (B, n); column j is item j+1
    ranks = knn.ranks(item_seq, item_seq_len, targets)   # (B,), no (B, n) matrix

How one session ``x_1, ..., x_t`` (``t`` clicks, oldest first) is scored:

1. **Session vector.** Position ``p`` (1 = oldest, ``t`` = most recent) gets
   the weight ``w(p, t)`` of the ``weighting`` (see :data:`WEIGHTINGS`); an
   item clicked more than once keeps the weight of its most recent click.
   Distinct items: ``u`` of them.
2. **Candidates.** Every training session sharing at least one item with the
   session; of those, the ``m`` most recent (the highest session index, which
   is date order), or ``m`` drawn at random (``sampling="random"``).
3. **Similarity.** The dot product of the session vector with the candidate's
   *binary* item vector, divided by ``u``::

       sim(c) = sum_{i in items(c)} w_i / u

   (session-rec's ``vec``; the division by ``u`` scales a whole row and does
   not change its ranking). Candidates with ``sim = 0`` are dropped.
4. **Neighbours.** The ``k`` most similar candidates; equal similarities are
   broken by recency (the later session first).
5. **Scores.** ``score(v) = sum over neighbours c containing v of sim(c) * d(c)``,
   where ``d(c) = 1`` by default. ``score_weighting`` (session-rec's
   ``weighting_score``) instead decays a neighbour by the step ``s`` back
   from the end of the session to the most recent click that ``c`` shares
   (``s = 1`` for the last click; see :data:`SCORE_WEIGHTINGS`).
6. **Fallback.** Items no neighbour contains score below every neighbour
   item, ordered by training popularity: ``pop / (max pop + 1) - 1`` in
   ``[-1, 0)``, as for :class:`~minisriem.baselines.ItemKNN`. Without it
   they would all tie at 0, and under our tie rule (rank = 1 + items scored
   strictly higher) a target outside the neighbours would rank just after
   them: a hit for every session with few neighbour items.

Speed: ``fit`` builds two CSR indices (distinct items per training session,
and training sessions per item: :class:`~minisriem.session_knn.SessionIndex`).
Scoring visits only the sessions of the session's items, in a Numba loop
(:func:`vsknn_scores`) beside its plain NumPy twin (:func:`vsknn_scores_numpy`);
what the loop shares with STAN's is in :mod:`minisriem.session_knn`. Shape
letters: ``B`` batch, ``L`` padded session length, ``n`` items, ``S`` training
sessions.
"""

import numpy as np
from numba import njit, prange

from minisriem import session_knn
from minisriem.baselines import _check_batch

__all__ = [
    "WEIGHTINGS",
    "SCORE_WEIGHTINGS",
    "position_weights",
    "step_decay",
    "vsknn_neighbours_numpy",
    "vsknn_scores_numpy",
    "vsknn_scores",
    "vsknn_ranks",
    "VSKNN",
]


# --------------------------------------------------------------------------
# weightings
# --------------------------------------------------------------------------
def _linear(p, t):
    # session-rec: 1 - 0.1 (t - p) if p <= 10 else 0, which for t > 10 gives
    # the most recent clicks weight 0 and old ones negative weights; clipped
    # at 0 here, the same for every session of up to 10 clicks.
    return np.maximum(0.0, 1.0 - 0.1 * (t - p))


WEIGHTINGS = {
    "same": lambda p, t: np.ones_like(p / t),
    "linear": _linear,
    "div": lambda p, t: p / t,
    "quadratic": lambda p, t: (p / t) ** 2,
    "log": lambda p, t: 1.0 / np.log10(t - p + 1.7),
}
"""Weight of click ``p`` (1 = oldest) of a session of ``t`` clicks; 1 for ``p = t``
(except ``log``: 1 / log10(1.7) = 4.3 there). session-rec's names and formulas."""

SCORE_WEIGHTINGS = {
    "same": lambda s: np.ones_like(s / 1.0),
    "div": lambda s: 1.0 / s,
    "quadratic": lambda s: 1.0 / s**2,
    "log": lambda s: 1.0 / np.log10(s + 1.7),
}
"""Decay of a neighbour whose most recent shared click is ``s`` steps back
(``s = 1``: the last click). session-rec's ``*_score`` functions; its
``linear_score`` (``1 - 0.1 s``) is left out because it turns negative."""


def position_weights(item_seq_len, L, weighting):
    """The session-vector weight of every position of a padded batch.

    Parameters
    ----------
    item_seq_len : int array of shape (B,)
    L : int, the padded length
    weighting : str, a key of :data:`WEIGHTINGS`

    Returns
    -------
    weights : float64 array of shape (B, L)
        ``weights[b, j] = w(j + 1, item_seq_len[b])`` for ``j < item_seq_len[b]``,
        0 on padding.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {sorted(WEIGHTINGS)}, not {weighting!r}")
    t = np.asarray(item_seq_len, dtype=np.float64)[:, None]  # B,1
    p = np.arange(1, L + 1, dtype=np.float64)[None, :]  # 1,L
    w = WEIGHTINGS[weighting](np.minimum(p, t), t)  # B,L; padding computed as p = t
    return np.where(p <= t, w, 0.0)


def step_decay(L, score_weighting):
    """The neighbour decay for steps ``1..L`` back from the last click.

    Parameters
    ----------
    L : int
    score_weighting : str, a key of :data:`SCORE_WEIGHTINGS`

    Returns
    -------
    decay : float64 array of shape (L,), ``decay[s - 1] = d(s)``, all > 0
    """
    if score_weighting not in SCORE_WEIGHTINGS:
        raise ValueError(
            f"score_weighting must be one of {sorted(SCORE_WEIGHTINGS)}, not {score_weighting!r}"
        )
    return SCORE_WEIGHTINGS[score_weighting](np.arange(1, L + 1, dtype=np.float64))


# --------------------------------------------------------------------------
# the NumPy twin
# --------------------------------------------------------------------------
def vsknn_neighbours_numpy(seq, weights, index, key, k, m):
    """The neighbours of one session, the plain NumPy statement.

    Parameters
    ----------
    seq : int array of shape (t,), the session's item ids, oldest first
    weights : float64 array of shape (t,), :func:`position_weights` of its clicks
    index : :class:`~minisriem.session_knn.SessionIndex`
    key : int array of shape (S,)
        Sampling order: the ``m`` candidates with the largest key are kept
        (the session index for "most recent"); distinct values.
    k, m : int

    Returns
    -------
    sessions : int array of shape (k',), ``k' <= k``, most similar first
        (equal similarity: larger key first)
    sim : float64 array of shape (k',), their similarities, all > 0
    steps : int array of shape (k',)
        Steps back to the most recent click each neighbour shares (1 = last click).
    """
    items, w, steps = session_knn.distinct_recent_first(np.asarray(seq), np.asarray(weights))
    acc = np.zeros(index.n_sessions)  # S: the dot products
    step_of = np.zeros(index.n_sessions, dtype=np.int64)  # S: 0 = not a candidate
    for item, wi, st in zip(items, w, steps, strict=True):  # most recent item first
        sess = index.sessions_of(item)
        step_of[sess[step_of[sess] == 0]] = st
        acc[sess] += wi  # a session holds each item once
    cand = np.flatnonzero(step_of)
    cand = cand[np.argsort(-key[cand], kind="stable")[:m]]  # the m largest keys
    sim = acc[cand] / len(items)
    cand, sim = cand[sim > 0], sim[sim > 0]
    best = np.lexsort((-key[cand], -sim))[:k]  # by similarity, then by key
    return cand[best], sim[best], step_of[cand[best]]


def vsknn_scores_numpy(item_seq, item_seq_len, weights, decay, index, key, k, m, background):
    """V-SKNN's scores of every item for every session (the twin of :func:`vsknn_scores`).

    Parameters
    ----------
    item_seq : int array of shape (B, L), left-aligned, 0-padded
    item_seq_len : int array of shape (B,), values 1..L
    weights : float64 array of shape (B, L), :func:`position_weights`
    decay : float64 array of shape (L,), :func:`step_decay`
    index : :class:`~minisriem.session_knn.SessionIndex`
    key : int array of shape (S,), see :func:`vsknn_neighbours_numpy`
    k, m : int
    background : float64 array of shape (n,), the scores of items no neighbour contains

    Returns
    -------
    scores : float64 array of shape (B, n); column ``j`` is item ``j + 1``:
        ``sum over neighbours c containing j + 1 of sim(c) * decay[step(c) - 1]``
        where some neighbour contains it, else ``background[j]``.
    """
    B = item_seq.shape[0]
    scores = np.repeat(background[None, :], B, axis=0)  # B,n
    for b in range(B):
        t = item_seq_len[b]
        nb, sim, steps = vsknn_neighbours_numpy(item_seq[b, :t], weights[b, :t], index, key, k, m)
        lengths = index.session_offsets[nb + 1] - index.session_offsets[nb]
        got = np.concatenate([index.items_of(s) for s in nb]) if len(nb) else np.zeros(0, int)
        row = np.zeros(index.n_items + 1)
        np.add.at(row, got, np.repeat(sim * decay[steps - 1], lengths))  # in neighbour order
        scores[b, got - 1] = row[got]
    return scores


# --------------------------------------------------------------------------
# the Numba kernels
# --------------------------------------------------------------------------
@njit(cache=True)
def _row_scores(
    seq,
    t,
    weights,
    decay,
    s_off,
    s_items,
    i_off,
    i_sess,
    key,
    k,
    m,
    tag,
    item_tag,
    sess_tag,
    acc,
    step_of,
    touched,
    d_items,
    d_w,
    d_step,
    out_items,
    out_vals,
    out_pos,
):
    """One session's neighbour scores, sparse: returns how many items got one.

    ``out_items[:r]`` are the items some neighbour contains, ``out_vals[:r]``
    their scores. ``tag`` is unique per row: the ``*_tag`` arrays mark what
    this row has seen, so no scratch array is cleared between rows
    (``item_tag``: ``tag`` for the session's items, ``-tag`` for the scored ones).
    """
    # 1. distinct items, most recent first
    u = session_knn.distinct_items(seq, t, weights, item_tag, tag, d_items, d_w, d_step)
    # 2. candidates, their dot products and steps
    n_cand = session_knn.collect_candidates(
        u, d_items, d_w, d_step, i_off, i_sess, tag, sess_tag, acc, step_of, touched
    )
    cand = touched[:n_cand]
    # 3. the m largest keys, then by similarity (stable: ties keep the larger key first)
    order = np.argsort(-key[cand])
    sample = cand[order[: min(m, n_cand)]]
    sim = np.empty(len(sample))
    for j in range(len(sample)):
        sim[j] = acc[sample[j]] / u
    best = np.argsort(-sim, kind="mergesort")
    # 4. scores of the neighbours' items, in neighbour order
    r = 0
    n_nb = 0
    for j in best:
        if n_nb == k or not sim[j] > 0.0:
            break
        n_nb += 1
        s = sample[j]
        c = sim[j] * decay[step_of[s] - 1]
        for q in range(s_off[s], s_off[s + 1]):  # -tag marks the items scored in this row
            r = session_knn.add_score(
                s_items[q], c, r, item_tag, -tag, out_items, out_vals, out_pos
            )
    return r


@njit(parallel=True, cache=True)
def _vsknn_loop(
    item_seq, item_seq_len, weights, decay, s_off, s_items, i_off, i_sess, key, k, m, bg,
    bg_higher, targets, dense, ranks, n_threads,
):  # fmt: skip
    """Rows split into one chunk per thread; each chunk owns its scratch arrays.

    With a (B, n) ``dense`` (filled with the background) the neighbour scores
    are written into it; with an empty (0, n) one the target ranks go to
    ``ranks`` instead (see :func:`vsknn_ranks`).
    """
    B, L = item_seq.shape
    n = bg.shape[0]
    S = key.shape[0]
    n_chunks = max(1, min(B, n_threads))
    for c in prange(n_chunks):
        lo = c * B // n_chunks
        hi = (c + 1) * B // n_chunks
        item_tag = np.zeros(n + 1, dtype=np.int64)
        sess_tag, acc, step_of, touched, d_items, d_w, d_step, out_items, out_vals, out_pos = (
            session_knn.row_scratch(n, S, L)
        )
        for b in range(lo, hi):
            tag = b + 1
            r = _row_scores(
                item_seq[b], item_seq_len[b], weights[b], decay, s_off, s_items, i_off,
                i_sess, key, k, m, tag, item_tag, sess_tag, acc, step_of, touched,
                d_items, d_w, d_step, out_items, out_vals, out_pos,
            )  # fmt: skip
            session_knn.store_row(
                b, r, item_tag, -tag, targets, dense, ranks, out_items, out_vals, out_pos,
                bg, bg_higher,
            )  # fmt: skip


def _kernel_args(item_seq, item_seq_len, weights, decay, index, key, k, m):
    k, m = session_knn.check_k_m(k, m)
    return (
        np.ascontiguousarray(item_seq, dtype=np.int64),
        np.ascontiguousarray(item_seq_len, dtype=np.int64),
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(decay, dtype=np.float64),
        index.session_offsets,
        index.session_items,
        index.item_offsets,
        index.item_sessions,
        np.ascontiguousarray(key, dtype=np.int64),
        k,
        m,
    )


def vsknn_scores(item_seq, item_seq_len, weights, decay, index, key, k, m, background):
    """Numba kernel of :func:`vsknn_scores_numpy` (same arguments and result).

    Per row: the distinct items, then one pass over the sessions of each item
    accumulating the dot products in a dense (S,) array (rows mark what they
    touched instead of clearing it), then two sorts of the candidates (by key,
    then stably by similarity) and one pass over the neighbours' items.
    Parallel over chunks of rows, one per thread.
    """
    args = _kernel_args(item_seq, item_seq_len, weights, decay, index, key, k, m)
    return session_knn.dense_scores(_vsknn_loop, args, background)


def vsknn_ranks(item_seq, item_seq_len, weights, decay, index, key, k, m, background, targets):
    """The targets' ranks under :func:`vsknn_scores`, without the (B, n) matrix.

    ``rank = 1 + #{items scored strictly higher than the target}``, as
    :func:`minisriem.metrics.target_ranks` of the dense scores (the tests
    check they agree). A neighbour item is beaten only by neighbour items
    with higher scores; an item no neighbour contains is beaten by every
    neighbour item and by the other background items above it, counted from
    a precomputed table less those that are neighbour items.

    Parameters
    ----------
    (as :func:`vsknn_scores`), and
    targets : int array of shape (B,), item ids 1..n

    Returns
    -------
    ranks : int64 array of shape (B,)
    """
    args = _kernel_args(item_seq, item_seq_len, weights, decay, index, key, k, m)
    return session_knn.sparse_ranks(_vsknn_loop, args, background, targets)


# --------------------------------------------------------------------------
# the recommender
# --------------------------------------------------------------------------
class VSKNN(session_knn.SessionKNN):
    """V-SKNN with the baselines' interface (``fit``, ``scores``, ``ranks``), see the module docs.

    Parameters
    ----------
    k : int
        Neighbours per session.
    m : int
        Candidates kept: the ``m`` most recent sessions sharing an item.
    weighting : str
        Session-vector weights, a key of :data:`WEIGHTINGS`; "linear" by
        default, as in Ludewig & Jannach's description.
    score_weighting : str
        Neighbour decay, a key of :data:`SCORE_WEIGHTINGS`; "same" (no decay)
        is plain V-SKNN.
    sampling : {"recent", "random"}
        Which ``m`` candidates: the most recent, or a random sample. "random"
        draws one random priority per training session at ``fit`` (from
        ``seed``) and keeps the ``m`` candidates with the highest: a uniform
        sample, the same for a session however it is batched.
    seed : int
    fallback : {"popularity", None}
        How the items no neighbour contains are ordered (module docs, point 6);
        None leaves them at 0, tied.
    backend : {"numba", "numpy"}
    """

    name = "V-SKNN"
    scores_kernel = staticmethod(vsknn_scores)
    scores_twin = staticmethod(vsknn_scores_numpy)
    ranks_kernel = staticmethod(vsknn_ranks)

    def __init__(
        self,
        k=100,
        m=1000,
        weighting="linear",
        score_weighting="same",
        sampling="recent",
        seed=0,
        fallback="popularity",
        backend="numba",
    ):
        if sampling not in ("recent", "random"):
            raise ValueError(f"sampling must be 'recent' or 'random', not {sampling!r}")
        super().__init__(fallback, backend)
        self.sampling, self.seed = sampling, int(seed)
        self.set_params(k=k, m=m, weighting=weighting, score_weighting=score_weighting)

    def set_params(self, k, m, weighting, score_weighting):
        """Change the settings read only when scoring; a fitted model stays fitted.

        Tuning uses it to score one index with every point of a grid.

        Returns
        -------
        self
        """
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {sorted(WEIGHTINGS)}, not {weighting!r}")
        if score_weighting not in SCORE_WEIGHTINGS:
            raise ValueError(
                f"score_weighting must be one of {sorted(SCORE_WEIGHTINGS)}, "
                f"not {score_weighting!r}"
            )
        self.k, self.m = session_knn.check_k_m(k, m)
        self.weighting, self.score_weighting = weighting, score_weighting
        return self

    def settings(self):
        """dict: the constructor's arguments, for records."""
        return {
            "k": self.k,
            "m": self.m,
            "weighting": self.weighting,
            "score_weighting": self.score_weighting,
            "sampling": self.sampling,
            "seed": self.seed,
            "fallback": self.fallback,
        }

    def fit(self, data, n_items):
        """Index the training sessions.

        Parameters
        ----------
        data : Split or tuple (offsets, items)
            See :func:`minisriem.baselines.training_sessions`: whole sessions,
            in date order (a later session index is more recent).
        n_items : int

        Returns
        -------
        self
        """
        self._fit_index(data, n_items)
        S = self.index.n_sessions
        if self.sampling == "recent":
            self.key = np.arange(S, dtype=np.int64)
        else:
            self.key = np.random.default_rng(self.seed).permutation(S).astype(np.int64)
        return self

    def _inputs(self, item_seq, item_seq_len):
        item_seq, item_seq_len = _check_batch(item_seq, item_seq_len, self.n_items)
        L = item_seq.shape[1]
        weights = position_weights(item_seq_len, L, self.weighting)  # B,L
        decay = step_decay(L, self.score_weighting)  # L
        return item_seq, item_seq_len, weights, decay, self.index, self.key, self.k, self.m

    def neighbours(self, seq):
        """The neighbours of one session.

        Parameters
        ----------
        seq : int sequence of shape (t,), item ids, oldest first

        Returns
        -------
        sessions, sim, steps : see :func:`vsknn_neighbours_numpy`
        """
        seq = np.asarray(seq, dtype=np.int64)
        weights = position_weights(np.array([len(seq)]), len(seq), self.weighting)[0]
        return vsknn_neighbours_numpy(seq, weights, self.index, self.key, self.k, self.m)
