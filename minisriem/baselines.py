"""The two non-neural baselines of Table 2, S-POP and Item-KNN, in NumPy.

Both are recommenders with the model's scoring interface, so the same
ranking code evaluates them::

    from minisriem.baselines import SPop, ItemKNN
    knn = ItemKNN().fit(ds.train, ds.n_items)       # a Split, or (offsets, items)
    scores = knn.scores(item_seq, item_seq_len)     # (B, n); column j is item j+1

``fit`` reads the *unaugmented* training sessions. From a
:class:`data_tools.split.Split` of prefix-augmented examples they are rebuilt
by :func:`training_sessions`: each session is its longest prefix plus that
prefix's target. Scores are float64 (exact for S-POP's integers, and no
rounding between close similarities); a batch of B sessions costs ``8 B n``
bytes, e.g. 88 MB for B = 256 and n = 43,097.

Both baselines come from GRU4Rec's paper (Hidasi et al., ICLR 2016), whose
figures NARM, STAMP, SR-GNN and SR-IEM copy or re-run:

* S-POP recommends the items of the current session by how often they occur
  in it; ties, and every item not in the session, by global popularity.
* Item-KNN recommends the items most similar to the session's last item,
  by the cosine similarity of the sets of training sessions they occur in.
"""

import numpy as np

__all__ = ["training_sessions", "SPop", "ItemKNN"]


def training_sessions(data):
    """The unaugmented sessions behind a split, in CSR layout.

    Parameters
    ----------
    data : Split or tuple (offsets, items)
        A split of prefix-augmented examples (``.offsets``, ``.items``,
        ``.targets``, ``.session``), or sessions already in CSR layout, which
        are returned as they are: session ``s`` is
        ``items[offsets[s]:offsets[s + 1]]``.

    Returns
    -------
    offsets : int64 array of shape (S + 1,)
    items : int32 array of shape (clicks,)
        Session ``s`` of a split is the longest prefix among the examples
        with ``session == s`` followed by that example's target, in the order
        of the session index.
    """
    if isinstance(data, tuple):
        offsets, items = data
        return np.asarray(offsets, dtype=np.int64), np.asarray(items, dtype=np.int32)
    lengths = np.diff(data.offsets)  # N
    # the longest prefix of each session: sort by session, then longest first
    order = np.lexsort((-lengths, data.session))
    first = order[np.flatnonzero(np.diff(data.session[order], prepend=-1) != 0)]  # S
    k = lengths[first] + 1  # S: clicks per session, counting the target
    offsets = np.zeros(len(first) + 1, dtype=np.int64)
    np.cumsum(k, out=offsets[1:])
    items = np.empty(int(offsets[-1]), dtype=np.int32)
    # where each output click comes from: the prefix's items, then the target
    starts = np.repeat(data.offsets[first] - offsets[:-1], k)  # clicks
    pos = np.arange(len(items)) + starts
    is_target = np.zeros(len(items), dtype=bool)
    is_target[offsets[1:] - 1] = True
    items[~is_target] = data.items[pos[~is_target]]
    items[is_target] = data.targets[first]
    return offsets, items


def _check_batch(item_seq, item_seq_len, n_items):
    item_seq, item_seq_len = np.asarray(item_seq), np.asarray(item_seq_len)
    if item_seq.ndim != 2 or item_seq_len.shape != (item_seq.shape[0],):
        raise ValueError("item_seq must be (B, L) and item_seq_len (B,)")
    if item_seq_len.size and (item_seq_len.min() < 1 or item_seq_len.max() > item_seq.shape[1]):
        raise ValueError("every session needs 1..L items")
    if item_seq.size and (item_seq.min() < 0 or item_seq.max() > n_items):
        raise ValueError(f"item ids must be in 0..{n_items} (0 = padding)")
    return item_seq, item_seq_len


def _popularity(items, n_items):
    """Clicks per item, ``pop[j]`` for item ``j + 1``: int64 array of shape (n,)."""
    return np.bincount(items, minlength=n_items + 1)[1:].astype(np.int64)


class SPop:
    """Session popularity: the current session's items by their count in it.

    ``score(v) = count_in_session(v) * BIG + pop(v)``, with ``pop(v)`` the
    number of training clicks on ``v`` and ``BIG = max pop + 1`` so the
    session count always dominates: items of the session come first, most
    frequent first, ties and all other items by global popularity. Every score
    is an integer below 2**53, exact in float64.

    The count reads what ``item_seq`` holds: pad with a large ``L`` (the
    longest session) to count over the whole session so far, as GRU4Rec's
    S-POP does; with ``L = 10`` it counts the 10 most recent items.
    """

    name = "S-POP"

    def fit(self, data, n_items):
        """Count clicks per item over the training sessions.

        Parameters
        ----------
        data : Split or tuple (offsets, items), see :func:`training_sessions`
        n_items : int

        Returns
        -------
        self
        """
        _, items = training_sessions(data)
        self.n_items = int(n_items)
        self.popularity = _popularity(items, self.n_items)  # n
        self.big = float(self.popularity.max(initial=0) + 1)
        return self

    def scores(self, item_seq, item_seq_len):
        """Scores of every item for every session.

        Parameters
        ----------
        item_seq : int array of shape (B, L), left-aligned, 0-padded
        item_seq_len : int array of shape (B,)

        Returns
        -------
        scores : float64 array of shape (B, n); column ``j`` is item ``j + 1``
        """
        item_seq, item_seq_len = _check_batch(item_seq, item_seq_len, self.n_items)
        B, L = item_seq.shape
        real = np.arange(L)[None, :] < item_seq_len[:, None]  # B,L
        rows = np.broadcast_to(np.arange(B)[:, None], (B, L))[real]  # one per real click
        scores = np.repeat(self.popularity[None, :].astype(np.float64), B, axis=0)  # B,n
        np.add.at(scores, (rows, item_seq[real] - 1), self.big)  # a repeated item adds twice
        return scores


class ItemKNN:
    """Item-to-item nearest neighbours, scored from the session's last item.

    The classic Item-KNN of GRU4Rec's paper, with the similarity counted over
    training sessions (an item clicked twice in a session counts once)::

        sim(i, j) = |S_i & S_j| / ((|S_i| + lmbd) (|S_j| + lmbd)) ** 0.5

    where ``S_i`` is the set of training sessions containing item ``i``;
    ``lmbd = 0`` is the plain cosine. ``sim(i, i)`` is not used: an item is
    not its own neighbour. The score of item ``v`` for a session whose last
    item is ``x_t`` is ``sim(x_t, v)``.

    The co-occurrence matrix is stored sparse (CSR, ``nnz`` pairs of items
    that share a session, 12 bytes each), never as a dense ``n x n`` matrix:
    on DIGINETICA about 6 M pairs, under 100 MB.

    Parameters
    ----------
    k : int or None
        Keep only each item's ``k`` most similar neighbours, and every
        neighbour tied with the ``k``-th. None keeps them all. With ties kept,
        any ``k >= 20`` gives the same Recall@20 and MRR@20 as None.
    lmbd : float
        Support regularisation of GRU4Rec's implementation (it uses 20); 0
        is the cosine of the paper's description.
    fallback : {"popularity", None}
        What ranks the items that never share a session with ``x_t``.
        "popularity" places them after every neighbour, ordered by training
        clicks (``score = pop / (max pop + 1) - 1``, in [-1, 0)). None leaves
        them all at 0, as GRU4Rec does; then, under the strict tie rule (an
        item counts ahead of the target only when it scores strictly higher),
        a target with no co-occurrence ranks just after the neighbours and
        counts as a hit whenever ``x_t`` has fewer than 20 neighbours: an
        artefact, not a prediction.
    """

    name = "Item-KNN"

    def __init__(self, k=None, lmbd=0.0, fallback="popularity", block_pairs=1 << 22):
        if fallback not in ("popularity", None):
            raise ValueError(f"fallback must be 'popularity' or None, not {fallback!r}")
        self.k, self.lmbd, self.fallback = k, float(lmbd), fallback
        self.block_pairs = int(block_pairs)

    # ------------------------------------------------------------------
    def fit(self, data, n_items):
        """Build the sparse similarity matrix from the training sessions.

        Parameters
        ----------
        data : Split or tuple (offsets, items), see :func:`training_sessions`
        n_items : int

        Returns
        -------
        self
        """
        offsets, items = training_sessions(data)
        self.n_items = n = int(n_items)
        self.popularity = _popularity(items, n)  # n
        # 1. distinct (session, item) pairs: a session counts once per item
        sess = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
        pairs = np.unique(sess * (n + 1) + items)  # sorted by session, then item
        s_of, i_of = pairs // (n + 1), (pairs % (n + 1)).astype(np.int32)
        support = np.bincount(i_of, minlength=n + 1).astype(np.float64)  # n+1: |S_i|
        u_offsets = np.zeros(len(offsets), dtype=np.int64)  # distinct items per session
        np.cumsum(np.bincount(s_of, minlength=len(offsets) - 1), out=u_offsets[1:])
        # 2. co-occurrence counts |S_i & S_j|, i != j, as sorted keys i*(n+1)+j
        keys, counts = self._cooccurrence(u_offsets, i_of, n)
        rows = (keys // (n + 1)).astype(np.int32)
        cols = (keys % (n + 1)).astype(np.int32)
        sim = counts / np.sqrt((support[rows] + self.lmbd) * (support[cols] + self.lmbd))
        if self.k is not None:
            keep = self._top_k_mask(rows, sim, self.k)
            rows, cols, sim = rows[keep], cols[keep], sim[keep]
        # 3. CSR by row item: row i is items[indptr[i]:indptr[i + 1]]
        self.indptr = np.zeros(n + 2, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n + 1), out=self.indptr[1:])
        self.indices, self.sim = cols, sim  # nnz int32, nnz float64
        pop = self.popularity.astype(np.float64)
        self.background = pop / (pop.max(initial=0) + 1) - 1  # n, in [-1, 0)
        return self

    def _cooccurrence(self, u_offsets, u_items, n):
        """Counts of every ordered pair of distinct items sharing a session.

        Sessions are processed in blocks of about ``block_pairs`` pairs, each
        reduced with ``np.unique``, so memory stays near the number of
        distinct pairs.

        Returns
        -------
        keys : int64 array of shape (nnz,), ``i * (n + 1) + j``, sorted
        counts : int64 array of shape (nnz,)
        """
        k = np.diff(u_offsets)  # S: distinct items per session
        n_pairs = k * k  # S, self-pairs included then dropped
        ends = np.cumsum(n_pairs)
        key_parts, count_parts = [], []
        s = 0
        while s < len(k):
            e = int(np.searchsorted(ends, ends[s] - n_pairs[s] + self.block_pairs, side="right"))
            e = min(max(e, s + 1), len(k))
            kb = k[s:e]
            # left item: each item of the session repeated k times
            left = np.repeat(u_items[u_offsets[s] : u_offsets[e]], np.repeat(kb, kb))
            # right item: the session's items, once per left item
            starts = np.repeat(u_offsets[s:e], kb * kb)
            block_first = np.repeat(np.cumsum(kb * kb) - kb * kb, kb * kb)
            within = np.arange(len(left)) - block_first  # 0..k*k-1 inside each session
            right = u_items[starts + within % np.repeat(kb, kb * kb)]
            off_diag = left != right
            key = left[off_diag].astype(np.int64) * (n + 1) + right[off_diag]
            uk, uc = np.unique(key, return_counts=True)
            key_parts.append(uk)
            count_parts.append(uc)
            s = e
        if not key_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        keys = np.concatenate(key_parts)
        counts = np.concatenate(count_parts)
        if len(key_parts) > 1:
            keys, inverse = np.unique(keys, return_inverse=True)
            counts = np.bincount(inverse, weights=counts).astype(np.int64)
        return keys, counts

    @staticmethod
    def _top_k_mask(rows, sim, k):
        """Keep each row's ``k`` largest similarities and every tie with the ``k``-th."""
        order = np.lexsort((-sim, rows))  # by row, most similar first
        r, s = rows[order], sim[order]
        row_start = np.flatnonzero(np.diff(r, prepend=-1) != 0)
        rank = np.arange(len(r)) - np.repeat(row_start, np.diff(np.append(row_start, len(r))))
        kth = np.full(int(rows.max(initial=0)) + 1, -np.inf)
        at_k = rank == k - 1
        kth[r[at_k]] = s[at_k]
        keep = np.empty(len(r), dtype=bool)
        keep[order] = s >= kth[r]
        return keep

    # ------------------------------------------------------------------
    def neighbours(self, item):
        """The neighbours of one item and their similarities, most similar first.

        Returns
        -------
        items : int32 array of shape (m,), item ids
        sim : float64 array of shape (m,)
        """
        a, b = self.indptr[item], self.indptr[item + 1]
        order = np.argsort(-self.sim[a:b], kind="stable")
        return self.indices[a:b][order], self.sim[a:b][order]

    def scores(self, item_seq, item_seq_len):
        """Scores of every item for every session: similarity to the last item.

        Parameters
        ----------
        item_seq : int array of shape (B, L), left-aligned, 0-padded
        item_seq_len : int array of shape (B,)

        Returns
        -------
        scores : float64 array of shape (B, n); column ``j`` is item ``j + 1``
        """
        item_seq, item_seq_len = _check_batch(item_seq, item_seq_len, self.n_items)
        B = len(item_seq)
        last = item_seq[np.arange(B), item_seq_len - 1]  # B
        if self.fallback == "popularity":
            scores = np.repeat(self.background[None, :], B, axis=0)  # B,n
        else:
            scores = np.zeros((B, self.n_items))
        start, stop = self.indptr[last], self.indptr[last + 1]  # B
        m = stop - start  # B: neighbours per row
        first = np.cumsum(m) - m
        src = np.arange(int(m.sum())) + np.repeat(start - first, m)  # into indices/sim
        scores[np.repeat(np.arange(B), m), self.indices[src] - 1] = self.sim[src]
        return scores
