"""The paper's Fig. 2 (by session length) and Fig. 3 (importance modules), drawn from the records.

Each function saves its figure as a PNG and returns the markdown table of the
numbers it shows, for the page (:mod:`minisriem.experiments.page`).
"""

import os

import numpy as np

from minisriem.experiments.plan import GROUPS
from minisriem.experiments.records import DATASET_TITLES, finished_records, pct


def _figure_records(state, group):
    """The records a figure shows for a group: the refit runs, else the phase-1 runs."""
    return [r for _, r in finished_records(state, group, refit=True)] or [
        r for _, r in finished_records(state, group)
    ]


def _length_series(recs):
    """Mean R@20 and MRR@20 per length group over the given records."""
    groups = list(recs[0]["by_length"])
    r = np.array([[rec["by_length"][g]["Recall@20"] for g in groups] for rec in recs])
    m = np.array([[rec["by_length"][g]["MRR@20"] for g in groups] for rec in recs])
    counts = [recs[0]["by_length"][g]["count"] for g in groups]
    return groups, np.nanmean(r, axis=0), np.nanmean(m, axis=0), counts


def fig2(dataset, state, path, extra=()):
    """R@20 and MRR@20 by session length (the paper's Fig. 2); the markdown for it.

    ``extra``: ``[(label, record)]`` of results kept outside the state (the tuned
    kNN baselines), each drawn when its record has ``by_length`` with the same groups.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    for group in ("sriem-paper", "sriem-official", "sriem-plus", "spop", "itemknn"):
        recs = _figure_records(state, group)
        if recs and "by_length" in recs[0]:
            series.append((GROUPS[group]["label"], _length_series(recs)))
    for label, record in extra:
        if "by_length" in record and (not series or list(record["by_length"]) == series[0][1][0]):
            series.append((label, _length_series([record])))
    if not series:
        return "_No run with results by length yet._"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, (groups, rec, mrr, _) in series:
        x = np.arange(len(groups))
        axes[0].plot(x, 100 * rec, marker="o", label=label)
        axes[1].plot(x, 100 * mrr, marker="o", label=label)
    for ax, name in zip(axes, ("Recall@20 (%)", "MRR@20 (%)"), strict=True):
        ax.set_xticks(np.arange(len(groups)), groups)
        ax.set_xlabel("session length (items before the target)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Performance by session length on {DATASET_TITLES.get(dataset, dataset)}")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    groups, _, _, counts = series[0][1]
    head = "| length | " + " | ".join(groups) + " |"
    lines = [head, "|---" * (len(groups) + 1) + "|"]
    lines.append("| test examples | " + " | ".join(str(c) for c in counts) + " |")
    for label, (_, rec, mrr, _) in series:
        lines.append(f"| {label} R@20 | " + " | ".join(pct(v) for v in rec) + " |")
        lines.append(f"| {label} MRR@20 | " + " | ".join(pct(v) for v in mrr) + " |")
    return "\n".join(lines)


def fig3(dataset, state, path):
    """SR-IEM vs SR-STAMP vs SR-SAT (the paper's Fig. 3); the markdown for it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = []
    for group in ("sriem-paper", "sr-stamp", "sr-sat"):
        recs = _figure_records(state, group)
        if recs:
            rr = 100 * np.array([r["test"]["Recall@20"] for r in recs])
            mm = 100 * np.array([r["test"]["MRR@20"] for r in recs])
            sd = lambda v: v.std(ddof=1) if len(v) > 1 else 0.0  # noqa: E731
            bars.append((GROUPS[group]["label"], rr.mean(), sd(rr), mm.mean(), sd(mm), len(recs)))
    if not bars:
        return "_No SR-IEM, SR-STAMP or SR-SAT run finished yet._"
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    x = np.arange(len(bars))
    for ax, (col, name) in zip(axes, ((1, "Recall@20 (%)"), (3, "MRR@20 (%)")), strict=True):
        values = [b[col] for b in bars]
        ax.bar(x, values, yerr=[b[col + 1] for b in bars], capsize=4, color="C0")
        ax.set_xticks(x, [b[0] for b in bars], fontsize=8)
        ax.set_ylabel(name)
        ax.set_ylim(0, max(values) * 1.15 + 1e-9)
        for xi, v in zip(x, values, strict=True):
            ax.text(xi, v / 2, f"{v:.2f}", ha="center", va="center", color="white", fontsize=9)
    fig.suptitle(
        f"Importance modules in SR-IEM's framework on {DATASET_TITLES.get(dataset, dataset)}"
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    lines = ["| module | runs | R@20 | MRR@20 |", "|---|---|---|---|"]
    for label, r, rs, m, ms, n in bars:
        pm = (f" ± {rs:.2f}", f" ± {ms:.2f}") if n > 1 else ("", "")
        lines.append(f"| {label} | {n} | {r:.2f}{pm[0]} | {m:.2f}{pm[1]} |")
    return "\n".join(lines)
