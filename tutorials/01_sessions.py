"""Step 1: sessions as data: prefix augmentation, padding, lengths.

Run: python tutorials/01_sessions.py
Time: about 1 s (CPU time on one thread, measured; about the wall time on an
idle machine). Nothing to gain from threads: it is mostly starting Python.

The task
--------
A *session* is the ordered list of items one anonymous user clicked, for
example ``S = [12, 40, 7, 40]``. Session-based recommendation predicts the
next click ``x_{t+1}`` from ``S = [x_1, ..., x_t]`` alone: there is no user
id and no history beyond the session. Items are numbered ``1..n``; ``0`` is
reserved for padding (below).

Prefix augmentation: one session, many examples
-----------------------------------------------
A session of ``k`` clicks holds ``k - 1`` prediction problems: after every
prefix, the next click is a target. The standard protocol (SR-GNN, NARM,
STAMP; the paper follows it) turns ``[x_1, ..., x_k]`` into

    ([x_1, ..., x_{k-1}], x_k), ([x_1, ..., x_{k-2}], x_{k-1}), ..., ([x_1], x_2)

longest prefix first. ``data_tools`` stores these examples without padding,
one long array of items plus ``offsets``: example ``i`` is
``items[offsets[i]:offsets[i+1]]`` (the "compressed sparse row" layout).

Padding: one rectangle per batch
--------------------------------
NumPy computes on rectangles, sessions have different lengths. So a batch of
``B`` sessions becomes

    item_seq      (B, L) int   the L most recent items, left-aligned, then 0s
    item_seq_len  (B,)   int   the true length t_b = min(k_b, L), 1 <= t_b <= L
    targets       (B,)   int   the next item of each session

The paper uses only the ``L = 10`` most recent items. Row ``b``'s real items
sit at positions ``0..t_b-1``; the last one, at ``t_b - 1``, is the *current
interest* of step 6. Every later step must make sure that the 0s change
nothing: the padding id is not an item.

The data
--------
``load_dataset("synthetic")`` makes a dataset in memory with structure a
model can learn (``data_tools/synthetic.py``). Each session follows one of 4
"intents" (groups of 250 items on a ring): it has a *centre* on its group's
ring, and each of its 3-8 intent clicks is an item near that centre. After
each intent click but the last, with probability 0.7, come one or two
off-intent *noise* clicks, items of another group; they are flagged in
``split.noise``. The first click of a session is never noise, and no example
has a noise click as its target (noise cannot be predicted). Because examples
are prefixes, one session's noise clicks appear in many examples: the run
below prints the share of noise among all prefix items (about half) and the
share of prefixes whose last click is noise. Step 12 asks whether SR-IEM's
importance gives those clicks low weight, step 13 what that buys.

The real benchmark, DIGINETICA (CIKM Cup 2016), is loaded from SR-GNN's
preprocessed files when they are present (set ``MINISRIEM_DATA``; by default
``../shared/data/diginetica/`` next to the repository).
"""

import os

import common
import numpy as np
from checks import check_pad_sessions

from data_tools import DataError, load_dataset
from data_tools.split import augment

PAPER_DIGINETICA = {
    "train_examples": 719470,
    "test_examples": 60858,
    "items": 43097,
    "avg_length": 5.12,
}


def show_example(split, i):
    items = split.items[split.offsets[i] : split.offsets[i + 1]]
    return f"prefix {items.tolist()} -> target {split.targets[i]}"


def main():
    common.heading("Prefix augmentation of two sessions")
    sessions = [[12, 40, 7, 40], [5, 9]]
    offsets = np.array([0, 4, 6])
    items = np.array([12, 40, 7, 40, 5, 9], dtype=np.int32)
    ex = augment(offsets, items)
    print("sessions:", sessions)
    for i in range(len(ex)):
        print(f"  example {i}: {show_example(ex, i)}")
    print("CSR layout: offsets", ex.offsets.tolist(), "items", ex.items.tolist())

    common.heading("Padding to L = 3")
    item_seq, item_seq_len, targets = ex.padded(L=3)
    print("item_seq =\n", item_seq)
    print("item_seq_len =", item_seq_len, " targets =", targets)
    print("the last real item of each row:", item_seq[np.arange(len(ex)), item_seq_len - 1])

    common.heading("The synthetic dataset")
    ds = load_dataset("synthetic")
    print(ds)
    print("stats:", ds.stats)
    train = ds.train
    i = int(np.flatnonzero(train.lengths >= 6)[0])
    a, b = train.offsets[i], train.offsets[i + 1]
    pairs = zip(train.items[a:b], train.noise[a:b], strict=True)
    marked = [f"{x}*" if z else str(x) for x, z in pairs]
    print(f"an example ({'*'} = noise click): [{', '.join(marked)}] -> {train.targets[i]}")
    print(f"share of noise clicks among prefix items: {train.noise.mean():.3f}")
    last_noise = train.noise[train.offsets[1:] - 1]
    print(f"share of prefixes whose last click is noise: {last_noise.mean():.3f}")
    print(
        "first clicks of sessions that are noise:",
        int(train.noise[train.offsets[:-1][train.lengths == 1]].sum()),
        "(never: a prefix of length 1 is always a clean click)",
    )
    seq, lens, _ = train.padded(L=10)
    print(
        f"padded: item_seq {seq.shape}, lengths 1..{lens.max()}, "
        f"{(train.lengths > 10).mean():.1%} of prefixes are cut to L = 10"
    )
    lengths = {"synthetic": train.lengths}

    common.heading("DIGINETICA (SR-GNN's preprocessed files)")
    folder = os.path.join(common.data_root(), "diginetica")
    try:
        dg = load_dataset("diginetica", data_dir=common.data_root())
    except (DataError, OSError) as e:
        print(f"NOTE: DIGINETICA not found in {folder} ({e.__class__.__name__}); skipped.")
        print("      Put SR-GNN's train.txt and test.txt there or set MINISRIEM_DATA.")
    else:
        print(dg)
        for key, want in PAPER_DIGINETICA.items():
            print(f"  {key:15s} ours {dg.stats[key]!s:>8}   paper (Table 1) {want}")
        print(
            f"  longest prefix: {dg.train.lengths.max()}; "
            f"{(dg.train.lengths > 10).mean():.1%} of prefixes are cut to L = 10"
        )
        lengths["DIGINETICA"] = dg.train.lengths

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5, 2.8))
    bins = np.arange(1, 32) - 0.5
    for name, ln in lengths.items():
        ax.hist(np.minimum(ln, 30), bins=bins, density=True, histtype="step", lw=1.5, label=name)
    ax.axvline(10.5, color="k", ls="--", lw=0.8, label="L = 10 (longer: cut)")
    ax.set_xlabel("prefix length (30 = 30 or more)")
    ax.set_ylabel("share of training examples")
    ax.legend()
    ax.set_title("How long sessions are")
    common.save_figure(fig, "01_lengths.png")


# ==========================================================================
# EXERCISE
# Write the padding yourself: ``sessions`` is a list of lists of item ids
# (each at least one item); return ``(item_seq, item_seq_len)``: a (B, L)
# integer array holding each session's L most recent items, left-aligned,
# then 0s, and the (B,) array of how many are real.
# Run this file to check it, or from the repository root check any function:
#   python -c "from tutorials.checks import check_pad_sessions as c; \
#              from mycode import pad_sessions; c(pad_sessions)"
# ==========================================================================
def my_pad_sessions(sessions, L):
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_pad_sessions, my_pad_sessions)
