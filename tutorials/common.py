"""What every tutorial step shares: paths, quick mode, figures, exercises.

Nothing here is part of SR-IEM; it is the plumbing of the tutorials, kept in
one place so that each step reads as the idea it teaches.

Environment variables
---------------------
MINISRIEM_TUTORIAL_QUICK=1
    Shrink every training run to a few seconds (the test suite sets it).
MINISRIEM_FIGURES=DIR
    Write figures to DIR instead of ``tutorials/out/`` (which git ignores).
    ``python tutorials/make_figures.py`` writes the committed ones, in
    ``tutorials/figures/``.
MINISRIEM_THREADS=N
    Threads for BLAS and Numba; default 1. The tutorials' arrays are small,
    so extra threads mostly wait for each other: on a busy 2-core machine
    the default thread count made steps 9, 12 and 13 four to five times
    slower than one thread. Step 11 shows kernels that use more.
MINISRIEM_DATA=DIR
    Where the real datasets live (``DIR/diginetica/`` holds SR-GNN's
    ``train.txt`` and ``test.txt``); by default ``../shared/data`` next to
    the repository.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # so that `python tutorials/NN_x.py` finds minisriem
    sys.path.insert(0, ROOT)

from minisriem.cli import limit_threads  # noqa: E402 (imports nothing heavy)

# BLAS reads its thread count once, when NumPy is first imported: so this comes
# before `import numpy`, and every step imports common first.
THREADS = int(os.environ.get("MINISRIEM_THREADS") or 1)
limit_threads(THREADS)

import numpy as np  # noqa: E402

QUICK = os.environ.get("MINISRIEM_TUTORIAL_QUICK", "") not in ("", "0")


def quick(full, small):
    """``small`` in quick mode (the test suite), ``full`` otherwise."""
    return small if QUICK else full


def heading(title):
    """Print a section title, so the output reads like the file."""
    print()
    print(title)
    print("-" * len(title))


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------
def figures_dir():
    """The folder figures go to: ``$MINISRIEM_FIGURES``, else ``tutorials/out`` (git-ignored)."""
    folder = os.environ.get("MINISRIEM_FIGURES") or os.path.join(ROOT, "tutorials", "out")
    os.makedirs(folder, exist_ok=True)
    return folder


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "figure.dpi": 100})
    return plt


def save_figure(fig, name):
    """Save ``fig`` as ``name`` (a .png) in :func:`figures_dir`, close it, print the path."""
    plt = pyplot()
    path = os.path.join(figures_dir(), name)
    if fig.get_layout_engine() is None:  # a figure made with layout="constrained" has one
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"figure written: {path}")
    return path


# --------------------------------------------------------------------------
# exercises
# --------------------------------------------------------------------------
def run_exercise(check, *student_fns):
    """Run ``check(*student_fns)`` once the student has written them.

    A stub that still raises ``NotImplementedError`` (or returns None) is
    "not attempted": a note is printed and the tutorial carries on. Once it
    is filled in, a wrong answer stops the script with the check's message.
    """
    try:
        check(*student_fns)
    except NotImplementedError:
        print(f"EXERCISE: not attempted yet. Fill in the stub above and rerun; {check.__name__}")
        print("          then tells you whether your code is right.")
        return False
    print(f"EXERCISE: {check.__name__} passed. Well done.")
    return True


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def data_root():
    """``$MINISRIEM_DATA``, else ``../shared/data`` beside the repository."""
    return os.environ.get("MINISRIEM_DATA") or os.path.join(os.path.dirname(ROOT), "shared", "data")


def noise_lowest(beta, item_seq_len, noise):
    """Per session: does a planted noise click get the lowest weight?

    A session is *counted* when it has at least one noise click and at least
    one clean click among its real positions. It is a *hit* when the lowest
    weight among its noise clicks is strictly below the lowest weight among
    its clean clicks (an exact tie is not a hit). Chance is what a random
    order of the weights would give: ``#noise / t`` for that session.

    Parameters
    ----------
    beta : array of shape (B, L), 0 at padding
    item_seq_len : int array of shape (B,)
    noise : bool array of shape (B, L), False at padding

    Returns
    -------
    counted : bool array of shape (B,)
    hit : bool array of shape (B,), False where not counted
    chance : float array of shape (B,), ``#noise / t`` (0 where not counted)
    """
    B, L = beta.shape
    real = np.arange(L)[None, :] < np.asarray(item_seq_len)[:, None]  # B,L
    is_noise = noise & real
    is_clean = ~noise & real
    n_noise = is_noise.sum(axis=1)
    counted = (n_noise > 0) & (is_clean.sum(axis=1) > 0)
    lowest_noise = np.where(is_noise, beta, np.inf).min(axis=1)
    lowest_clean = np.where(is_clean, beta, np.inf).min(axis=1)
    hit = counted & (lowest_noise < lowest_clean)
    chance = np.where(counted, n_noise / np.maximum(item_seq_len, 1), 0.0)
    return counted, hit, chance


def noise_lowest_share(beta, item_seq_len, noise):
    """Share of counted sessions where a noise click gets the lowest weight.

    See :func:`noise_lowest` for which sessions count and what a hit is.

    Returns
    -------
    float
    """
    counted, hit, _ = noise_lowest(beta, item_seq_len, noise)
    return float(hit.sum() / max(counted.sum(), 1))


def padded_noise(split, L):
    """The ``noise`` flags of a split in the layout of ``split.padded(L)``.

    Returns
    -------
    noise : bool array of shape (N, L), False at padding
    """
    kept = np.minimum(split.lengths, L)
    first = split.offsets[1:] - kept
    cols = np.arange(L)
    real = cols[None, :] < kept[:, None]
    where = np.where(real, first[:, None] + cols[None, :], 0)
    return real & split.noise[where]


def beta_ratio(beta, item_seq_len):
    """Per session, the largest weight over the smallest: 1 means mean pooling.

    Returns
    -------
    ratio : float array of shape (B,), over real positions only
    """
    real = np.arange(beta.shape[1])[None, :] < np.asarray(item_seq_len)[:, None]
    hi = np.where(real, beta, -np.inf).max(axis=1)
    lo = np.where(real, beta, np.inf).min(axis=1)
    return hi / lo


# --------------------------------------------------------------------------
# training and evaluation, as step 9 and step 10 explain them
# --------------------------------------------------------------------------
def train_model(
    model,
    item_seq,
    item_seq_len,
    targets,
    epochs=1,
    max_steps=None,
    batch_size=128,
    lr=1e-3,
    l2=1e-5,
    lr_step=3,
    seed=0,
    every=None,
    on_step=None,
):
    """Train ``model`` in place with Adam, L2 and the step schedule (see step 9).

    Each epoch visits the examples in a fresh random order; the learning rate
    of epoch ``e`` is ``lr * 0.1 ** (e // lr_step)``. Training stops after
    ``epochs`` epochs or ``max_steps`` steps, whichever comes first.
    ``on_step()``, when given, is called after every step.

    Returns
    -------
    losses : list of float, the loss of every step
    """
    from minisriem.optim import Adam, step_lr

    opt = Adam(model.params, lr=lr, l2=l2)
    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        opt.lr = step_lr(lr, epoch, step=lr_step)
        order = rng.permutation(len(targets))
        for start in range(0, len(order), batch_size):
            if max_steps is not None and len(losses) >= max_steps:
                return losses
            b = order[start : start + batch_size]
            loss, grads = model.loss_and_grads(item_seq[b], item_seq_len[b], targets[b])
            opt.step(model.params, grads)
            losses.append(loss)
            if on_step is not None:
                on_step()
            if every and len(losses) % every == 0:
                print(
                    f"  step {len(losses):5d}  epoch {epoch}  lr {opt.lr:.0e}  "
                    f"loss (mean of last {every}) {np.mean(losses[-every:]):.4f}"
                )
    return losses


def evaluate_model(model, item_seq, item_seq_len, targets, k=20):
    """Recall@k and MRR@k of ``model`` (strict tie rule, see step 10).

    Returns
    -------
    recall, mrr : float
    """
    from minisriem.metrics import model_ranks, mrr_at_k, recall_at_k

    ranks = model_ranks(model, item_seq, item_seq_len, targets)
    return recall_at_k(ranks, k), mrr_at_k(ranks, k)


def noise_weight(beta, item_seq_len, noise):
    """Mean of ``t * beta`` over noise clicks and over clean clicks (1 = mean pooling).

    Returns
    -------
    noisy, clean : float, over the real positions of sessions with both kinds
    """
    counted, _, _ = noise_lowest(beta, item_seq_len, noise)
    real = np.arange(beta.shape[1])[None, :] < np.asarray(item_seq_len)[:, None]
    tb = beta * np.asarray(item_seq_len)[:, None]
    rows = counted[:, None]
    return float(tb[rows & real & noise].mean()), float(tb[rows & real & ~noise].mean())


# --------------------------------------------------------------------------
# the quick start's protocol (python -m minisriem.train on synthetic data)
# --------------------------------------------------------------------------
def quickstart_run(ds, variant, seed, epochs=None):
    """Train as ``python -m minisriem.train --variant VARIANT --seed SEED`` does.

    Same settings and protocol as the quick start: the paper's
    hyper-parameters, 10% of the training sessions held out for validation,
    3 epochs on synthetic data, and the test figures of the epoch with the
    best validation Recall@20. The run directory is temporary.

    Returns
    -------
    dict with "recall", "mrr" (test, selected epoch), "epoch" and "model" (SRIEM)
    """
    import tempfile

    from minisriem.workflow import SYNTHETIC_EPOCHS, train

    with tempfile.TemporaryDirectory() as out:
        result = train(
            ds,
            out=out,
            progress=False,
            log=lambda line: None,
            variant=variant,
            seed=seed,
            epochs=epochs or SYNTHETIC_EPOCHS,
        )
        selected = result.summary["selected"]
        model = result.load_model().model
    return {
        "recall": selected["test"]["Recall@20"],
        "mrr": selected["test"]["MRR@20"],
        "epoch": selected["epoch"],
        "model": model,
    }
