"""Step 13: the paper vs the authors' code: what differs, and what it does.

Run: python tutorials/13_paper_vs_code.py          (a few minutes; quick mode: seconds)

What differs
------------
The authors released PyTorch code with the paper. It does not compute the
paper's equations. ``SRIEM(..., variant="paper")`` follows the equations,
``variant="official"`` the code; everything else is shared.

    piece             the paper (eq.)                       the released code
    query, key        Q = sigmoid(E_s Wq), Wq: (d, l)  (1)  Q = E_s Wq, Wq: (d, d), no sigmoid
                      K = sigmoid(E_s Wk), Wk: (d, l)  (2)  K = E_s Wk, Wk: (d, d), no sigmoid
    affinity          C = sigmoid(Q K^T) / sqrt(d)     (3)  C = sigmoid(Q K^T / sqrt(d))
    importance        alpha_i = sum_{j!=i} C_ij / t    (4)  ... / (t - 1)   (1 when t = 1)
    fusion            z_h = W0 [z_l ; z_s]             (7)  z_h = W0 [z_l ; z_s] + b0
    initialisation    not stated                            every parameter uniform in
                                                            [-1/sqrt(d), 1/sqrt(d)] (ours too)

and, outside the model: the code ranks with ``topk(20)`` (ties in arbitrary
order; we use the strict rule of step 10), trains with batch size 256 on
unshuffled data, and reports the best Recall@20 and the best MRR@20 over
epochs *on the test set*, possibly from different epochs. (An honest report
picks one epoch on a validation split; ``minisriem.workflow.train`` does.)

What the first three rows do
----------------------------
Steps 4 and 5 derived the consequence. In the paper's form every ``C_ij`` lies
in ``(0.5/sqrt(d), 1/sqrt(d))``, so ``beta_i / beta_j`` can never exceed
``exp((t-1)/t * 0.5/sqrt(d))``, about 1.03 for ``d = 200``, ``t = 10``: the
importance module can hardly tell items apart, whatever it learns. Worse, at
initialisation ``Q K^T`` is about ``l/4 = 25``, the sigmoid of (3) is flat, and
Wq, Wk get gradients of about 1e-17 (exactly 0 in float32). They do not learn.
And they do not even stay put: Adam with coupled L2 (step 9) adds ``l2 * w``
to a zero gradient, and Adam divides by the gradient's own size, so each step
moves ``w`` by about ``lr`` towards zero, however small ``l2`` is (until
``l2 * |w|`` falls to the size of Adam's ``eps = 1e-8``). In a full run below,
the paper's Wq shrinks by orders of magnitude within the first epoch.

In the code's form ``C_ij = sigmoid(q_i . k_j / sqrt(d))`` can be anywhere in
(0, 1), sits at 0.5 at initialisation (the steep middle of the sigmoid), and
``beta`` ratios up to ``e`` are possible.

So the paper's SR-IEM is, in effect, mean pooling plus the last item, and the
code's is an importance model. We train both on the same synthetic data, with
the same seed, data order and schedule, and compare: test Recall@20 and
MRR@20, and how spread the learned weights are. In the full run (3 epochs)
the two rank equally well, within half a point, while only the code's
weights spread: on this data the intent of a session shows even in the
plain mean of its embeddings. ``tutorials/README.md`` lists the numbers.
"""

import common
import numpy as np
from checks import check_beta_ratio_bound

from data_tools import load_dataset
from minisriem.metrics import model_ranks, mrr_at_k, popularity_ranks, recall_at_k
from minisriem.model import SRIEM

D, LQ, L = 200, 100, 10


def main():
    common.heading("Parameters of each variant (d = 200, l = 100, n = 43,097 as DIGINETICA)")
    for variant in ("paper", "official"):
        m = SRIEM(10, d=D, l=LQ, variant=variant)
        extra = {k: v.shape for k, v in m.params.items() if k != "E"}
        n_extra = sum(int(np.prod(s)) for s in extra.values())
        print(f"{variant:8s} E: (43098, 200) plus {extra} = {n_extra:,} more")

    ds = load_dataset("synthetic")
    train = ds.train.padded(L)
    test_seq, test_len, test_tgt = ds.test.padded(L)
    n_test = common.quick(len(test_tgt), 1500)
    test = (test_seq[:n_test], test_len[:n_test], test_tgt[:n_test])
    noise = common.padded_noise(ds.test, L)[:n_test]
    epochs = common.quick(3, 1)
    max_steps = common.quick(None, 40)

    common.heading(
        f"Training both variants on synthetic data ({epochs} epoch(s)"
        + (f", {max_steps} steps" if max_steps else "")
        + ")"
    )
    pop = popularity_ranks(train[2], test[2], ds.n_items)
    results = {}
    for variant in ("paper", "official"):
        model = SRIEM(ds.n_items, d=D, l=LQ, variant=variant, seed=0)
        wq0 = float(np.abs(model.params["Wq"]).mean())
        beta0 = model.importance(test[0], test[1])
        losses = common.train_model(model, *train, epochs=epochs, max_steps=max_steps, seed=0)
        ranks = model_ranks(model, *test)
        beta = model.importance(test[0], test[1])
        results[variant] = {
            "recall": recall_at_k(ranks, 20),
            "mrr": mrr_at_k(ranks, 20),
            "loss": float(np.mean(losses[-20:])),
            "wq": (wq0, float(np.abs(model.params["Wq"]).mean())),
            "ratio0": common.beta_ratio(beta0, test[1])[test[1] > 1],
            "ratio": common.beta_ratio(beta, test[1])[test[1] > 1],
            "noise": common.noise_lowest_share(beta, test[1], noise),
        }
        loss = results[variant]["loss"]
        print(f"{variant:8s} trained {len(losses)} steps; final loss {loss:.3f}")

    common.heading("Results on the synthetic test set (strict tie rule)")
    print(
        f"{'':10s} {'Recall@20':>9s} {'MRR@20':>8s}   median / max beta ratio   "
        "noise lowest   mean |Wq|: init -> trained"
    )
    print(f"{'popularity':10s} {100 * recall_at_k(pop, 20):9.2f} {100 * mrr_at_k(pop, 20):8.2f}")
    for variant, r in results.items():
        print(
            f"{variant:10s} {100 * r['recall']:9.2f} {100 * r['mrr']:8.2f}   "
            f"{np.median(r['ratio']):10.4f} / {r['ratio'].max():<10.4f}   "
            f"{r['noise']:11.3f}   {r['wq'][0]:.1e} -> {r['wq'][1]:.1e}"
        )
        print(
            f"RESULT {variant} recall20={r['recall']:.4f} mrr20={r['mrr']:.4f} "
            f"ratio_max={r['ratio'].max():.4f}"
        )
    bound = np.exp((L - 1) / L * 0.5 / np.sqrt(D))
    print(f"the paper's bound on the ratio for t = 10: {bound:.4f}; the code's: e = {np.e:.4f}")
    print("(the noise column is step 12's measure; it counts an exact tie as a miss)")

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3))
    hi = max(1.2, float(np.quantile(results["official"]["ratio"], 0.995)))
    bins = np.linspace(1.0, hi, 40)
    colours = {"paper": "C0", "official": "C1"}
    for variant, r in results.items():
        for key, state, style in (("ratio", "trained", "-"), ("ratio0", "untrained", ":")):
            ax.hist(
                np.clip(r[key], 1, hi),
                bins=bins,
                histtype="step",
                lw=1.5,
                ls=style,
                color=colours[variant],
                label=f"{variant}, {state}",
            )
    ax.text(
        0.08,
        0.95,
        "paper (both) and official untrained:\nall sessions in the first bin",
        transform=ax.transAxes,
        fontsize=7,
        va="top",
    )
    ax.axvline(bound, color="k", ls="--", lw=0.8, label="paper's bound (t=10)")
    ax.set_yscale("log")
    ax.set_xlabel("beta_max / beta_min within a test session (1 = mean pooling)")
    ax.set_ylabel("sessions")
    ax.legend(fontsize=7)
    ax.set_title("How far apart the weights of a session are")
    common.save_figure(fig, "13_beta_spread.png")


# ==========================================================================
# EXERCISE
# Derive the least upper bound of beta_i / beta_j over all weights and all
# sessions of length t, for each variant, and return it. (Hint: find the
# range of C_ij, then of alpha_i, then use beta_i / beta_j = exp(alpha_i -
# alpha_j); a session of length 1 has one weight.)
# Run this file to check it, or from the repository root:
#   python -c "from tutorials.checks import check_beta_ratio_bound as c; \
#              from mycode import beta_ratio_bound; c(beta_ratio_bound)"
# ==========================================================================
def my_beta_ratio_bound(d, t, variant):
    raise NotImplementedError  # replace with your code


if __name__ == "__main__":
    main()
    common.run_exercise(check_beta_ratio_bound, my_beta_ratio_bound)
