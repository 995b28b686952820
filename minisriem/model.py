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
    backend="numba"   (default) the same computation through the kernels of
                      :mod:`minisriem.kernels`: SR-IEM's session part as one
                      kernel per direction, the item-sized work (scores, loss,
                      dE and Adam on E) in two passes over item blocks, into
                      the model's workspace (see "Workspace" below)

Workspace. With backend "numba" the model keeps its large per-step arrays in
``model.workspace`` (a :class:`minisriem.workspace.Workspace`) and reuses
them from one call to the next: the (B, n) block softmax of a training step
and the (B, n) scores of ``rank_topk``. ``grads["E"]`` of ``loss_and_grads``
refers to it: it is a :class:`minisriem.kernels.ItemGradient`, which
``Adam.step`` applies block by block and which ``np.asarray`` turns into the
dense (n+1, d) array. A ``grads["E"]`` still held when the next
``loss_and_grads`` starts takes a private copy first, so it never changes;
a loop that drops it before the next step copies nothing.
"""

import numpy as np

from minisriem import kernels, layers
from minisriem.importance import MODULES, PARAM_SHAPES
from minisriem.workspace import Workspace

VARIANTS = ("paper", "official")
BACKENDS = ("numba", "numpy")
AFFINITY_FORMS = ("variant", "paper", "official", "scaled")
DROPOUT_STREAM = 0xD0
"""Mixed into the dropout masks' seed, ``default_rng([seed, DROPOUT_STREAM, *step])``, so
that they never share a stream with the epochs' shuffling, ``default_rng([seed, epoch])``."""


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
        "numba" (default) runs through :mod:`minisriem.kernels` and reuses
        the arrays of ``workspace`` (see the module's docstring); "numpy"
        composes :mod:`minisriem.layers` as written and returns fresh arrays.
    scale : float
        SR-IEM+'s normalised scoring (NISER, Gupta et al. 2019): with
        ``scale > 0`` the rows of ``E`` are L2-normalised where they are looked
        up and where they are scored, ``z_h`` too, and the logits of eq. (8)
        are ``scale * cos(z_h, E[v])``. 0 (default): the paper's dot product.
    dropout : float in [0, 1)
        SR-IEM+'s inverted dropout on the looked-up embeddings (B, L, d),
        only when ``loss_and_grads`` is given a ``step``; 0 (default): none.
    affinity : {"variant", "paper", "official", "scaled"}
        The form of SR-IEM's eq. (1)-(4) ("iem" only): "variant" (default)
        follows ``variant``; "scaled" is the paper's with the 1/sqrt(d)
        inside the sigmoid of eq. (3). ``variant`` keeps the rest (the bias
        of eq. 7).

    Attributes
    ----------
    params : dict of arrays
        "E" (n+1, d), the importance module's keys ("Wq", "Wk": (d, l), or
        (d, d) for "official"), "W0" (d, 2d), and "b0" (d,) for "official".
        Arrays may be assigned in place; the next call uses them.
    workspace : Workspace
        The large arrays that backend "numba" reuses across calls.
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
        scale=0.0,
        dropout=0.0,
        affinity="variant",
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if importance not in MODULES:
            raise ValueError(f"importance must be one of {tuple(MODULES)}, not {importance!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        if affinity not in AFFINITY_FORMS:
            raise ValueError(f"affinity must be one of {AFFINITY_FORMS}, not {affinity!r}")
        if not scale >= 0 or not 0 <= dropout < 1:
            raise ValueError(f"need scale >= 0 and 0 <= dropout < 1, got {scale}, {dropout}")
        self.scale, self.dropout, self.affinity = float(scale), float(dropout), affinity
        self.iem_form = variant if affinity == "variant" else affinity
        self.backend = backend
        self.workspace = Workspace()
        self.n_items, self.d, self.l = int(n_items), int(d), int(l)
        self.variant, self.importance_name = variant, importance
        self.dtype = np.dtype(dtype)
        self.seed = seed
        shapes = {"E": (self.n_items + 1, self.d)}
        shapes.update(PARAM_SHAPES[importance](self.d, self.l, self.iem_form))
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

    # ------------------------------------------------------------------
    def session_forward(self, item_seq, item_seq_len, step=None, table=None):
        """The session part, eq. (1)-(7): from item ids to ``z_h``.

        Parameters
        ----------
        item_seq, item_seq_len : the batch
        step : None, or the training step (an int or tuple of ints): with
            ``dropout > 0`` the looked-up embeddings get a dropout mask drawn
            from it (:meth:`dropout_rng`); None: no dropout (evaluation)
        table : None, or the (n+1, d) table to look items up in; default
            :meth:`item_table`'s (``E``, or its normalised rows when ``scale > 0``)

        Returns
        -------
        z_h : array of shape (B, d)
        cache : dict; ``cache["beta"]`` (B, L) is the importance of each item
        """
        p = self.params
        if table is None:
            table, _ = self.item_table()
        forward, _ = MODULES[self.importance_name]
        emb, emb_cache = layers.embedding_forward(table, item_seq)  # B,L,d
        drop_cache, rng = None, self.dropout_rng(step)
        if rng is not None:
            emb, drop_cache = layers.dropout_forward(emb, self.dropout, rng)  # B,L,d
        z_l, imp_cache = forward(emb, item_seq_len, p, self.iem_form)  # B,d
        z_s, last_cache = layers.last_item_forward(emb, item_seq_len)  # B,d
        z_h, fus_cache = layers.fusion_forward(z_l, z_s, p["W0"], p.get("b0"))  # B,d
        cache = {
            "beta": imp_cache["beta"],
            "emb": emb_cache,
            "dropout": drop_cache,
            "importance": imp_cache,
            "last": last_cache,
            "fusion": fus_cache,
        }
        return z_h, cache

    # ------------------------------------------------------------------
    # SR-IEM+ (issue #12): normalised scoring (NISER) and embedding dropout
    def item_table(self, reuse=False):
        """The rows items are looked up in and scored against.

        ``E`` itself; with ``scale > 0`` (NISER, Gupta et al. 2019) every row
        L2-normalised, ``layers.l2_normalize_forward(E)`` (row 0, padding, stays 0;
        backend "numba": its kernel, :func:`minisriem.kernels.l2_normalize_rows`).

        Parameters
        ----------
        reuse : bool; backend "numba" only: write the rows into the workspace
            (``loss_and_grads`` does, after ``workspace.advance()``, and its
            ``grads["E"]`` refers to them) instead of fresh arrays

        Returns
        -------
        table : array of shape (n+1, d)
        cache : the normalisation's cache, or None when ``scale == 0``
        """
        E = self.params["E"]
        if self.scale == 0:
            return E, None
        if self.backend == "numba":
            if not reuse:
                return kernels.l2_normalize_rows(E)
            out = (
                self.workspace.get("E_unit", E.shape, E.dtype),
                self.workspace.get("E_norm", (E.shape[0], 1), E.dtype),
            )
            return kernels.l2_normalize_rows(E, out=out)
        return layers.l2_normalize_forward(E)

    def score_vector(self, z_h):
        """What the item rows are multiplied with in eq. (8): ``z_h``, or ``scale * z_h / |z_h|``.

        With ``scale > 0`` the logit of item ``v`` is ``scale * cos(z_h, E[v])``.

        Returns
        -------
        q : array of shape (B, d)
        cache : for :meth:`score_vector_backward` (None when ``scale == 0``)
        """
        if self.scale == 0:
            return z_h, None
        z_n, cache = layers.l2_normalize_forward(z_h)
        return self.dtype.type(self.scale) * z_n, cache

    def score_vector_backward(self, dq, cache):
        """``dz_h`` from ``dq``, the gradient of :meth:`score_vector`'s output."""
        if cache is None:
            return dq
        (dz_h,) = layers.l2_normalize_backward(self.dtype.type(self.scale) * dq, cache)
        return dz_h

    def dropout_rng(self, step):
        """The generator of step ``step``'s dropout masks, or None (no dropout).

        ``default_rng([seed, DROPOUT_STREAM, *step])``: the masks depend only on
        the model's seed and the step, so a run repeats them exactly, and a
        resumed run draws the masks of the run it continues.
        """
        if self.dropout == 0 or step is None:
            return None
        step = (step,) if np.ndim(step) == 0 else tuple(step)
        return np.random.default_rng([int(self.seed), DROPOUT_STREAM, *map(int, step)])

    def session_backward(self, dz_h, cache):
        """Backward pass of :meth:`session_forward`.

        Returns
        -------
        grads : dict keyed like ``params``; ``grads["E"]`` holds only the
            embedding-lookup part (the scoring part is added by the caller)
        """
        items, demb, grads = self._session_backward_to_emb(dz_h, cache)
        (grads["E"],) = layers.embedding_backward(demb, (items, self.params["E"].shape))
        return grads

    def _session_backward_to_emb(self, dz_h, cache):
        """:meth:`session_backward` up to, not including, the scatter into ``E``.

        Returns
        -------
        items : int array, the looked-up item ids: ``item_seq`` (B, L), or
            its N real positions (N,) on the kernel path
        demb : array of shape ``(*items.shape, d)``, their embeddings' gradient
        grads : dict with every key of ``params`` except "E"
        """
        items, demb, grads = self._session_backward_to_dropout(dz_h, cache)
        if cache.get("dropout") is not None:  # SR-IEM+: the embeddings' dropout
            (demb,) = layers.dropout_backward(demb, cache["dropout"])
        return items, demb, grads

    def _session_backward_to_dropout(self, dz_h, cache):
        """:meth:`_session_backward_to_emb` without the dropout's backward (the same
        without dropout): ``demb`` is the gradient of the embeddings after the dropout."""
        if "kernel" in cache:
            return self._iem_session_backward(dz_h, cache)
        _, backward = MODULES[self.importance_name]
        dz_l, dz_s, dW0, db0 = layers.fusion_backward(dz_h, cache["fusion"])
        (demb,) = layers.last_item_backward(dz_s, cache["last"])  # B,L,d
        demb_imp, grads = backward(dz_l, cache["importance"])
        demb += demb_imp
        grads["W0"] = dW0
        if db0 is not None:
            grads["b0"] = db0
        return cache["emb"][0], demb, grads

    def _session_forward_fast(self, item_seq, item_seq_len, step=None, table=None):
        """:meth:`session_forward` as backend "numba" computes it.

        SR-IEM's importance module goes through its kernels
        (:meth:`_iem_session_forward`); the cache then holds what their
        backward needs, not the layers' caches that :meth:`session_forward`
        returns for a reader to inspect. Other modules use the layers.
        """
        if table is None:
            table, _ = self.item_table()
        if self.importance_name == "iem":
            return self._iem_session_forward(item_seq, item_seq_len, step, table)
        return self.session_forward(item_seq, item_seq_len, step, table)

    def _iem_session_forward(self, item_seq, item_seq_len, step, table):
        """:meth:`session_forward` of SR-IEM with :func:`minisriem.kernels.iem_pool_forward`.

        On the N real positions only (no padding): one product
        ``E_s [Wq | Wk]`` for their query and key projections, the kernel for
        eq. (1)-(6) and the last item, and the fusion product of eq. (7).
        """
        p = self.params
        valid = layers.valid_mask(item_seq_len, item_seq.shape[1])  # B,L
        items = item_seq[valid]  # N
        emb = table[items]  # N,d
        mask, rng = None, self.dropout_rng(step)
        if rng is not None:  # the mask of session_forward's (B, L, d) draw, real positions
            mask = layers.dropout_mask((*valid.shape, self.d), self.dropout, rng, emb.dtype)
            mask = mask[valid]  # N,d
            emb = emb * mask
        Wqk = np.concatenate([p["Wq"], p["Wk"]], axis=1)  # d,2l
        zcat, pool_cache = kernels.iem_pool_forward(
            emb @ Wqk, emb, item_seq_len, self.iem_form, item_seq.shape[1]
        )
        z_h = zcat @ p["W0"].T  # B,d, eq. (7)
        if "b0" in p:
            z_h += p["b0"]
        cache = {
            "beta": pool_cache["beta"],
            "emb": (item_seq, p["E"].shape),  # as layers.embedding_forward's cache
            "dropout": mask,
            # items (N,), emb (N, d), Wqk (d, 2l), zcat (B, 2d), the kernel's own cache
            "kernel": {"items": items, "emb": emb, "Wqk": Wqk, "zcat": zcat, "pool": pool_cache},
        }
        return z_h, cache

    def _iem_session_backward(self, dz_h, cache):
        """:meth:`_session_backward_to_emb` of :meth:`_iem_session_forward`."""
        k = cache["kernel"]
        items, emb, Wqk, zcat, pool_cache = k["items"], k["emb"], k["Wqk"], k["zcat"], k["pool"]
        dzcat = dz_h @ self.params["W0"]  # B,2d
        grads = {"W0": dz_h.T @ zcat}  # d,2d
        if "b0" in self.params:
            grads["b0"] = dz_h.sum(axis=0)
        dqk, demb = kernels.iem_pool_backward(dzcat, pool_cache)  # N,2l / N,d
        demb += dqk @ Wqk.T
        dWqk = emb.T @ dqk  # d,2l
        l = Wqk.shape[1] // 2
        grads["Wq"] = np.ascontiguousarray(dWqk[:, :l])
        grads["Wk"] = np.ascontiguousarray(dWqk[:, l:])
        return items, demb, grads

    # ------------------------------------------------------------------
    def loss_and_grads(self, item_seq, item_seq_len, targets, step=None):
        """Mean cross-entropy of the batch (eq. 9-10, no L2) and its gradients.

        Parameters
        ----------
        item_seq, item_seq_len, targets : the batch
        step : None, or the training step (int or tuple of ints) that seeds the
            dropout masks (see :meth:`dropout_rng`); None: no dropout. The
            trainer passes ``(epoch, batch)``; the same step, the same masks.

        Returns
        -------
        loss : float
        grads : dict of arrays with exactly the keys and shapes of ``params``
        """
        item_seq, item_seq_len, targets = self._check_batch(item_seq, item_seq_len, targets)
        if self.backend == "numba":
            return self._loss_and_grads_numba(item_seq, item_seq_len, targets, step)
        table, table_cache = self.item_table()  # E, or its normalised rows (SR-IEM+)
        z_h, cache = self.session_forward(item_seq, item_seq_len, step, table)
        q, q_cache = self.score_vector(z_h)  # z_h, or scale * z_h / |z_h| (SR-IEM+)
        scores, sc_cache = layers.scores_forward(q, table)  # B,n
        loss, ce_cache = layers.softmax_cross_entropy_forward(scores, targets - 1)
        (dscores,) = layers.softmax_cross_entropy_backward(1.0, ce_cache)  # B,n
        dq, dE = layers.scores_backward(dscores, sc_cache)
        grads = self.session_backward(self.score_vector_backward(dq, q_cache), cache)
        dE += grads["E"]
        if table_cache is not None:
            (dE,) = layers.l2_normalize_backward(dE, table_cache)
        grads["E"] = dE
        return loss, {k: grads[k] for k in self.params}

    def _loss_and_grads_numba(self, item_seq, item_seq_len, targets, step=None):
        """:meth:`loss_and_grads` with the kernels, without (B, n) or (n+1, d) temporaries.

        The item-sized work (three B x d x n products, the softmax over all
        n items, and Adam's dense update of E) dominates a step. Pass 1
        (:func:`minisriem.kernels.item_pass_forward`) walks item blocks for
        the loss and ``dz_h``, leaving a block softmax in the workspace; the
        session part's backward follows; pass 2 is ``grads["E"]``, an
        :class:`minisriem.kernels.ItemGradient` that ``Adam.step`` applies
        block by block. Both passes split the items over threads.

        With normalised scoring (``scale > 0``) the passes run on the normalised
        rows and ``scale * z_h / |z_h|``, and ``grads["E"]`` takes each block of
        the normalised rows' gradient back through the normalisation (its
        ``through``) before Adam applies it.
        """
        E = self.params["E"]
        B, n = item_seq.shape[0], self.n_items
        parts, block = kernels.item_parts(), kernels.ITEM_BLOCK
        self.workspace.advance()  # a previous grads["E"] still held copies its P out
        P = self.workspace.get("P", (B * n,), self.dtype)
        target_idx = np.asarray(targets, dtype=np.int64) - 1
        table, table_cache = self.item_table(reuse=True)
        with kernels.blas_single_thread():
            z_h, cache = self._session_forward_fast(item_seq, item_seq_len, step, table)  # B,d
            q, q_cache = self.score_vector(z_h)
            q = np.ascontiguousarray(q, dtype=self.dtype)
            loss, dq, row_scale = kernels.item_pass_forward(
                q, table[1:], target_idx, P, parts, block
            )
            dz_h = self.score_vector_backward(dq, q_cache)
            looked_up, demb, grads = self._session_backward_to_emb(dz_h, cache)
        items, rows = kernels.lookup_rows(looked_up, demb)
        grads["E"] = kernels.ItemGradient(
            P, q, target_idx, row_scale, items, rows, E.shape, parts, block, table_cache
        )
        self.workspace.share(grads["E"])
        return loss, {k: grads[k] for k in self.params}

    def scores(self, item_seq, item_seq_len, out=None):
        """Scores of every item for every session, eq. (8) (``scale * cos`` with ``scale > 0``).

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
        table, _ = self.item_table()
        if self.backend == "numpy" and out is None:
            z_h, _ = self.session_forward(item_seq, item_seq_len, table=table)
            scores, _ = layers.scores_forward(self.score_vector(z_h)[0], table)
            return scores
        if out is None:
            out = np.empty((item_seq.shape[0], self.n_items), dtype=self.dtype)
        with kernels.blas_single_thread():
            z_h, _ = self._session_forward_fast(item_seq, item_seq_len, table=table)
            q = np.ascontiguousarray(self.score_vector(z_h)[0], dtype=self.dtype)
            return kernels.matmul_items(q, table[1:].T, out, split="b_rows")

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
            buf = self.workspace.get("eval_scores", (item_seq.shape[0], self.n_items), self.dtype)
            scores = self.scores(item_seq, item_seq_len, out=buf)
            rank, topk = kernels.rank_topk(scores, targets - 1, k)
        else:
            scores = self.scores(item_seq, item_seq_len)
            rank, topk = kernels.rank_topk_numpy(scores, targets - 1, k)
        return rank, topk + 1

    def topk(self, item_seq, item_seq_len, k=20, return_scores=False):
        """The ``k`` best-scored items of each session: what to recommend.

        Parameters
        ----------
        item_seq, item_seq_len : the batch, as in :meth:`loss_and_grads`
        k : int, 1 <= k <= n
        return_scores : bool, also return the scores of those items

        Returns
        -------
        topk : int64 array of shape (B, k), item ids 1..n, best first, ties
            broken by the lower id (:func:`minisriem.kernels.topk`)
        scores : array of shape (B, k), their scores (eq. 8); only with ``return_scores``
        """
        scores = self.scores(item_seq, item_seq_len)  # B,n
        top = kernels.topk(scores, k) if self.backend == "numba" else kernels.topk_numpy(scores, k)
        if return_scores:
            return top + 1, np.take_along_axis(scores, top, axis=1)
        return top + 1

    def item_weights(self, item_seq, item_seq_len):
        """The weight each item of each session receives from the importance module.

        What the weight is depends on the module (``importance`` of the model):

        - "iem" (SR-IEM): ``beta`` of eq. (5), a softmax over the real positions
          (positive, sums to 1);
        - "stamp" (SR-STAMP): STAMP's raw attention ``a_i`` (any sign, not normalised);
        - "sat" (SR-SAT): the average attention each position receives from the
          session's queries (positive, sums to 1).

        Returns
        -------
        weights : array of shape (B, L), 0 at padded positions
        """
        item_seq, item_seq_len, _ = self._check_batch(item_seq, item_seq_len)
        _, cache = self.session_forward(item_seq, item_seq_len)
        return cache["beta"]

    def __repr__(self):
        plus = "".join(
            f", {name}={value!r}"
            for name, value, off in (
                ("scale", self.scale, 0.0),
                ("dropout", self.dropout, 0.0),
                ("affinity", self.affinity, "variant"),
            )
            if value != off
        )
        return (
            f"SRIEM(n_items={self.n_items}, d={self.d}, l={self.l}, "
            f"variant={self.variant!r}, importance={self.importance_name!r}, "
            f"dtype={self.dtype.name}, backend={self.backend!r}{plus})"
        )
