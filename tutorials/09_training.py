"""Step 9: training: Adam with L2, the step schedule, and a short run.

Run: python tutorials/09_training.py
Time: about 14 s (CPU time on one thread, measured; about the wall time on an
idle machine); quick mode (MINISRIEM_TUTORIAL_QUICK=1, 40 steps) about 2 s.
To run faster: quick mode; on a busy machine keep the default of one thread
(MINISRIEM_THREADS), which was four to five times faster there than more.

The objective
-------------
Training minimises the mean cross-entropy of step 7 over all training
examples. We never compute it over all of them at once: each *step* takes a
random *batch* of ``B = 128`` examples, computes the batch's loss and
gradients with ``model.loss_and_grads`` (step 8), and moves every parameter
a little against its gradient. One pass over all examples is an *epoch*.

Adam
----
Plain gradient descent, ``w -= lr * g``, moves each parameter in proportion
to its gradient, and SR-IEM's gradients differ by orders of magnitude
between parameters (step 4: about 1e-3 for W0, far less for Wq). Adam
(Kingma & Ba, 2015) gives each entry its own step size. With ``g`` the
gradient at step ``k = 1, 2, ...``:

    m = beta1 * m + (1 - beta1) * g          running mean of g      (beta1 = 0.9)
    v = beta2 * v + (1 - beta2) * g**2       running mean of g**2   (beta2 = 0.999)
    mhat = m / (1 - beta1**k)                bias corrections: m and v start at 0,
    vhat = v / (1 - beta2**k)                so early averages are too small
    w -= lr * mhat / (sqrt(vhat) + eps)

``mhat / sqrt(vhat)`` is about ``+-1`` when the gradient keeps its sign, so
each entry moves by about ``lr`` per step *whatever the size of its
gradient*. (Step 13 shows the dark side of that.)

L2. The paper regularises with ``L2 = 1e-5``. We apply it as PyTorch's
``Adam(weight_decay=1e-5)`` does, *coupled*: ``g = g + l2 * w`` before the
update, which is the gradient of ``(l2 / 2) * ||w||^2`` added to the loss.
(AdamW's *decoupled* decay, ``w -= lr * l2 * w`` after the update, is a
different method; the exercise tells them apart.)

The schedule. The learning rate starts at ``1e-3`` and is multiplied by 0.1
every 3 epochs: ``lr(epoch) = 1e-3 * 0.1 ** (epoch // 3)`` (0-based epochs),
``minisriem.optim.step_lr``.

``tutorials/common.py: train_model`` is the loop below, reused by steps 12
and 13. The project's trainer, ``python -m minisriem.train`` or in Python
``minisriem.workflow.train("synthetic")``, runs the same loop and adds what
a real run needs: a validation split for choosing the epoch, evaluation
after each epoch, early stopping, checkpoints and resuming.
"""

import common
import numpy as np
from checks import check_adam

from data_tools import load_dataset
from minisriem.metrics import model_ranks, mrr_at_k, recall_at_k
from minisriem.model import SRIEM
from minisriem.optim import Adam, step_lr


def main():
    common.heading("The schedule")
    print("lr by epoch:", [f"{step_lr(1e-3, e):.0e}" for e in range(7)])

    common.heading("Adam's step is about lr, whatever the gradient's size")
    for scale in (1e-6, 1.0, 1e6):
        w = {"w": np.zeros(3)}
        opt = Adam(w, lr=1e-3)
        for _ in range(10):
            opt.step(w, {"w": scale * np.array([1.0, -2.0, 0.5])})
        print(f"gradient x {scale:.0e}: w after 10 steps = {w['w']}")

    common.heading("A short run on the synthetic data")
    ds = load_dataset("synthetic")
    item_seq, item_seq_len, targets = ds.train.padded(L=10)
    test = ds.test.padded(L=10)
    epochs = common.quick(4, 1)
    max_steps = common.quick(None, 40)
    model = SRIEM(ds.n_items, d=200, l=100, variant="official", seed=0)
    opt = Adam(model.params, lr=1e-3, l2=1e-5)
    rng = np.random.default_rng(0)
    losses, epoch_ends, evals = [], [], []
    every = common.quick(80, 10)
    for epoch in range(epochs):
        opt.lr = step_lr(1e-3, epoch)  # x 0.1 every 3 epochs
        order = rng.permutation(len(targets))  # a fresh random order each epoch
        for start in range(0, len(order), 128):
            if max_steps is not None and len(losses) >= max_steps:
                break
            b = order[start : start + 128]  # one batch
            loss, grads = model.loss_and_grads(item_seq[b], item_seq_len[b], targets[b])
            opt.step(model.params, grads)  # Adam, coupled L2, in place
            losses.append(loss)
            if len(losses) % every == 0:
                print(
                    f"  step {len(losses):5d}  epoch {epoch}  lr {opt.lr:.0e}  "
                    f"loss {np.mean(losses[-every:]):.4f}"
                )
        epoch_ends.append(len(losses))
        n_eval = common.quick(len(test[2]), 1000)
        ranks = model_ranks(model, test[0][:n_eval], test[1][:n_eval], test[2][:n_eval])
        evals.append((recall_at_k(ranks, 20), mrr_at_k(ranks, 20)))
        print(
            f"end of epoch {epoch}: test Recall@20 {100 * evals[-1][0]:.2f}%, "
            f"MRR@20 {100 * evals[-1][1]:.2f}%"
        )
    first = float(np.mean(losses[:10]))
    last = float(np.mean(losses[-10:]))
    print(f"RESULT loss first10={first:.4f} last10={last:.4f} log_n={np.log(ds.n_items):.4f}")
    assert last < first

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.6, alpha=0.6, label="loss of each batch")
    w = max(2, min(50, len(losses) // 5))  # a window that leaves a line to see in quick mode
    smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
    ax.plot(steps[w - 1 :], smooth, lw=2, label=f"mean of the last {w} batches")
    ax.axhline(np.log(ds.n_items), color="k", ls=":", lw=0.8, label="log n (uniform guess)")
    for e, s in enumerate(epoch_ends[:-1]):  # epochs are counted from 0, as printed
        ax.axvline(s, color="grey", lw=0.5)
        ax.text(
            s,
            ax.get_ylim()[1],
            f" epoch {e + 1}" + (": lr x 0.1" if (e + 1) % 3 == 0 else ""),
            fontsize=9,
            va="top",
        )
    ax.set_xlabel("step (batch of 128)")
    ax.set_ylabel("cross-entropy")
    ax.legend()
    ax.set_title("Training SR-IEM (released code's variant) on synthetic data")
    common.save_figure(fig, "09_loss.png")


# ==========================================================================
# EXERCISE
# Write one Adam step with coupled L2, in the CS231n form
# ``update(w, dw, config) -> (next_w, config)``. ``config`` holds lr, l2,
# beta1, beta2, eps and the state m, v (arrays like w) and t (steps taken so
# far, 0 before the first). Your steps must match minisriem.optim.Adam.
# Run this file to check it, or from the repository root:
#   python -c "from tutorials.checks import check_adam as c; \
#              from mycode import adam; c(adam)"
# ==========================================================================
def my_adam(w, dw, config):
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_adam, my_adam)
