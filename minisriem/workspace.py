"""A model's workspace: the large arrays its steps reuse, by name.

    ws = Workspace()
    P = ws.get("P", (B * n,), np.float32)   # the same memory at every call
    ws.advance()                             # a new call: results still held copy out

Allocating a 22 MB score buffer afresh every training step costs a page fault
per 4 KB, about as much as the softmax over it. So :class:`minisriem.model.SRIEM`
keeps its large per-step arrays here and says in its docstrings which of its
results live in the workspace (and so are valid only until its next call).
"""

import weakref

import numpy as np

__all__ = ["Workspace"]


class Workspace:
    """Named arrays, reused from one call to the next.

    ``get(name, shape, dtype)`` returns a C-contiguous array of ``shape``
    whose contents are whatever its last user left there. The same name
    returns the same memory while it is large enough; a larger request
    replaces it.

    A result handed to a caller may refer to a workspace array (the model's
    ``grads["E"]`` does). It is registered with :meth:`share`; when the owner
    starts its next call (:meth:`advance`), every such result the caller
    still holds is asked to ``detach()``, that is to take a private copy, so
    a result you keep is never overwritten. A training loop that drops its
    gradients before the next step (``Trainer.train_step`` does) copies
    nothing. ``generation`` counts the calls.
    """

    def __init__(self):
        self._arrays = {}  # name -> flat array
        self._shared = []  # weak references to results that refer to the arrays
        self.generation = 0

    def get(self, name, shape, dtype):
        """An array of ``shape`` and ``dtype`` named ``name`` (contents undefined)."""
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        dtype = np.dtype(dtype)
        flat = self._arrays.get(name)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = np.empty(size, dtype=dtype)
            self._arrays[name] = flat
        return flat[:size].reshape(shape)

    def share(self, result):
        """Register ``result`` (an object with a ``detach()`` method) as referring to the arrays."""
        self._shared.append(weakref.ref(result))

    def advance(self):
        """Start a new call: results still held take their own copies first."""
        for ref in self._shared:
            result = ref()
            if result is not None:
                result.detach()
        self._shared.clear()
        self.generation += 1

    @property
    def nbytes(self):
        """Bytes held, over all names."""
        return sum(a.nbytes for a in self._arrays.values())

    def clear(self):
        """Drop every array (the memory goes back when nothing else refers to it)."""
        self._arrays.clear()
        self.advance()

    def __repr__(self):
        names = ", ".join(f"{k}: {a.nbytes / 2**20:.1f} MiB" for k, a in self._arrays.items())
        return f"Workspace({names})"
