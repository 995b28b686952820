"""Adam with coupled L2 (as ``torch.optim.Adam(weight_decay=...)``) and a step schedule.

opt = Adam(model.params, lr=1e-3, l2=1e-5)
loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
opt.step(model.params, grads)        # updates the arrays in place
opt.lr = step_lr(1e-3, epoch)        # x 0.1 every 3 epochs
"""

import numpy as np

from minisriem import kernels

__all__ = ["Adam", "step_lr"]


def step_lr(base_lr, epoch, step=3, gamma=0.1):
    """Learning rate of ``epoch`` (0-based): ``base_lr * gamma ** (epoch // step)``.

    The paper's schedule: 1e-3, multiplied by 0.1 every 3 epochs.
    """
    return base_lr * gamma ** (epoch // step)


class Adam:
    """Adam (Kingma & Ba, 2015) with L2 coupled into the gradient.

    For every parameter ``w`` with gradient ``g``, at step ``k = 1, 2, ...``::

        g  = g + l2 * w                       (coupled weight decay)
        m  = beta1 * m + (1 - beta1) * g
        v  = beta2 * v + (1 - beta2) * g**2
        w -= lr * (m / (1 - beta1**k)) / (sqrt(v / (1 - beta2**k)) + eps)

    Parameters
    ----------
    params : dict of arrays, the parameters (used for the state's shapes)
    lr, l2, beta1, beta2, eps : float
    backend : {"numba", "numpy"}
        "numba" (default) updates each array in one fused pass
        (:func:`minisriem.kernels.adam_step`); "numpy" runs the same formulas
        as whole-array NumPy operations (:func:`minisriem.kernels.adam_step_numpy`).
    """

    def __init__(self, params, lr=1e-3, l2=0.0, beta1=0.9, beta2=0.999, eps=1e-8, backend="numba"):
        if backend not in ("numba", "numpy"):
            raise ValueError(f"backend must be 'numba' or 'numpy', not {backend!r}")
        self.backend = backend
        self.lr, self.l2 = lr, l2
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.t = 0
        self.m = {k: np.zeros_like(w) for k, w in params.items()}
        self.v = {k: np.zeros_like(w) for k, w in params.items()}

    def step(self, params, grads):
        """Update every array in ``params`` in place from ``grads`` (same keys).

        A gradient may be a :class:`minisriem.kernels.ItemGradient` (``grads["E"]``
        of the model's "numba" backend): with backend "numba" it updates its
        array block by block itself, with "numpy" it is made dense first.
        """
        self.t += 1
        update = kernels.adam_step if self.backend == "numba" else kernels.adam_step_numpy
        for k, w in params.items():
            m, v, g = self.m[k], self.v[k], grads[k]
            args = (self.lr, self.beta1, self.beta2, self.eps, self.l2, self.t)
            if isinstance(g, kernels.ItemGradient):
                if self.backend == "numba":
                    with kernels.blas_single_thread():
                        g.adam_step(w, m, v, *args)
                    continue
                g = g.dense()
            update(w, g, m, v, *args)

    def state_dict(self):
        """The optimiser's state as a flat dict of arrays (for ``np.savez``)."""
        state = {"t": np.array(self.t), "lr": np.array(self.lr)}
        for k in self.m:
            state[f"m/{k}"] = self.m[k]
            state[f"v/{k}"] = self.v[k]
        return state

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        self.t = int(state["t"])
        self.lr = float(state["lr"])
        for k in self.m:
            self.m[k][...] = state[f"m/{k}"]
            self.v[k][...] = state[f"v/{k}"]
