"""What the session kNNs share: V-SKNN (:mod:`~minisriem.sknn`), STAN (:mod:`~minisriem.stan`).

Both score a session from its neighbours, the training sessions most similar
to it, and differ only in the weights (of the session's clicks, of a
neighbour, of a neighbour's items). What they have in common lives here:

- :class:`SessionIndex`, the training sessions in CSR layout, by session and by item;
- :func:`distinct_recent_first`, a session's distinct items, most recent first;
- the fallback of the items no neighbour contains (:func:`popularity_background`);
- the pieces of the Numba row loops: the session's distinct items
  (:func:`distinct_items`), the candidates and their dot products
  (:func:`collect_candidates`), adding up sparse scores
  (:func:`add_score`), and storing a row as dense scores or as the target's
  rank (:func:`store_row`, :func:`target_rank`), with the scratch arrays of
  one thread (:func:`row_scratch`);
- the Python side of those loops: dense scores or ranks only
  (:func:`dense_scores`, :func:`sparse_ranks`);
- :class:`SessionKNN`, the recommender plumbing: settings checked, ``fit``
  building the index, ``scores`` and ``ranks`` through the kernel or its twin.

Shape letters: ``B`` batch, ``L`` padded session length, ``n`` items, ``S``
training sessions.
"""

import numpy as np
from numba import get_num_threads, njit

from minisriem import kernels as _kernels  # noqa: F401  (sets Numba's threading layer)
from minisriem.baselines import _popularity, training_sessions

__all__ = [
    "SessionIndex",
    "distinct_recent_first",
    "popularity_background",
    "background_higher",
    "check_k_m",
    "dense_scores",
    "sparse_ranks",
    "SessionKNN",
]


# --------------------------------------------------------------------------
# the index
# --------------------------------------------------------------------------
class SessionIndex:
    """Training sessions by item and items by session, both in CSR layout.

    Parameters
    ----------
    offsets : int array of shape (S + 1,)
    items : int array of shape (clicks,), item ids 1..n
        Session ``s`` is ``items[offsets[s]:offsets[s + 1]]``, sessions in date order.
    n_items : int

    Attributes
    ----------
    session_offsets : int64 array of shape (S + 1,)
    session_items : int32 array of shape (P,)
        The distinct items of session ``s``, ``session_items[session_offsets[s]:
        session_offsets[s + 1]]``, in increasing id. ``P`` counts distinct
        (session, item) pairs.
    item_offsets : int64 array of shape (n + 2,)
    item_sessions : int32 array of shape (P,)
        The sessions containing item ``i``, ``item_sessions[item_offsets[i]:
        item_offsets[i + 1]]``, in increasing session index (row 0, padding, empty).
    click_offsets : int64 array of shape (S + 1,)
    clicks : int32 array of shape (clicks,)
        The sessions as given, repeats included (STAN reads click positions).
    """

    def __init__(self, offsets, items, n_items):
        offsets = np.asarray(offsets, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        n = int(n_items)
        if items.size and (items.min() < 1 or items.max() > n):
            raise ValueError(f"training item ids must be in 1..{n}")
        S = len(offsets) - 1
        sess = np.repeat(np.arange(S, dtype=np.int64), np.diff(offsets))  # clicks
        pairs = np.unique(sess * (n + 1) + items)  # P, sorted by session then item
        s_of = pairs // (n + 1)
        i_of = (pairs % (n + 1)).astype(np.int32)
        self.n_sessions, self.n_items = S, n
        self.click_offsets, self.clicks = offsets, items.astype(np.int32)
        self.session_offsets = np.zeros(S + 1, dtype=np.int64)
        np.cumsum(np.bincount(s_of, minlength=S), out=self.session_offsets[1:])
        self.session_items = i_of
        by_item = np.argsort(i_of, kind="stable")  # stable: sessions stay in order
        self.item_offsets = np.zeros(n + 2, dtype=np.int64)
        np.cumsum(np.bincount(i_of, minlength=n + 1), out=self.item_offsets[1:])
        self.item_sessions = s_of[by_item].astype(np.int32)

    def sessions_of(self, item):
        """int32 array: the training sessions containing ``item``."""
        return self.item_sessions[self.item_offsets[item] : self.item_offsets[item + 1]]

    def clicks_of(self, session):
        """int32 array: the clicks of training session ``session``, in order."""
        return self.clicks[self.click_offsets[session] : self.click_offsets[session + 1]]

    def items_of(self, session):
        """int32 array: the distinct items of training session ``session``."""
        return self.session_items[self.session_offsets[session] : self.session_offsets[session + 1]]


def distinct_recent_first(seq, weights):
    """Distinct items of one session, most recent first, with weight and step.

    Parameters
    ----------
    seq : int array of shape (t,), the session, oldest first
    weights : float64 array of shape (t,), the position weights

    Returns
    -------
    items : (u,) item ids; weights : (u,) the weight of each item's last click;
    steps : (u,) int, 1 + clicks after that last click
    """
    rev = seq[::-1]
    _, first = np.unique(rev, return_index=True)  # an item's first place from the end
    first = np.sort(first)
    return rev[first], weights[::-1][first], first + 1


# --------------------------------------------------------------------------
# the items no neighbour contains
# --------------------------------------------------------------------------
def popularity_background(popularity, fallback):
    """The scores of items no neighbour contains: ``pop / (max pop + 1) - 1``, in [-1, 0).

    Parameters
    ----------
    popularity : int array of shape (n,), training clicks per item
    fallback : {"popularity", None}; None gives zeros (all tied)

    Returns
    -------
    float64 array of shape (n,)
    """
    if fallback is None:
        return np.zeros(len(popularity))
    pop = np.asarray(popularity, dtype=np.float64)
    return pop / (pop.max(initial=0) + 1) - 1


def background_higher(background):
    """For each item, how many items have a strictly higher background score.

    Parameters
    ----------
    background : float64 array of shape (n,)

    Returns
    -------
    int64 array of shape (n,)
    """
    ordered = np.sort(background)
    return (len(ordered) - np.searchsorted(ordered, background, side="right")).astype(np.int64)


# --------------------------------------------------------------------------
# the pieces of the row loops (Numba)
# --------------------------------------------------------------------------
@njit(cache=True)
def row_scratch(n, S, L):
    """One thread's scratch arrays for its rows (what every row loop needs).

    Returns
    -------
    sess_tag, acc, step_of, touched : (S,) arrays, per training session
    d_items, d_w, d_step : (L,) arrays, per distinct item of the session
    out_items, out_vals : (n,) arrays, the sparse scores; out_pos : (n + 1,)
    """
    return (
        np.zeros(S, dtype=np.int64),
        np.empty(S),
        np.empty(S, dtype=np.int64),
        np.empty(S, dtype=np.int64),
        np.empty(L, dtype=np.int64),
        np.empty(L),
        np.empty(L, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty(n),
        np.empty(n + 1, dtype=np.int64),
    )


@njit(cache=True)
def distinct_items(seq, t, weights, marks, tag, d_items, d_w, d_step):
    """The distinct items of a row's session ``seq[:t]``, most recent first.

    ``d_items[:u]`` are the items, ``d_w[:u]`` the weight of each one's most
    recent click, ``d_step[:u]`` the steps back to it (1 = the last click);
    ``marks[i] == tag`` marks the session's items afterwards.

    Returns
    -------
    int, ``u``
    """
    u = 0
    for p in range(t - 1, -1, -1):
        it = seq[p]
        if marks[it] != tag:
            marks[it] = tag
            d_items[u] = it
            d_w[u] = weights[p]
            d_step[u] = t - p
            u += 1
    return u


@njit(cache=True)
def collect_candidates(
    u, d_items, d_w, d_step, i_off, i_sess, tag, sess_tag, acc, step_of, touched
):
    """Every training session sharing an item with the row's session, and its dot product.

    For each of the ``u`` distinct items ``d_items[j]`` (most recent first),
    every session ``s`` holding it gets ``acc[s] += d_w[j]``; on its first
    visit ``step_of[s] = d_step[j]``, the step back to its most recent shared
    click. ``sess_tag[s] == tag`` marks the sessions this row has visited, so
    no (S,) array is cleared between rows.

    Returns
    -------
    int, the number of candidates, ``touched[:count]``, in the order of visit
    """
    n_cand = 0
    for j in range(u):
        it = d_items[j]
        for q in range(i_off[it], i_off[it + 1]):
            s = i_sess[q]
            if sess_tag[s] != tag:
                sess_tag[s] = tag
                acc[s] = 0.0
                step_of[s] = d_step[j]
                touched[n_cand] = s
                n_cand += 1
            acc[s] += d_w[j]
    return n_cand


@njit(cache=True)
def add_score(it, c, r, marks, mark, out_items, out_vals, out_pos):
    """Add ``c`` to the sparse score of item ``it``; returns how many items have a score.

    ``marks[it] == mark`` says ``it`` is already among the ``r`` scored items
    ``out_items[:r]`` (its score is ``out_vals[out_pos[it]]``); a new item
    starts from 0, as in the twins (``0 + c``).
    """
    if marks[it] != mark:
        marks[it] = mark
        out_pos[it] = r
        out_items[r] = it
        out_vals[r] = 0.0 + c
        return r + 1
    out_vals[out_pos[it]] += c
    return r


@njit(cache=True)
def target_rank(target, scored, r, out_items, out_vals, out_pos, bg, bg_higher):
    """1 + the items scored strictly higher than ``target``, from a row's sparse scores.

    ``out_items[:r]`` got the scores ``out_vals[:r]`` (all above the
    background); every other item ``i`` scores ``bg[i - 1]``, and
    ``bg_higher[i - 1]`` counts the items whose background is above it.
    ``scored`` says whether the target is among the ``r``.
    """
    if scored:  # only scored items can beat it
        v = out_vals[out_pos[target]]
        ahead = 0
        for j in range(r):
            if out_vals[j] > v:
                ahead += 1
    else:  # every scored item, and the background items above it that are not scored
        v = bg[target - 1]
        ahead = r + bg_higher[target - 1]
        for j in range(r):
            if bg[out_items[j] - 1] > v:
                ahead -= 1
    return 1 + ahead


@njit(cache=True)
def store_row(b, r, marks, mark, targets, dense, ranks, out_items, out_vals, out_pos, bg, higher):
    """Row ``b``'s sparse scores into ``dense`` (B, n), or, when ``dense`` is empty (0, n),
    its target's rank into ``ranks[b]`` (``marks[target] == mark``: the target is scored)."""
    if dense.shape[0] > 0:
        for j in range(r):
            dense[b, out_items[j] - 1] = out_vals[j]
    else:
        target = targets[b]
        scored = marks[target] == mark
        ranks[b] = target_rank(target, scored, r, out_items, out_vals, out_pos, bg, higher)


# --------------------------------------------------------------------------
# the Python side of the loops
# --------------------------------------------------------------------------
def check_k_m(k, m):
    """``k`` neighbours among ``m`` candidates, both at least 1, as ints."""
    if int(k) < 1 or int(m) < 1:
        raise ValueError(f"k and m must be at least 1, got k={k}, m={m}")
    return int(k), int(m)


def dense_scores(loop, args, background):
    """Run a row ``loop`` for the dense (B, n) scores, filled with the background first.

    ``loop(*args, background, higher, targets, dense, ranks, n_threads)`` is a
    V-SKNN or STAN loop; ``args[0]`` is ``item_seq``.
    """
    background = np.ascontiguousarray(background, dtype=np.float64)
    dense = np.repeat(background[None, :], len(args[0]), axis=0)  # B,n
    none = np.zeros(0, dtype=np.int64)
    loop(*args, background, none, none, dense, none, get_num_threads())
    return dense


def sparse_ranks(loop, args, background, targets):
    """Run a row ``loop`` for the targets' ranks only, without the (B, n) matrix.

    Returns
    -------
    ranks : int64 array of shape (B,)
    """
    B = len(args[0])
    background = np.ascontiguousarray(background, dtype=np.float64)
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    if targets.shape != (B,):
        raise ValueError(f"targets must be ({B},), got {targets.shape}")
    if targets.size and (targets.min() < 1 or targets.max() > len(background)):
        raise ValueError(f"targets must be item ids 1..{len(background)}")
    ranks = np.empty(B, dtype=np.int64)
    no_dense = np.zeros((0, len(background)))
    higher = background_higher(background)
    loop(*args, background, higher, targets, no_dense, ranks, get_num_threads())
    return ranks


# --------------------------------------------------------------------------
# the recommender plumbing
# --------------------------------------------------------------------------
class SessionKNN:
    """The baselines' interface (``fit``, ``scores``, ``ranks``) for a session kNN.

    A subclass defines ``_inputs(item_seq, item_seq_len)``, the arguments of its
    scoring functions before ``background``, and names those functions:
    ``scores_kernel`` and ``scores_twin`` (the Numba kernel and its NumPy twin,
    ``(*inputs, background) -> (B, n)``) and ``ranks_kernel``
    (``(*inputs, background, targets) -> (B,)``).

    Parameters
    ----------
    fallback : {"popularity", None}
        How the items no neighbour contains are ordered; None leaves them at 0, tied.
    backend : {"numba", "numpy"}
    """

    scores_kernel = scores_twin = ranks_kernel = None

    def __init__(self, fallback="popularity", backend="numba"):
        if fallback not in ("popularity", None):
            raise ValueError(f"fallback must be 'popularity' or None, not {fallback!r}")
        if backend not in ("numba", "numpy"):
            raise ValueError(f"backend must be 'numba' or 'numpy', not {backend!r}")
        self.fallback, self.backend = fallback, backend
        self.index = None

    def _fit_index(self, data, n_items):
        """Index the training sessions and their popularity (the first part of ``fit``)."""
        offsets, items = training_sessions(data)
        self.n_items = int(n_items)
        self.index = SessionIndex(offsets, items, self.n_items)
        self.popularity = _popularity(items, self.n_items)  # n
        self.background = popularity_background(self.popularity, self.fallback)  # n

    def scores(self, item_seq, item_seq_len):
        """Scores of every item for every session.

        Parameters
        ----------
        item_seq : int array of shape (B, L), left-aligned, 0-padded; pad to
            the longest session to score whole sessions
        item_seq_len : int array of shape (B,)

        Returns
        -------
        scores : float64 array of shape (B, n); column ``j`` is item ``j + 1``
        """
        fn = self.scores_kernel if self.backend == "numba" else self.scores_twin
        return fn(*self._inputs(item_seq, item_seq_len), self.background)

    def ranks(self, item_seq, item_seq_len, targets):
        """Ranks of the true next items (strict tie rule), as
        ``target_ranks(self.scores(...), targets)`` but without the (B, n) scores.

        Parameters
        ----------
        item_seq : int array of shape (B, L)
        item_seq_len : int array of shape (B,)
        targets : int array of shape (B,), item ids 1..n

        Returns
        -------
        ranks : int64 array of shape (B,)
        """
        inputs = self._inputs(item_seq, item_seq_len)
        if self.backend == "numpy":
            from minisriem.metrics import target_ranks

            return target_ranks(self.scores_twin(*inputs, self.background), targets)
        return self.ranks_kernel(*inputs, self.background, targets)
