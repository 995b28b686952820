"""The SR-IEM model: the layers composed, with a hand-written backward pass.

    from minisriem.model import SRIEM
    model = SRIEM(n_items, d=200, l=100, variant="paper", seed=0)
    loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    scores = model.scores(item_seq, item_seq_len)   # (B, n); column j is item j+1

Inputs, for a batch of B sessions padded to length L:

    item_seq      (B, L) int   item ids, left-aligned, 0-padded
    item_seq_len  (B,)   int   true lengths t_b, 1 <= t_b <= L
    targets       (B,)   int   the next item's id, 1..n
"""

import numpy as np

from minisriem import layers
from minisriem.importance import MODULES, PARAM_SHAPES

VARIANTS = ("paper", "official")


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

    Attributes
    ----------
    params : dict of arrays
        "E" (n+1, d), the importance module's keys ("Wq", "Wk": (d, l), or
        (d, d) for "official"), "W0" (d, 2d), and "b0" (d,) for "official".
        Arrays may be assigned in place; the next call uses them.
    """

    def __init__(
        self, n_items, d=200, l=100, variant="paper", seed=0, dtype=np.float32, importance="iem"
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if importance not in MODULES:
            raise ValueError(f"importance must be one of {tuple(MODULES)}, not {importance!r}")
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
        _, backward = MODULES[self.importance_name]
        dz_l, dz_s, dW0, db0 = layers.fusion_backward(dz_h, cache["fusion"])
        demb = layers.last_item_backward(dz_s, cache["last"])
        demb_imp, grads = backward(dz_l, cache["importance"])
        demb += demb_imp
        grads["E"] = layers.embedding_backward(demb, cache["emb"])
        grads["W0"] = dW0
        if db0 is not None:
            grads["b0"] = db0
        return grads

    # ------------------------------------------------------------------
    def loss_and_grads(self, item_seq, item_seq_len, targets):
        """Mean cross-entropy of the batch (eq. 9-10, no L2) and its gradients.

        Returns
        -------
        loss : float
        grads : dict of arrays with exactly the keys and shapes of ``params``
        """
        item_seq, item_seq_len, targets = self._check_batch(item_seq, item_seq_len, targets)
        z_h, cache = self.session_forward(item_seq, item_seq_len)
        scores, sc_cache = layers.scores_forward(z_h, self.params["E"])  # B,n
        loss, ce_cache = layers.softmax_cross_entropy_forward(scores, targets - 1)
        dscores = layers.softmax_cross_entropy_backward(1.0, ce_cache)  # B,n
        dz_h, dE = layers.scores_backward(dscores, sc_cache)
        grads = self.session_backward(dz_h, cache)
        dE += grads["E"]
        grads["E"] = dE
        return loss, {k: grads[k] for k in self.params}

    def scores(self, item_seq, item_seq_len):
        """Scores of every item for every session, eq. (8).

        Returns
        -------
        scores : array of shape (B, n); column ``j`` is item ``j + 1``
        """
        item_seq, item_seq_len, _ = self._check_batch(item_seq, item_seq_len)
        z_h, _ = self.session_forward(item_seq, item_seq_len)
        scores, _ = layers.scores_forward(z_h, self.params["E"])
        return scores

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
            f"dtype={self.dtype.name})"
        )
