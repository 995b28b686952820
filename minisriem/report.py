"""What a training run shows a person: the epoch line, the final table, the curve.

An epoch record (one line of ``metrics.jsonl``) is a dict::

    {"epoch": 1, "lr": 0.001, "loss": 5.12, "examples": 90000,
     "train_seconds": 41.0, "eval_seconds": 3.2,
     "valid": {"Recall@20": 0.41, "MRR@20": 0.15, ...} or None,
     "test":  {"Recall@20": 0.40, "MRR@20": 0.14, ...}}

Metrics are fractions; everything printed here is in percent.
"""

import os

from data_tools.fileio import atomic_outputs


def _at20(metrics):
    """``"R@20 41.20 MRR@20 15.03"`` from a metrics dict."""
    return f"R@20 {100 * metrics['Recall@20']:5.2f} MRR@20 {100 * metrics['MRR@20']:5.2f}"


def epoch_line(record, n_epochs):
    """One line summing up an epoch: loss, validation and test R@20/MRR@20, time.

    Parameters
    ----------
    record : dict, an epoch record
    n_epochs : int, the number of epochs planned

    Returns
    -------
    str
    """
    phase = "refit " if record.get("phase") == "refit" else ""
    line = (
        f"{phase}epoch {record['epoch']:>2}/{n_epochs}  loss {record['loss']:.4f}  "
        f"lr {record['lr']:.0e}"
    )
    if record["valid"] is not None:
        line += f"  valid {_at20(record['valid'])}"
    line += f"  test {_at20(record['test'])}"
    line += f"  ({record['train_seconds']:.1f}s train, {record['eval_seconds']:.1f}s eval)"
    return line


def final_table(summary):
    """The end-of-run table: the refit, the selected epoch, the authors' report, popularity.

    Parameters
    ----------
    summary : dict
        ``model`` (its name, e.g. "SR-IEM"), ``selected`` (phase 1's selected
        epoch record), ``selected_by`` (str), optionally ``refit`` (the refit's
        last epoch record, the result), ``best_test`` (``{"Recall@20": (value,
        epoch), "MRR@20": (value, epoch)}``, over the refit's epochs when there
        is one) and ``popularity`` (the popularity baseline on the test set).

    Returns
    -------
    str
    """
    name = summary["model"]
    sel = summary["selected"]
    best = summary["best_test"]
    r_value, r_epoch = best["Recall@20"]
    m_value, m_epoch = best["MRR@20"]
    rows = [("", "Recall@20", "MRR@20")]
    refit = summary.get("refit")
    if refit is not None:
        rows.append(
            (
                f"{name}, refit on every training session, {refit['epoch']} epochs "
                "(the count chosen on validation): test",
                *_pct(refit["test"]),
            )
        )
    without = ", without the validation sessions" if refit is not None else ""
    rows.append(
        (
            f"{name}, epoch {sel['epoch']} ({summary['selected_by']}{without}): test",
            *_pct(sel["test"]),
        )
    )
    if sel["valid"] is not None:
        rows.append(("  the same epoch on validation", *_pct(sel["valid"])))
    over = "refit epochs" if refit is not None else "epochs"
    rows.append(
        (
            f"{name}, best test over {over} (authors' report; epochs {r_epoch}, {m_epoch})",
            f"{100 * r_value:.2f}",
            f"{100 * m_value:.2f}",
        )
    )
    rows.append(
        ("popularity baseline (most frequent training targets): test", *_pct(summary["popularity"]))
    )
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:>9}  {c:>9}" for a, b, c in rows)


def _pct(metrics):
    return f"{100 * metrics['Recall@20']:.2f}", f"{100 * metrics['MRR@20']:.2f}"


def plot_curve(path, history, title=""):
    """Save the training curve: loss, and R@20 / MRR@20 per epoch, as a PNG.

    Parameters
    ----------
    path : str, the ``.png`` to write (atomically)
    history : list of epoch records
    title : str
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refit = [r for r in history if r.get("phase") == "refit"]
    history = [r for r in history if r.get("phase") != "refit"]
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["loss"] for r in history], "o-", color="black", label="phase 1")
    if refit:
        ax_loss.plot(
            [r["epoch"] for r in refit],
            [r["loss"] for r in refit],
            "^:",
            color="gray",
            label="refit (all training sessions)",
        )
        ax_loss.legend()
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (cross-entropy)")
    parts = [("valid", "o-", history), ("test", "s--", history), ("refit test", "^:", refit)]
    for label, style, records in parts:
        part = "test" if label == "refit test" else label
        if records and records[0][part] is not None:
            for name, color in (("Recall@20", "tab:blue"), ("MRR@20", "tab:orange")):
                values = [100 * r[part][name] for r in records]
                x = [r["epoch"] for r in records]
                ax_metric.plot(x, values, style, color=color, label=f"{label} {name}")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel("percent")
    ax_metric.legend()
    for ax in (ax_loss, ax_metric):
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_outputs([path]) as (tmp,):
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


METRIC_LABELS = {
    "hit": "hit rate (= recall)",
    "recall": "recall",
    "mrr": "MRR",
    "ndcg": "NDCG",
    "coverage": "item coverage",
    "avg_popularity": "average popularity (count)",
    "tail_share": "tail share",
}
"""How ``evaluate``'s table labels each metric; only avg_popularity is not in percent."""


def evaluation_table(rows, ks=(5, 10, 20)):
    """``evaluate``'s overall table: one line per metric, a column per result and K.

    Parameters
    ----------
    rows : list of (str, dict)
        A label (the model's name, "popularity baseline") and a dict of
        :func:`minisriem.metrics.evaluation_metrics`.
    ks : sequence of int

    Returns
    -------
    str
        Fractions in percent; ``avg_popularity`` as a mean count.
    """
    cell = 9
    group = len(ks) * (cell + 2)
    head1 = f"{'':<28}" + "".join(f"  {label[: group - 2]:>{group - 2}}" for label, _ in rows)
    head2 = f"{'':<28}" + "".join(f"  {'@' + str(k):>{cell}}" for _ in rows for k in ks)
    lines = [head1.rstrip(), head2]
    for name, label in METRIC_LABELS.items():
        line = f"{label:<28}"
        for _, metrics in rows:
            for k in ks:
                value = metrics.get(f"{name}@{k}")
                if value is None or value != value:  # missing or NaN
                    line += f"  {'-':>{cell}}"
                elif name == "avg_popularity":
                    line += f"  {value:{cell}.1f}"
                else:
                    line += f"  {100 * value:{cell}.2f}"
        lines.append(line)
    return "\n".join(lines)
