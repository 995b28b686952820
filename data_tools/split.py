"""Examples as compact arrays: the :class:`Split` class and prefix augmentation.

A split holds ``N`` examples. Example ``i`` is a prefix of a session, the
items ``items[offsets[i]:offsets[i + 1]]`` in click order, and its target is
``targets[i]``, the item clicked next. This "compressed sparse row" (CSR)
layout stores every prefix once, without padding.
"""

import numpy as np

from .errors import DataError


class Split:
    """A set of (prefix, next item) examples in CSR layout.

    Parameters
    ----------
    offsets : ndarray of shape (N + 1,), int64
        Example ``i`` is ``items[offsets[i]:offsets[i + 1]]``; ``offsets[0] == 0``.
    items : ndarray of shape (nnz,), int32
        Item ids 1..n of all prefixes, concatenated.
    targets : ndarray of shape (N,), int32
        The next item of each example.
    session : ndarray of shape (N,), int32
        0-based index of the session each example was cut from, in date
        order, so nondecreasing. All prefixes of one session share it.
    noise : ndarray of shape (nnz,), bool, optional
        Aligned with ``items``: True for a click that is off the session's
        intent. Only the synthetic dataset has it; otherwise None.
    """

    def __init__(self, offsets, items, targets, session, noise=None):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int32)
        self.targets = np.asarray(targets, dtype=np.int32)
        self.session = np.asarray(session, dtype=np.int32)
        self.noise = None if noise is None else np.asarray(noise, dtype=bool)
        n = len(self.targets)
        if self.offsets.shape != (n + 1,) or self.session.shape != (n,):
            raise ValueError("offsets must have N + 1 entries and session N")
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.items):
            raise ValueError("offsets must run from 0 to len(items)")
        if self.noise is not None and self.noise.shape != self.items.shape:
            raise ValueError("noise must be aligned with items")

    def __len__(self):
        return len(self.targets)

    def __repr__(self):
        return f"Split({len(self)} examples, {len(self.items)} prefix items)"

    @property
    def lengths(self):
        """ndarray of shape (N,), int64: the prefix length of each example."""
        return np.diff(self.offsets)

    def padded(self, L=10):
        """The model's batch layout: the ``L`` most recent items, left-aligned.

        Parameters
        ----------
        L : int
            Maximum session length the model reads (the paper's ``L = 10``).

        Returns
        -------
        item_seq : ndarray of shape (N, L), int32
            Row ``i`` holds the last ``min(len_i, L)`` items of prefix ``i``
            in click order, then zeros (the padding id).
        item_seq_len : ndarray of shape (N,), int32
            Number of real items per row, in ``1..L``; the last real item
            is at ``item_seq[i, item_seq_len[i] - 1]``.
        targets : ndarray of shape (N,), int32
        """
        kept = np.minimum(self.lengths, L)  # N
        first = self.offsets[1:] - kept  # N: where the kept items start
        cols = np.arange(L)  # L
        real = cols[None, :] < kept[:, None]  # N, L
        where = np.where(real, first[:, None] + cols[None, :], 0)  # N, L
        item_seq = np.where(real, self.items[where] if len(self.items) else 0, 0)
        return item_seq.astype(np.int32), kept.astype(np.int32), self.targets.copy()

    def subset(self, which):
        """The examples selected by a boolean mask or an index array.

        Parameters
        ----------
        which : ndarray of shape (N,), bool, or ndarray of int
            A mask over examples, or indices of examples (in any order).

        Returns
        -------
        Split
            The selected examples, in the order given. Session indices are
            kept as in this split, so they still point at the same sessions.
        """
        which = np.asarray(which)
        index = np.flatnonzero(which) if which.dtype == bool else which.astype(np.int64)
        lengths = self.lengths[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = _ranges(self.offsets[index], lengths)
        noise = None if self.noise is None else self.noise[gather]
        return Split(offsets, self.items[gather], self.targets[index], self.session[index], noise)


def _ranges(starts, lengths):
    """Concatenate ``arange(s, s + n)`` for every pair ``(s, n)``.

    Parameters
    ----------
    starts, lengths : ndarray of shape (M,), int

    Returns
    -------
    ndarray of shape (lengths.sum(),), int64
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    block_start = np.cumsum(lengths) - lengths  # where each range begins in the output
    shift = np.repeat(np.asarray(starts, dtype=np.int64) - block_start, lengths)
    return np.arange(len(shift), dtype=np.int64) + shift


def augment(offsets, items, noise=None, block_items=1 << 22):
    """Prefix augmentation: turn sessions into (prefix, next item) examples.

    A session ``[x_1, ..., x_k]`` gives the examples ``([x_1..x_j], x_{j+1})``
    for ``j = k-1, k-2, ..., 1``: longest prefix first, sessions in the order
    given. This is the order of SR-GNN's ``train.txt``.

    Parameters
    ----------
    offsets : ndarray of shape (S + 1,), int64
        Session ``s`` is ``items[offsets[s]:offsets[s + 1]]``; every session
        has at least 2 items.
    items : ndarray of shape (nnz,), int32
    noise : ndarray of shape (nnz,), bool, optional
        Carried over to the prefixes when given.
    block_items : int
        Sessions are processed in blocks of about this many output items, to
        bound the memory of the index arithmetic on large datasets.

    Returns
    -------
    Split
        ``sum(k - 1)`` examples with ``sum(k (k - 1) / 2)`` prefix items;
        ``session`` is the 0-based session index.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    k = np.diff(offsets)  # S
    if np.any(k < 2):
        raise ValueError("every session needs at least 2 items")
    n_examples = k - 1  # S
    out_items_per_session = k * (k - 1) // 2  # S
    n = int(n_examples.sum())
    ex_offsets = np.zeros(n + 1, dtype=np.int64)
    out_items = np.empty(int(out_items_per_session.sum()), dtype=np.int32)
    out_noise = None if noise is None else np.empty(len(out_items), dtype=bool)
    targets = np.empty(n, dtype=np.int32)
    session = np.repeat(np.arange(len(k), dtype=np.int32), n_examples)
    # prefix length of each example: k-1, k-2, ..., 1 within its session
    first_example = np.cumsum(n_examples) - n_examples  # S
    plen = np.repeat(k - 1, n_examples) - (np.arange(n) - np.repeat(first_example, n_examples))
    np.cumsum(plen, out=ex_offsets[1:])
    starts = np.repeat(offsets[:-1], n_examples)  # N: where each example's session starts
    targets[:] = items[starts + plen]

    # Fill the prefix items block by block of sessions.
    ends_cum = np.cumsum(out_items_per_session)
    s = 0
    while s < len(k):
        e = int(np.searchsorted(ends_cum, ends_cum[s] - out_items_per_session[s] + block_items))
        e = min(max(e, s + 1), len(k))
        a, b = first_example[s], first_example[e - 1] + n_examples[e - 1]
        gather = _ranges(starts[a:b], plen[a:b])
        out_items[ex_offsets[a] : ex_offsets[b]] = items[gather]
        if noise is not None:
            out_noise[ex_offsets[a] : ex_offsets[b]] = noise[gather]
        s = e
    return Split(ex_offsets, out_items, targets, session, out_noise)


def sessions_of(split):
    """Recover each example's session from the order of prefix augmentation.

    Example ``i + 1`` continues the session of example ``i`` exactly when it
    is example ``i``'s prefix without its last item and its target is that
    last item; otherwise a new session starts. For data written by
    :func:`augment` this finds every session boundary.

    Parameters
    ----------
    split : Split
        Only ``offsets``, ``items`` and ``targets`` are read.

    Returns
    -------
    session : ndarray of shape (N,), int32
        0-based session index of each example.
    clicks : ndarray of shape (S,), int64
        Length of each session counting its target: the first prefix's
        length plus one.
    """
    n = len(split.targets)
    lengths = split.lengths
    cont = np.zeros(n, dtype=bool)  # cont[i]: example i continues example i - 1
    if n > 1:
        prev_len = lengths[:-1]
        cont[1:] = lengths[1:] == prev_len - 1
        cand = np.flatnonzero(cont[1:]) + 1
        # target of example i == last item of example i - 1
        last_prev = split.items[split.offsets[cand] - 1]
        ok = split.targets[cand] == last_prev
        # prefix of example i == prefix of example i - 1 without its last item
        gather_now = _ranges(split.offsets[cand], lengths[cand])
        gather_prev = _ranges(split.offsets[cand - 1], lengths[cand])
        same = split.items[gather_now] == split.items[gather_prev]
        owner = np.repeat(np.arange(len(cand)), lengths[cand])
        mismatch = np.zeros(len(cand), dtype=bool)
        mismatch[owner[~same]] = True
        cont[cand] = ok & ~mismatch
    session = (np.cumsum(~cont) - 1).astype(np.int32)
    first = np.flatnonzero(~cont)
    clicks = lengths[first] + 1
    return session, clicks


def split_validation(train, fraction=0.1):
    """Hold out the most recent training sessions for validation.

    Parameters
    ----------
    train : Split
    fraction : float in [0, 1)
        Share of training *sessions* (not examples) to hold out: the last
        ``round(fraction * S)`` sessions by session index, at least one when
        ``fraction > 0``. All prefixes of a session land on the same side.

    Returns
    -------
    train : Split
    valid : Split or None
        None when ``fraction == 0``.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return train, None
    sessions = np.unique(train.session)
    n_valid = max(1, int(round(fraction * len(sessions))))
    if n_valid >= len(sessions):
        raise DataError(
            f"cannot hold out {fraction:.0%} of {len(sessions)} training sessions "
            "and keep any for training: use a smaller validation fraction"
        )
    is_valid = train.session >= sessions[len(sessions) - n_valid]
    return train.subset(~is_valid), train.subset(is_valid)


def sessions_from_examples(split):
    """The sessions a split's examples were cut from: each one's longest prefix and its target.

    For examples made by :func:`augment` this gives back the sessions
    exactly; for a session only partly present (YOOCHOOSE 1/64's first
    training session) it gives the part the examples use.

    Parameters
    ----------
    split : Split
        ``session`` groups the examples; sessions are returned in order of
        their first example.

    Returns
    -------
    offsets : ndarray of shape (S + 1,), int64
    items : ndarray of shape (clicks,), int32
    """
    if len(split) == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    starts_run = np.diff(split.session, prepend=split.session[0] - 1) != 0  # N
    group = np.cumsum(starts_run) - 1  # N: which run of equal session indices
    lengths = split.lengths
    order = np.lexsort((-lengths, group))  # by run, longest prefix first (stable)
    longest = order[np.diff(group[order], prepend=-1) != 0]  # S: the longest example per run
    plen = lengths[longest]  # S
    offsets = np.zeros(len(longest) + 1, dtype=np.int64)
    np.cumsum(plen + 1, out=offsets[1:])
    items = np.empty(int(offsets[-1]), dtype=np.int32)
    is_target = np.zeros(len(items), dtype=bool)
    is_target[offsets[1:] - 1] = True
    items[~is_target] = split.items[_ranges(split.offsets[longest], plen)]
    items[is_target] = split.targets[longest]
    return offsets, items
