"""Step 12: reading importance: does SR-IEM give a noise click a low weight?

Run: python tutorials/12_reading_importance.py
Time: about 19 s (CPU time on one thread, measured; about the wall time on an
idle machine); quick mode (MINISRIEM_TUTORIAL_QUICK=1, 30 steps) about 3 s.
To run faster: quick mode; on a busy machine keep the default of one thread
(MINISRIEM_THREADS), which was four to five times faster there than more.

The question
------------
The paper's claim is that the importance module finds the items that matter
and down-weights the rest, "an item [the user clicked] by accident or due to
curiosity". The synthetic data lets us test that claim directly: every
session follows one intent, and some clicks are planted off-intent *noise*
(``split.noise``, step 1). If ``beta`` (eq. 5) does its job, a session's
noise click should get its lowest weight.

The measure
-----------
Take the test sessions that hold at least one noise click and at least one
clean click. A session is a *hit* when the lowest ``beta`` among its noise
clicks is strictly below the lowest ``beta`` among its clean clicks (an exact
tie is not a hit). We report the share of hits. *Chance* is what weights in
random order would give: the lowest of ``t`` weights falls on a noise click
with probability ``#noise / t``; the run prints its average over the counted
sessions as "chance level", beside the average of ``1/t``, a smaller number
(sessions with several noise clicks weigh in more).

What to expect, from steps 4, 5 and 13
--------------------------------------
In the paper's form (``variant="paper"``), no two weights of a session can
differ by more than a factor ``exp((t-1)/t * 0.5/sqrt(d))``, about 1.03 for
``d = 200``; in practice the sigmoid of eq. (3) is saturated and the weights
are equal to many digits. In float32, the precision the model trains in,
they are *exactly* equal: ``sigmoid(25)`` rounds to 1.0. So every session is a
tie, and the share of hits is 0, trained or not. Evaluating the trained
weights in float64 does not help: after a short run the weights differ only
at the level of rounding, in an order that carries no information; after a
full run they are equal even in float64, because by then Adam's L2 has
shrunk Wq and Wk by many orders of magnitude (step 13 prints the path of
mean ``|Wq|``: from 0.035 to around 1e-18 in three epochs), so every
``q_i . k_j`` is ``l/4`` to the last digit.

In the released code's form (``variant="official"``) the weights can spread
(up to a factor ``e``). Untrained, they are close to uniform (``C`` is about
0.5 everywhere) and their small differences are random. After training we
see whether they learned to spot the noise. They do: in the full run a noise
click gets the session's lowest weight far more often than chance. But look
at the colour scale and the printed ratios: the learned weights differ by
tens of percent, not by the factor ``e`` the form allows, so the pooled
``z_l`` is still mostly a mean. Step 13 measures what that buys in accuracy
on this data, where removing the noise altogether would be worth about 8
points of Recall@20: next to nothing.

Heatmaps show ``t * beta`` for a dozen test sessions (1 = the mean-pooling
weight ``1/t``), one row per session, with noise clicks marked by a white
cross ringed in black, visible on any colour.
"""

import common
import numpy as np
from checks import check_noise_lowest_share

from data_tools import load_dataset
from minisriem.model import SRIEM

D, LQ, L = 200, 100, 10


def as_float64(model):
    """The same model, computing in float64."""
    m64 = SRIEM(model.n_items, d=model.d, l=model.l, variant=model.variant, dtype=np.float64)
    for k, w in model.params.items():
        m64.params[k][...] = w
    return m64


def main():
    ds = load_dataset("synthetic")
    train = ds.train.padded(L)
    test_seq, test_len, _ = ds.test.padded(L)
    noise = common.padded_noise(ds.test, L)  # N,L: True at noise clicks
    # one example per test session: its longest prefix (the first, step 1)
    first = np.flatnonzero(np.diff(ds.test.session, prepend=-1) != 0)
    seq, lens, noise = test_seq[first], test_len[first], noise[first]
    counted, _, chance = common.noise_lowest(np.ones(seq.shape), lens, noise)
    chance_level = float(chance[counted].mean())
    print(
        f"{len(first)} test sessions (longest prefix of each); {counted.sum()} hold a noise "
        f"and a clean click; chance level {chance_level:.3f}"
    )
    print(
        f"mean 1/t over those sessions: {float(np.mean(1 / lens[counted])):.3f} (below the "
        "chance level: sessions with several noise clicks count more)"
    )

    epochs = common.quick(3, 1)
    max_steps = common.quick(None, 30)
    betas, shares = {}, {}
    for variant in ("paper", "official"):
        model = SRIEM(ds.n_items, d=D, l=LQ, variant=variant, seed=0)
        betas[variant, "untrained"] = model.item_weights(seq, lens)
        steps = len(common.train_model(model, *train, epochs=epochs, max_steps=max_steps))
        betas[variant, "trained"] = model.item_weights(seq, lens)
        if variant == "paper":
            betas["paper", "trained, float64"] = as_float64(model).item_weights(seq, lens)
        print(f"trained {variant} for {steps} steps")

    common.heading("Share of sessions where a noise click gets the lowest weight")
    for (variant, state), beta in betas.items():
        share = common.noise_lowest_share(beta, lens, noise)
        ratio = common.beta_ratio(beta, lens)[lens > 1]
        ties = float(np.mean(ratio == 1.0))
        shares[variant, state] = share
        print(
            f"{variant:8s} {state:17s} noise lowest {share:.3f} (chance {chance_level:.3f}); "
            f"beta_max/beta_min median {np.median(ratio):.6f}, max {ratio.max():.4f}; "
            f"all-equal sessions {ties:.0%}"
        )
        print(
            f"RESULT {variant}/{state.replace(' ', '').replace(',', '_')} share={share:.4f} "
            f"chance={chance_level:.4f}"
        )

    # a dozen sessions of length >= 5 that hold noise, for the heatmaps
    pick = np.flatnonzero(counted & (lens >= 5))[:12]
    plt = common.pyplot()
    panels = [
        ("paper", "untrained"),
        ("paper", "trained"),
        ("official", "untrained"),
        ("official", "trained"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(11, 3.4), sharey=True, layout="constrained")
    for ax, key in zip(axes, panels, strict=True):
        beta = betas[key][pick]
        real = np.arange(L)[None, :] < lens[pick][:, None]
        shown = np.where(real, beta * lens[pick][:, None], np.nan)
        im = ax.imshow(shown, cmap="coolwarm", vmin=0.5, vmax=1.5, aspect="auto")
        r, c = np.nonzero(noise[pick])
        ax.scatter(
            c, r, marker="X", facecolor="white", edgecolor="k", lw=0.8, s=60, label="noise click"
        )
        ax.set_title(
            f"{key[0]}, {key[1]}\nnoise lowest: {shares[key]:.2f} (chance {chance_level:.2f})",
            fontsize=8,
        )
        ax.set_xlabel("position in session")
    axes[0].set_ylabel("test session")
    axes[0].legend(loc="lower right", fontsize=7)
    fig.colorbar(im, ax=axes, fraction=0.02, label="t * beta (1 = mean pooling)")
    common.save_figure(fig, "12_importance.png")


# ==========================================================================
# EXERCISE
# Write ``noise_lowest_share(beta, item_seq_len, noise) -> float`` as
# defined above: among sessions with a noise click and a clean click among
# their real positions, the share where the lowest noise weight is strictly
# below the lowest clean weight. Careful: beta is 0 at padded positions.
# Run this file to check it, or from the repository root:
#   python -c "from tutorials.checks import check_noise_lowest_share as c; \
#              from tutorials.common import noise_lowest_share; c(noise_lowest_share)"
# ==========================================================================
def my_noise_lowest_share(beta, item_seq_len, noise):
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_noise_lowest_share, my_noise_lowest_share)
