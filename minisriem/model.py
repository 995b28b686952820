"""The SR-IEM model: the layers composed, with a hand-written backward pass.

    from minisriem.model import SRIEM
    model = SRIEM(n_items, d=200, l=100, variant="paper", seed=0)
    loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    scores = model.scores(item_seq, item_seq_len)   # (B, n); column j is item j+1

Inputs, for a batch of B sessions padded to length L:

    item_seq      (B, L) int   item ids, left-aligned, 0-padded
    item_seq_len  (B,)   int   true lengths t_b, 1 <= t_b <= L
    targets       (B,)   int   the next item's id, 1..n

Two backends compute the same numbers (within float32 rounding):

    backend="numpy"   the layers of :mod:`minisriem.layers` composed as written,
                      the reference that a reader follows equation by equation
    backend="numba"   (default) the same session part, then the scoring and the
                      loss through the kernels of :mod:`minisriem.kernels`, into
                      large buffers that later calls reuse
"""

import sys

import numpy as np

from minisriem import kernels, layers
from minisriem.importance import MODULES, PARAM_SHAPES

VARIANTS = ("paper", "official")
BACKENDS = ("numba", "numpy")


class SRIEM:
    """SR-IEM (Pan et al., SIGIR 2020) with a hand-written backward pass.

    Parameters
    ----------
    n_items : int
        Number of items ``n``; ids are 1..n and 0 is padding.
    d : int
        Embedding size (paper: 200).
    l : int
        Query/key size of the paper's variant (paper: 100); unused by "official".
    variant : {"paper", "official"}
        "paper" follows the equations; "official" follows the authors'
        released code (linear Q, K; scaling inside the sigmoid; divide by
        ``t - 1``; a bias in the fusion).
    seed : int
        Seed of the initialisation: every parameter uniform in
        ``[-1/sqrt(d), 1/sqrt(d)]``; the padding row ``E[0]`` is zero.
    dtype : numpy dtype
        float32 for training and scoring, float64 for gradient checks.
    importance : str
        The importance module (see :mod:`minisriem.importance`); "iem" is SR-IEM's.
    backend : {"numba", "numpy"}
        "numba" (default) runs the scoring, the loss and the embedding gradient
        through :mod:`minisriem.kernels` and reuses its large buffers (see
        ``_buffer``); "numpy" composes :mod:`minisriem.layers` as written.
        With both, an array a call returned is never overwritten by a later
        call while you hold it.

    Attributes
    ----------
    params : dict of arrays
        "E" (n+1, d), the importance module's keys ("Wq", "Wk": (d, l), or
        (d, d) for "official"), "W0" (d, 2d), and "b0" (d,) for "official".
        Arrays may be assigned in place; the next call uses them.
    """

    def __init__(
        self,
        n_items,
        d=200,
        l=100,
        variant="paper",
        seed=0,
        dtype=np.float32,
        importance="iem",
        backend="numba",
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if importance not in MODULES:
            raise ValueError(f"importance must be one of {tuple(MODULES)}, not {importance!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.backend = backend
        self._buffers = {}  # name -> list of flat arrays (backend "numba"), see _buffer
        self.n_items, self.d, self.l = int(n_items), int(d), int(l)
        self.variant, self.importance_name = variant, importance
        self.dtype = np.dtype(dtype)
        self.seed = seed
        shapes = {"E": (self.n_items + 1, self.d)}
        shapes.update(PARAM_SHAPES[importance](self.d, self.l, variant))
        shapes["W0"] = (self.d, 2 * self.d)
        if variant == "official":
            shapes["b0"] = (self.d,)
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.d)
        self.params = {}
        for name, shape in shapes.items():
            self.params[name] = rng.uniform(-bound, bound, size=shape).astype(self.dtype)
        self.params["E"][0] = 0

    # ------------------------------------------------------------------
    def _check_batch(self, item_seq, item_seq_len, targets=None):
        item_seq = np.asarray(item_seq)
        item_seq_len = np.asarray(item_seq_len)
        if item_seq.ndim != 2 or item_seq_len.shape != (item_seq.shape[0],):
            raise ValueError(
                f"item_seq must be (B, L) and item_seq_len (B,); got {item_seq.shape} "
                f"and {item_seq_len.shape}"
            )
        if item_seq_len.size and (item_seq_len.min() < 1 or item_seq_len.max() > item_seq.shape[1]):
            raise ValueError(
                "every session needs 1..L items: item_seq_len holds "
                f"{item_seq_len.min()}..{item_seq_len.max()} with L = {item_seq.shape[1]}; "
                "drop empty sessions before calling the model"
            )
        if item_seq.size and (item_seq.min() < 0 or item_seq.max() > self.n_items):
            raise ValueError(f"item ids must be in 0..{self.n_items} (0 = padding)")
        if targets is not None:
            targets = np.asarray(targets)
            if targets.shape != item_seq_len.shape:
                raise ValueError(f"targets must be (B,), got {targets.shape}")
            if targets.size and (targets.min() < 1 or targets.max() > self.n_items):
                raise ValueError(f"targets must be item ids in 1..{self.n_items}")
        return item_seq, item_seq_len, targets

    def _buffer(self, name, shape):
        """A C-contiguous array of ``shape`` (contents undefined) that no caller holds.

        Allocating the (B, n) scores and the (n+1, d) ``dE`` afresh every step
        costs a page fault per 4 KB, about as much as the softmax itself. So
        the model keeps up to two flat arrays per name and reuses one that
        nothing outside this method refers to: every view of an array, such
        as a ``grads["E"]`` the caller still holds, adds to its reference
        count. In a training loop the two arrays alternate; an array you keep
        is never overwritten.
        """
        size = int(np.prod(shape))
        pool = self._buffers.setdefault(name, [])
        for flat in pool:
            # 3 references: the pool's list, the loop variable, getrefcount's argument
            if sys.getrefcount(flat) == 3 and flat.size >= size and flat.dtype == self.dtype:
                return flat[:size].reshape(shape)
        flat = np.empty(size, dtype=self.dtype)
        if len(pool) < 2:
            pool.append(flat)
        return flat[:size].reshape(shape)

    # ------------------------------------------------------------------
    def session_forward(self, item_seq, item_seq_len):
        """The session part, eq. (1)-(7): from item ids to ``z_h``.

        Returns
        -------
        z_h : array of shape (B, d)
        cache : dict; ``cache["beta"]`` (B, L) is the importance of each item
        """
        p = self.params
        forward, _ = MODULES[self.importance_name]
        emb, emb_cache = layers.embedding_forward(p["E"], item_seq)  # B,L,d
        z_l, imp_cache = forward(emb, item_seq_len, p, self.variant)  # B,d
        z_s, last_cache = layers.last_item_forward(emb, item_seq_len)  # B,d
        z_h, fus_cache = layers.fusion_forward(z_l, z_s, p["W0"], p.get("b0"))  # B,d
        cache = {
            "beta": imp_cache["beta"],
            "emb": emb_cache,
            "importance": imp_cache,
            "last": last_cache,
            "fusion": fus_cache,
        }
        return z_h, cache

    def session_backward(self, dz_h, cache):
        """Backward pass of :meth:`session_forward`.

        Returns
        -------
        grads : dict keyed like ``params``; ``grads["E"]`` holds only the
            embedding-lookup part (the scoring part is added by the caller)
        """
        demb, grads = self._session_backward_to_emb(dz_h, cache)
        grads["E"] = layers.embedding_backward(demb, cache["emb"])
        return grads

    def _session_backward_to_emb(self, dz_h, cache):
        """:meth:`session_backward` up to, not including, the scatter into ``E``.

        Returns
        -------
        demb : array of shape (B, L, d), the gradient of the looked-up embeddings
        grads : dict with every key of ``params`` except "E"
        """
        _, backward = MODULES[self.importance_name]
        dz_l, dz_s, dW0, db0 = layers.fusion_backward(dz_h, cache["fusion"])
        demb = layers.last_item_backward(dz_s, cache["last"])  # B,L,d
        demb_imp, grads = backward(dz_l, cache["importance"])
        demb += demb_imp
        grads["W0"] = dW0
        if db0 is not None:
            grads["b0"] = db0
        return demb, grads

    # ------------------------------------------------------------------
    def loss_and_grads(self, item_seq, item_seq_len, targets):
        """Mean cross-entropy of the batch (eq. 9-10, no L2) and its gradients.

        Returns
        -------
        loss : float
        grads : dict of arrays with exactly the keys and shapes of ``params``
        """
        item_seq, item_seq_len, targets = self._check_batch(item_seq, item_seq_len, targets)
        if self.backend == "numba":
            return self._loss_and_grads_numba(item_seq, item_seq_len, targets)
        z_h, cache = self.session_forward(item_seq, item_seq_len)
        scores, sc_cache = layers.scores_forward(z_h, self.params["E"])  # B,n
        loss, ce_cache = layers.softmax_cross_entropy_forward(scores, targets - 1)
        dscores = layers.softmax_cross_entropy_backward(1.0, ce_cache)  # B,n
        dz_h, dE = layers.scores_backward(dscores, sc_cache)
        grads = self.session_backward(dz_h, cache)
        dE += grads["E"]
        grads["E"] = dE
        return loss, {k: grads[k] for k in self.params}

    def _loss_and_grads_numba(self, item_seq, item_seq_len, targets):
        """:meth:`loss_and_grads` with the kernels, without (B, n) or (n+1, d) temporaries.

        A step is dominated by three (B x d x n) matrix products and by
        passes over the (B, n) score matrix; the session part, eq. (1)-(7),
        is small and stays in NumPy. Per step: the scores go into one reused
        buffer, the softmax cross-entropy turns them into their gradient in
        place, and ``dE`` is written straight into a second reused buffer.
        The large products are split by items over threads
        (:func:`minisriem.kernels.matmul_items`).
        """
        E = self.params["E"]
        E_items = E[1:]  # n,d: a view, and E_items.T is a view too (no copies)
        B, n = item_seq.shape[0], self.n_items
        with kernels.blas_single_thread():
            z_h, cache = self.session_forward(item_seq, item_seq_len)  # B,d
            z_h = np.ascontiguousarray(z_h, dtype=self.dtype)
            dscores = self._buffer("scores", (B, n))
            kernels.matmul_items(z_h, E_items.T, dscores, split="b_rows")  # scores, eq. (8)
            loss = kernels.softmax_xent_inplace(dscores, targets - 1)  # eq. (9)-(10): now dL/dS
            dz_h = kernels.matmul_items(dscores, E_items, np.empty_like(z_h), split="inner")
            demb, grads = self._session_backward_to_emb(dz_h, cache)  # B,L,d
            dE = self._buffer("dE", E.shape)  # n+1,d
            dE[0] = 0
            kernels.matmul_items(dscores.T, z_h, dE[1:], split="out_rows")  # dS^T z_h
            kernels.embedding_scatter_add(dE, item_seq, demb)  # the lookup part
        grads["E"] = dE
        return loss, {k: grads[k] for k in self.params}

    def scores(self, item_seq, item_seq_len, out=None):
        """Scores of every item for every session, eq. (8).

        Parameters
        ----------
        item_seq, item_seq_len : the batch, as in :meth:`loss_and_grads`
        out : None or a C-contiguous array of shape (B, n) and the model's
            dtype, to write the scores into (an evaluation loop can reuse one)

        Returns
        -------
        scores : array of shape (B, n); column ``j`` is item ``j + 1``
        """
        item_seq, item_seq_len, _ = self._check_batch(item_seq, item_seq_len)
        if self.backend == "numpy" and out is None:
            z_h, _ = self.session_forward(item_seq, item_seq_len)
            scores, _ = layers.scores_forward(z_h, self.params["E"])
            return scores
        if out is None:
            out = np.empty((item_seq.shape[0], self.n_items), dtype=self.dtype)
        with kernels.blas_single_thread():
            z_h, _ = self.session_forward(item_seq, item_seq_len)
            z_h = np.ascontiguousarray(z_h, dtype=self.dtype)
            return kernels.matmul_items(z_h, self.params["E"][1:].T, out, split="b_rows")

    def rank_topk(self, item_seq, item_seq_len, targets, k=20):
        """Rank of each true next item among all ``n`` items, and the top ``k`` items.

        ``rank = 1 + #items scored strictly higher than the target``; the top
        ``k`` are item ids, best first, ties broken by the lower id. With
        backend "numba" the (B, n) scores go into a reused buffer and are ranked
        by :func:`minisriem.kernels.rank_topk`.

        Returns
        -------
        rank : int64 array of shape (B,)
        topk : int64 array of shape (B, k), item ids 1..n
        """
        item_seq, item_seq_len, targets = self._check_batch(item_seq, item_seq_len, targets)
        if self.backend == "numba":
            buf = self._buffer("eval_scores", (item_seq.shape[0], self.n_items))
            scores = self.scores(item_seq, item_seq_len, out=buf)
            rank, topk = kernels.rank_topk(scores, targets - 1, k)
        else:
            scores = self.scores(item_seq, item_seq_len)
            rank, topk = kernels.rank_topk_numpy(scores, targets - 1, k)
        return rank, topk + 1

    def importance(self, item_seq, item_seq_len):
        """The weight ``beta`` (eq. 5) each item of each session receives.

        Returns
        -------
        beta : array of shape (B, L), 0 at padded positions
        """
        item_seq, item_seq_len, _ = self._check_batch(item_seq, item_seq_len)
        _, cache = self.session_forward(item_seq, item_seq_len)
        return cache["beta"]

    def __repr__(self):
        return (
            f"SRIEM(n_items={self.n_items}, d={self.d}, l={self.l}, "
            f"variant={self.variant!r}, importance={self.importance_name!r}, "
            f"dtype={self.dtype.name}, backend={self.backend!r})"
        )
