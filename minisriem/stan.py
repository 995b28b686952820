"""STAN: sequence- and time-aware session neighbourhoods (Garg et al., SIGIR 2019).

Session kNN (see :mod:`minisriem.sknn`) with three exponential decays::

    from minisriem.stan import STAN
    stan = STAN(k=100, m=1000, lambda_spw=2.5, lambda_snh=1e4, lambda_inh=2.5)
    stan.fit(ds.train, ds.n_items)
    ranks = stan.ranks(item_seq, item_seq_len, targets)

For a session ``x_1, ..., x_t`` (oldest first):

1. **Positions of the session** (eq. 3 of the paper). Click ``p`` weighs
   ``w1(p) = exp((p - t) / lambda_spw)``: 1 for the last click. An item
   clicked more than once keeps the weight of its most recent click.
2. **Candidates.** As V-SKNN: the ``m`` most recent training sessions that
   share an item with the session.
3. **Similarity with a recency decay** (eq. 4-5)::

       sim(c) = sum_{i in s & c} w1_i / (sqrt(sum_{i in s} w1_i^2) sqrt(|c|)) * w2(c)

   over distinct items (``|c|``: distinct items of ``c``), the cosine of
   session-rec's STAN, with ``w2(c) = exp(-age(c) / lambda_snh)``. Our data
   has no timestamps, so the age of training session ``c`` (of ``S``) is
   counted in sessions, ``age(c) = S - 1 - c``: 0 for the latest, and the
   current session comes after all of them. ``lambda_snh`` is therefore in
   sessions, not days (DIGINETICA has about 1,500 training sessions a day).
4. **Neighbours.** The ``k`` most similar; ties by recency.
5. **Scores with the neighbour's positions** (eq. 6)::

       score(v) = sum over neighbours c containing v of sim(c) * w3(v, c)
       w3(v, c) = exp(-|pos_c(v) - pos_c*| / lambda_inh)

   ``pos_c(v)`` is the position of ``v``'s last click in ``c`` and
   ``pos_c*`` that of the last click in ``c`` on an item of the session
   (session-rec's ``pos_last`` and ``pos_i_star``). An item of the current
   session may be recommended (session-rec's ``remind = True``).
6. **Fallback** by popularity below every neighbour item, as V-SKNN.

A lambda of None switches its decay off (weight 1). Every exponential is
computed in NumPy before the Numba loop (:func:`stan_scores`), so the loop
and its twin (:func:`stan_scores_numpy`) add the same numbers in the same
order. Shape letters as in :mod:`minisriem.sknn`.
"""

import numpy as np
from numba import njit, prange

from minisriem import session_knn
from minisriem.baselines import _check_batch

__all__ = [
    "session_position_weights",
    "recency_weights",
    "item_distance_weights",
    "stan_neighbours_numpy",
    "stan_scores_numpy",
    "stan_scores",
    "stan_ranks",
    "STAN",
]


def _decay(x, lam):
    """``exp(-x / lam)``, or ones when ``lam`` is None."""
    x = np.asarray(x, dtype=np.float64)
    return np.ones_like(x) if lam is None else np.exp(-x / float(lam))


def session_position_weights(item_seq_len, L, lambda_spw):
    """``w1``: the weight of every position of a padded batch.

    Parameters
    ----------
    item_seq_len : int array of shape (B,)
    L : int
    lambda_spw : float or None

    Returns
    -------
    float64 array of shape (B, L): ``exp((p - t) / lambda_spw)`` at position
    ``p = j + 1`` of a session of ``t`` clicks, 0 on padding
    """
    t = np.asarray(item_seq_len, dtype=np.float64)[:, None]  # B,1
    p = np.arange(1, L + 1, dtype=np.float64)[None, :]  # 1,L
    return np.where(p <= t, _decay(np.maximum(t - p, 0), lambda_spw), 0.0)


def recency_weights(n_sessions, lambda_snh):
    """``w2``: the recency weight of every training session.

    Returns
    -------
    float64 array of shape (S,): ``exp(-(S - 1 - c) / lambda_snh)`` for session ``c``
    """
    return _decay(np.arange(n_sessions - 1, -1, -1), lambda_snh)


def item_distance_weights(max_distance, lambda_inh):
    """``w3`` by distance: ``exp(-d / lambda_inh)`` for ``d = 0..max_distance``.

    Returns
    -------
    float64 array of shape (max_distance + 1,)
    """
    return _decay(np.arange(max_distance + 1), lambda_inh)


# --------------------------------------------------------------------------
# the NumPy twin
# --------------------------------------------------------------------------
def stan_neighbours_numpy(seq, weights, index, recency, k, m):
    """The neighbours of one session under STAN's similarity.

    Parameters
    ----------
    seq : int array of shape (t,), the session, oldest first
    weights : float64 array of shape (t,), ``w1`` of its clicks
    index : SessionIndex
    recency : float64 array of shape (S,), ``w2``
    k, m : int

    Returns
    -------
    sessions : int array of shape (k',), most similar first (ties: later first)
    sim : float64 array of shape (k',), all > 0
    """
    items, w, _ = session_knn.distinct_recent_first(np.asarray(seq), np.asarray(weights))
    acc = np.zeros(index.n_sessions)  # S
    seen = np.zeros(index.n_sessions, dtype=bool)
    norm2 = 0.0
    for item, wi in zip(items, w, strict=True):  # most recent first, as the kernel adds
        sess = index.sessions_of(item)
        seen[sess] = True
        acc[sess] += wi
        norm2 += wi * wi
    cand = np.flatnonzero(seen)[::-1][:m]  # the m most recent
    sizes = index.session_offsets[cand + 1] - index.session_offsets[cand]  # distinct items
    sim = acc[cand] / (np.sqrt(norm2) * np.sqrt(sizes.astype(np.float64))) * recency[cand]
    cand, sim = cand[sim > 0], sim[sim > 0]
    best = np.lexsort((-cand, -sim))[:k]
    return cand[best], sim[best]


def stan_scores_numpy(
    item_seq, item_seq_len, weights, index, recency, distance_w, k, m, background
):
    """STAN's scores of every item for every session (the twin of :func:`stan_scores`).

    Parameters
    ----------
    item_seq : int array of shape (B, L), left-aligned, 0-padded
    item_seq_len : int array of shape (B,)
    weights : float64 array of shape (B, L), :func:`session_position_weights`
    index : SessionIndex
    recency : float64 array of shape (S,), :func:`recency_weights`
    distance_w : float64 array of shape (D + 1,), :func:`item_distance_weights`,
        ``D`` at least the longest training session
    k, m : int
    background : float64 array of shape (n,)

    Returns
    -------
    scores : float64 array of shape (B, n): ``sum over neighbours c containing
        item j + 1 of sim(c) * distance_w[|pos_c(j + 1) - pos_c*|]``, else
        ``background[j]``
    """
    B = item_seq.shape[0]
    scores = np.repeat(background[None, :], B, axis=0)  # B,n
    for b in range(B):
        t = item_seq_len[b]
        seq = item_seq[b, :t]
        nb, sim = stan_neighbours_numpy(seq, weights[b, :t], index, recency, k, m)
        row = np.zeros(index.n_items + 1)
        got = []
        for c, sc in zip(nb, sim, strict=True):
            clicks = index.clicks_of(c)
            positions = np.arange(1, len(clicks) + 1)
            pos_star = positions[np.isin(clicks, seq)].max()
            last = np.zeros(index.n_items + 1, dtype=np.int64)
            np.maximum.at(last, clicks, positions)  # the position of each item's last click
            items = index.items_of(c)
            row[items] += sc * distance_w[np.abs(last[items] - pos_star)]  # items distinct
            got.append(items)
        if got:
            got = np.concatenate(got)
            scores[b, got - 1] = row[got]
    return scores


# --------------------------------------------------------------------------
# the Numba kernel
# --------------------------------------------------------------------------
@njit(cache=True)
def _stan_row(
    seq, t, weights, s_off, s_items, c_off, clicks, i_off, i_sess, recency, distance_w, k, m,
    tag, cur_tag, out_tag, sess_tag, acc, step_of, touched, lastpos, d_items, d_w, d_step,
    out_items, out_vals, out_pos,
):  # fmt: skip
    """One session's neighbour scores, sparse (as :func:`minisriem.sknn._row_scores`).

    ``cur_tag[i] == tag`` marks the session's items, ``out_tag[i] == tag`` the scored ones.
    """
    # 1. distinct items, most recent first, and the squared norm of the session vector
    u = session_knn.distinct_items(seq, t, weights, cur_tag, tag, d_items, d_w, d_step)
    norm2 = 0.0
    for j in range(u):  # in the twin's order: most recent first
        norm2 += d_w[j] * d_w[j]
    # 2. candidates and their dot products, in the order the twin adds them
    n_cand = session_knn.collect_candidates(
        u, d_items, d_w, d_step, i_off, i_sess, tag, sess_tag, acc, step_of, touched
    )
    # 3. the m most recent (largest index), then by similarity, stable
    cand = np.sort(touched[:n_cand])[::-1][: min(m, n_cand)]
    sim = np.empty(len(cand))
    norm = np.sqrt(norm2)
    for j in range(len(cand)):
        s = cand[j]
        size = float(s_off[s + 1] - s_off[s])
        sim[j] = acc[s] / (norm * np.sqrt(size)) * recency[s]
    best = np.argsort(-sim, kind="mergesort")
    # 4. scores, weighted by the distance to the neighbour's last shared click
    r = 0
    n_nb = 0
    for j in best:
        if n_nb == k or not sim[j] > 0.0:
            break
        n_nb += 1
        s = cand[j]
        pos_star = 0
        for q in range(c_off[s], c_off[s + 1]):
            pos = q - c_off[s] + 1
            lastpos[clicks[q]] = pos
            if cur_tag[clicks[q]] == tag:
                pos_star = pos
        for q in range(s_off[s], s_off[s + 1]):
            it = s_items[q]
            c = sim[j] * distance_w[abs(lastpos[it] - pos_star)]
            r = session_knn.add_score(it, c, r, out_tag, tag, out_items, out_vals, out_pos)
    return r


@njit(parallel=True, cache=True)
def _stan_loop(
    item_seq, item_seq_len, weights, s_off, s_items, c_off, clicks, i_off, i_sess, recency,
    distance_w, k, m, bg, bg_higher, targets, dense, ranks, n_threads,
):  # fmt: skip
    """As :func:`minisriem.sknn._vsknn_loop`: dense scores, or ranks when ``dense`` is empty."""
    B, L = item_seq.shape
    n = bg.shape[0]
    S = recency.shape[0]
    n_chunks = max(1, min(B, n_threads))
    for ch in prange(n_chunks):
        lo = ch * B // n_chunks
        hi = (ch + 1) * B // n_chunks
        cur_tag = np.zeros(n + 1, dtype=np.int64)
        out_tag = np.zeros(n + 1, dtype=np.int64)
        lastpos = np.zeros(n + 1, dtype=np.int64)
        sess_tag, acc, step_of, touched, d_items, d_w, d_step, out_items, out_vals, out_pos = (
            session_knn.row_scratch(n, S, L)
        )
        for b in range(lo, hi):
            tag = b + 1
            r = _stan_row(
                item_seq[b], item_seq_len[b], weights[b], s_off, s_items, c_off, clicks, i_off,
                i_sess, recency, distance_w, k, m, tag, cur_tag, out_tag, sess_tag, acc,
                step_of, touched, lastpos, d_items, d_w, d_step, out_items, out_vals, out_pos,
            )  # fmt: skip
            session_knn.store_row(
                b, r, out_tag, tag, targets, dense, ranks, out_items, out_vals, out_pos,
                bg, bg_higher,
            )  # fmt: skip


def _stan_args(item_seq, item_seq_len, weights, index, recency, distance_w, k, m):
    k, m = session_knn.check_k_m(k, m)
    longest = int(np.diff(index.click_offsets).max(initial=0))
    if len(distance_w) <= longest:
        raise ValueError(f"distance_w needs {longest + 1} entries, one per distance 0..{longest}")
    return (
        np.ascontiguousarray(item_seq, dtype=np.int64),
        np.ascontiguousarray(item_seq_len, dtype=np.int64),
        np.ascontiguousarray(weights, dtype=np.float64),
        index.session_offsets,
        index.session_items,
        index.click_offsets,
        index.clicks,
        index.item_offsets,
        index.item_sessions,
        np.ascontiguousarray(recency, dtype=np.float64),
        np.ascontiguousarray(distance_w, dtype=np.float64),
        k,
        m,
    )


def stan_scores(item_seq, item_seq_len, weights, index, recency, distance_w, k, m, background):
    """Numba kernel of :func:`stan_scores_numpy` (same arguments and result).

    The loop of :func:`minisriem.sknn.vsknn_scores` with STAN's similarity,
    and per neighbour one pass over its clicks for the positions.
    """
    args = _stan_args(item_seq, item_seq_len, weights, index, recency, distance_w, k, m)
    return session_knn.dense_scores(_stan_loop, args, background)


def stan_ranks(
    item_seq, item_seq_len, weights, index, recency, distance_w, k, m, background, targets
):
    """The targets' ranks under :func:`stan_scores`, without the (B, n) matrix.

    As :func:`minisriem.sknn.vsknn_ranks`; ``targets`` : int array of shape (B,).

    Returns
    -------
    ranks : int64 array of shape (B,)
    """
    args = _stan_args(item_seq, item_seq_len, weights, index, recency, distance_w, k, m)
    return session_knn.sparse_ranks(_stan_loop, args, background, targets)


# --------------------------------------------------------------------------
# the recommender
# --------------------------------------------------------------------------
class STAN(session_knn.SessionKNN):
    """STAN with the baselines' interface (``fit``, ``scores``, ``ranks``).

    Parameters
    ----------
    k, m : int
        Neighbours, and candidates sampled (the most recent).
    lambda_spw : float or None
        Decay over the session's positions, in clicks.
    lambda_snh : float or None
        Decay over the neighbours' age, in training sessions (module docs, point 3).
    lambda_inh : float or None
        Decay over the distance of a neighbour's item to its last shared click, in clicks.
    fallback : {"popularity", None}
    backend : {"numba", "numpy"}
    """

    name = "STAN"
    scores_kernel = staticmethod(stan_scores)
    scores_twin = staticmethod(stan_scores_numpy)
    ranks_kernel = staticmethod(stan_ranks)

    def __init__(
        self,
        k=100,
        m=1000,
        lambda_spw=2.5,
        lambda_snh=None,
        lambda_inh=2.5,
        fallback="popularity",
        backend="numba",
    ):
        super().__init__(fallback, backend)
        self.set_params(
            k=k, m=m, lambda_spw=lambda_spw, lambda_snh=lambda_snh, lambda_inh=lambda_inh
        )

    def set_params(self, k, m, lambda_spw, lambda_snh, lambda_inh):
        """Change the settings read when scoring; a fitted model stays fitted.

        Returns
        -------
        self
        """
        k, m = session_knn.check_k_m(k, m)
        for name, lam in (
            ("lambda_spw", lambda_spw),
            ("lambda_snh", lambda_snh),
            ("lambda_inh", lambda_inh),
        ):
            if lam is not None and not float(lam) > 0:
                raise ValueError(f"{name} must be positive or None (no decay), got {lam}")
        self.k, self.m = k, m
        self.lambda_spw, self.lambda_snh, self.lambda_inh = lambda_spw, lambda_snh, lambda_inh
        if self.index is not None:
            self._weights()
        return self

    def settings(self):
        """dict: the settings, for records."""
        return {
            "k": self.k,
            "m": self.m,
            "lambda_spw": self.lambda_spw,
            "lambda_snh": self.lambda_snh,
            "lambda_inh": self.lambda_inh,
            "fallback": self.fallback,
        }

    def _weights(self):
        self.recency = recency_weights(self.index.n_sessions, self.lambda_snh)  # S
        longest = int(np.diff(self.index.click_offsets).max(initial=0))
        self.distance_w = item_distance_weights(longest, self.lambda_inh)  # longest+1

    def fit(self, data, n_items):
        """Index the training sessions (whole sessions in date order).

        Parameters
        ----------
        data : Split or tuple (offsets, items), see
            :func:`minisriem.baselines.training_sessions`
        n_items : int

        Returns
        -------
        self
        """
        self._fit_index(data, n_items)
        self._weights()
        return self

    def _inputs(self, item_seq, item_seq_len):
        item_seq, item_seq_len = _check_batch(item_seq, item_seq_len, self.n_items)
        weights = session_position_weights(item_seq_len, item_seq.shape[1], self.lambda_spw)
        return (
            item_seq,
            item_seq_len,
            weights,
            self.index,
            self.recency,
            self.distance_w,
            self.k,
            self.m,
        )

    def neighbours(self, seq):
        """The neighbours of one session: ``(sessions, sim)``, see :func:`stan_neighbours_numpy`."""
        seq = np.asarray(seq, dtype=np.int64)
        weights = session_position_weights(np.array([len(seq)]), len(seq), self.lambda_spw)[0]
        return stan_neighbours_numpy(seq, weights, self.index, self.recency, self.k, self.m)
