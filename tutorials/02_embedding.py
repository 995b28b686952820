"""Step 2: the embedding layer, and why the padding row gets no gradient.

Run: python tutorials/02_embedding.py
Time: about 1 s (CPU time on one thread, measured; about the wall time on an
idle machine). Nothing to gain from threads: it is mostly starting Python.

The idea
--------
An item id is just a name. The model gives every item ``v`` a learned vector
``E[v]`` of ``d`` numbers, its *embedding*, stored as row ``v`` of a matrix

    E : (n+1, d)          row 0 belongs to the padding id 0, rows 1..n to items

and the first layer replaces every id of a padded batch by its row:

    e_i = E[x_i]          emb = E[item_seq] : (B, L, d)

In NumPy this is one fancy-indexing expression. Padded positions look up row
0, which the model initialises to zeros; step 4 and 5 make sure that nothing
read from a padded position ever reaches an output.

The gradient, derived
---------------------
Every entry of ``emb`` is a copy of one entry of ``E``:
``emb[b, i, k] = E[item_seq[b, i], k]``. So for a loss ``f``,

    df/dE[v, k] = sum over all (b, i) with item_seq[b, i] == v of df/demb[b, i, k]

Each row of ``E`` collects the gradients of every position that looked it up.
An item that occurs twice in a batch (or twice in one session) gets the SUM
of both contributions. This is a *scatter-add*. NumPy has two ways to write
it, and only one is right:

    dE[item_seq.ravel()] += demb.reshape(-1, d)            # WRONG with repeats
    np.add.at(dE, item_seq.ravel(), demb.reshape(-1, d))   # right

The first is buffered: NumPy evaluates ``dE[idx] + demb`` once and writes the
rows back, so a repeated index keeps only its last contribution. The code
below shows the difference.

Why row 0 gets no gradient
--------------------------
Row 0 is not an item. It is never scored (step 6 scores ``E[1:]``), and every
layer after the lookup masks padded positions, so the loss does not depend on
``E[0]`` at all: its true gradient in the whole model is exactly zero. The
layer states this directly, ``dE[0] = 0``, rather than relying on every later
layer to send back exact zeros. (Checked on the layer alone, with a random
upstream gradient that is *not* zero at padded positions, central differences
do see a gradient on row 0; that is why the check below masks the padded
outputs, as the model does, and why we confirm row 0's zero on the whole
model below.)
"""

import common  # tutorials/common.py: puts the repository on sys.path, figures, exercises
import numpy as np
from checks import check_embedding_backward

from minisriem import layers
from minisriem.gradcheck import check_layer, eval_numerical_gradient, eval_numerical_gradient_array
from minisriem.model import SRIEM


def main():
    rng = np.random.default_rng(0)
    check_rng = np.random.default_rng(1)  # the checks' own draws: rng's numbers stay put
    n, d = 6, 3
    E = rng.standard_normal((n + 1, d))
    E[0] = 0  # the padding row starts at zero
    item_seq = np.array([[2, 5, 2, 0], [4, 0, 0, 0]])  # (B=2, L=4); item 2 occurs twice
    item_seq_len = np.array([3, 1])

    common.heading("Forward: a lookup")
    emb, cache = layers.embedding_forward(E, item_seq)  # B,L,d
    print("item_seq =\n", item_seq)
    print("emb.shape =", emb.shape, "  emb[0, 0] == E[2]:", np.array_equal(emb[0, 0], E[2]))

    common.heading("Backward: a scatter-add")
    demb = np.ones_like(emb)  # every looked-up entry gets gradient 1 ...
    (dE,) = layers.embedding_backward(demb, cache)  # every backward returns a tuple
    print("... so dE[:, 0] counts how often each row was looked up:", dE[:, 0])
    print("item 2 occurs twice -> dE[2, 0] =", dE[2, 0], "; padding row dE[0] =", dE[0])

    wrong = np.zeros_like(E)
    wrong[item_seq.ravel()] += demb.reshape(-1, d)  # buffered: repeats are lost
    print("with dE[idx] += demb instead: dE[2, 0] =", wrong[2, 0], " (one contribution lost)")

    common.heading("Gradient check of the layer, as the model uses it")
    real = (item_seq != 0)[:, :, None]  # B,L,1

    def lookup_as_used(E):  # the model masks padded positions after the lookup
        emb, cache = layers.embedding_forward(E, item_seq)
        return emb * real, cache

    check = check_layer(
        lookup_as_used, layers.embedding_backward, [E], {0: 0}, check_rng, names=["E"]
    )
    err = check.errors["E"]
    print(f"embedding gradient check: relative error {err:.1e}")
    assert err < 1e-8
    dout = rng.standard_normal(emb.shape)  # not masked: padded positions get gradient too
    num = eval_numerical_gradient_array(lambda: layers.embedding_forward(E, item_seq)[0], E, dout)
    print("numerical gradient of row 0 with a random upstream at padding:", np.round(num[0], 3))
    print("(nonzero: on its own the layer cannot know padding is masked later)")

    common.heading("In the whole model, the loss does not depend on E[0]")
    model = SRIEM(n, d=d, l=2, variant="paper", seed=0, dtype=np.float64)
    targets = np.array([1, 3])
    loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets)
    E0 = model.params["E"][0]  # a view: changing it changes the model
    num_row0 = eval_numerical_gradient(
        lambda: model.loss_and_grads(item_seq, item_seq_len, targets)[0], E0
    )
    print("numerical d loss / d E[0] in the model:", num_row0)
    print("the model's grads['E'][0]:            ", grads["E"][0])
    E0[:] = 100.0  # whatever padding holds ...
    loss2, _ = model.loss_and_grads(item_seq, item_seq_len, targets)
    print(f"loss with E[0] = 0: {loss:.12f}; with E[0] = 100: {loss2:.12f}")
    assert np.all(num_row0 == 0) and loss2 == loss
    print("padding is inert: row 0 gets no gradient")


# ==========================================================================
# EXERCISE
# Write the embedding's backward pass yourself. ``cache`` is what
# ``layers.embedding_forward`` returns: ``(item_seq, E.shape)``. Return ``(dE,)``,
# a tuple of one as every backward in layers.py, with dE of shape E.shape: rows
# scatter-added (repeats accumulate), row 0 exactly 0.
# Run this file to check it, or from the repository root check any function:
#   python -c "from tutorials.checks import check_embedding_backward as c; \
#              from minisriem import layers; c(layers.embedding_backward)"
# (that checks the library's own version; put yours in its place).
# ==========================================================================
def my_embedding_backward(demb, cache):
    item_seq, shape = cache
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_embedding_backward, my_embedding_backward)
