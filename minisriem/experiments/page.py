"""Render ``docs/REPRODUCTION.md`` and its figures from the reproduction's state files.

Every number on the page is read from ``OUT_DIR/DATASET/state.json``
(written by :mod:`minisriem.experiments.reproduce`) or from the PyTorch
reference's ``bench.json``; nothing is typed in except the paper's own
figures in :data:`PAPER` (and :data:`~minisriem.experiments.timing.PAPER_TABLE3`).
Fig. 2 and 3 are drawn by :mod:`~minisriem.experiments.figures`, Table 3 written by
:mod:`~minisriem.experiments.timing`. The text between :data:`DISCUSSION_START` and
:data:`DISCUSSION_END` is written by hand and kept when the page is rewritten.
"""

import json
import os
import time

import numpy as np

from minisriem.experiments.ablation import ablation_table
from minisriem.experiments.figures import fig2, fig3
from minisriem.experiments.plan import GROUPS
from minisriem.experiments.records import (
    DATASET_TITLES,
    PROTOCOL_TEXT,
    duration,
    finished_records,
    pct,
)
from minisriem.experiments.state import STATE_FILE, is_done, load_state
from minisriem.experiments.timing import table3

DISCUSSION_START = "<!-- BEGIN discussion: hand-written, kept when the page is regenerated -->"
DISCUSSION_END = "<!-- END discussion -->"
DEFAULT_DISCUSSION = (
    "_Not written yet._ Once the full runs are done, explain here, by hand, every gap "
    "between our figures and the paper's (protocol, model selection, tie rule, "
    "epochs, seeds). The command keeps this section as it is.\n"
)

SUMMARY_FILE = "summary.json"
"""Table 2 of every dataset as JSON rows (see :func:`table2_rows`), beside the state folders."""

PAGE_DATASETS = ("diginetica", "yoochoose1_64")
"""Datasets that always get a section, "not measured" when they have no state."""

PAPER = {
    "diginetica": {"S-POP": (21.06, 13.68), "Item-KNN": (35.75, 11.57), "SR-IEM": (52.35, 17.64)},
    "yoochoose1_64": {
        "S-POP": (30.44, 18.35),
        "Item-KNN": (51.60, 21.81),
        "SR-IEM": (71.15, 31.71),
    },
}
"""The paper's Table 2 (percent: R@20, MRR@20); SR-STAMP and SR-SAT appear only in its Fig. 3."""


# ----------------------------------------------------------------------
# Table 2
# ----------------------------------------------------------------------
def _commit_of(recs):
    commits = sorted({str(r.get("commit")) for r in recs if r.get("commit")})
    return ",".join(commits) if commits else None


def _row(dataset, method, protocol, recs, r_values, m_values, seeds):
    r, m = 100 * np.asarray(r_values, float), 100 * np.asarray(m_values, float)
    std = [float(r.std(ddof=1)), float(m.std(ddof=1))] if len(r) > 1 else None
    return {
        "dataset": dataset,
        "method": method,
        "protocol": protocol,
        "recall@20": float(r.mean()),
        "mrr@20": float(m.mean()),
        "std": std,
        "seeds": seeds,
        "commit": _commit_of(recs),
    }


KNN_RESULTS = (("vsknn", "V-SKNN"), ("stan", "STAN"))
"""kNN baselines tuned by ``benchmarks/tune_vsknn.py``, in ``STATE_DIR/DATASET/NAME.json``."""


def knn_results(state_dir):
    """``[(method, record)]`` of the tuned kNN baselines found beside the state."""
    out = []
    for name, method in KNN_RESULTS:
        path = os.path.join(state_dir or "", f"{name}.json")
        if state_dir and os.path.exists(path):
            with open(path) as f:
                out.append((method, json.load(f)))
    return out


def table2_rows(dataset, state, state_dir=None):
    """Table 2 as rows: every method under every protocol it has figures for.

    Returns
    -------
    list of dict, the rows of ``summary.json``: ``dataset``, ``method`` (the
    Table 2 label), ``protocol`` ("refit", "validation-selected",
    "best-test-over-epochs", "fixed-epochs-all-train" or "all-train"),
    ``recall@20`` and ``mrr@20`` (percent, mean over seeds), ``std`` (``[r, m]``,
    sample std over seeds, or None), ``seeds`` and ``commit``
    """
    rows = []
    for group, spec in GROUPS.items():
        if spec["kind"] not in ("baseline", "model") or group.startswith("probe-"):
            continue
        if spec.get("ablation"):  # the ablation table's, not Table 2's
            continue
        label = spec["label"]
        if spec["kind"] == "baseline":
            for _, r in finished_records(state, group):
                rows.append(
                    _row(
                        dataset, label, "all-train", [r],
                        [r["test"]["Recall@20"]], [r["test"]["MRR@20"]], [],
                    )
                )  # fmt: skip
            continue
        refit = [r for _, r in finished_records(state, group, refit=True)]
        phase1 = [r for _, r in finished_records(state, group)]
        seeds = lambda recs: [int(r["settings"]["seed"]) for r in recs]  # noqa: E731
        if refit:
            rows.append(
                _row(
                    dataset, label, "refit", refit,
                    [r["test"]["Recall@20"] for r in refit], [r["test"]["MRR@20"] for r in refit],
                    seeds(refit),
                )
            )  # fmt: skip
        all_train = bool(phase1) and phase1[0]["settings"].get("valid_fraction", 0.1) == 0
        if phase1:
            protocol = "fixed-epochs-all-train" if all_train else "validation-selected"
            rows.append(
                _row(
                    dataset, label, protocol, phase1,
                    [r["test"]["Recall@20"] for r in phase1], [r["test"]["MRR@20"] for r in phase1],
                    seeds(phase1),
                )
            )  # fmt: skip
        best = refit or phase1  # the authors' report: over the refit's epochs where there is one
        if best and not (best is phase1 and all_train):
            rows.append(
                _row(
                    dataset, label, "best-test-over-epochs", best,
                    [r["best_test"]["Recall@20"][0] for r in best],
                    [r["best_test"]["MRR@20"][0] for r in best],
                    seeds(best),
                )
            )  # fmt: skip
    for method, rec in knn_results(state_dir):
        # settings chosen on the validation split, then fitted on every training session
        row = _row(
            dataset, method, "refit", [rec], [rec["test"]["Recall@20"]], [rec["test"]["MRR@20"]], []
        )
        row["commit"] = rec.get("commit")
        rows.append(row)
    return rows


def _paper_figures(dataset, method):
    paper = PAPER.get(dataset, {})
    key = "SR-IEM" if method == GROUPS["sriem-paper"]["label"] else method
    return paper.get(key)


def table2(dataset, state, state_dir=None):
    lines = [
        "| method | protocol | runs | R@20 | MRR@20 | paper R@20 | paper MRR@20 |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = table2_rows(dataset, state, state_dir)
    notes = {method: "settings chosen on validation" for method, _ in knn_results(state_dir)}
    for group, note in (("spop", "L = {L}"), ("itemknn", "last item")):
        for _, rec in finished_records(state, group):
            notes[GROUPS[group]["label"]] = note.format(L=rec.get("L"))

    def line(row, first):
        p = _paper_figures(dataset, row["method"])
        paper = ("", "")
        if first:
            if p:
                paper = (f"{p[0]:.2f}", f"{p[1]:.2f}")
            elif row["method"] in (GROUPS["sr-stamp"]["label"], GROUPS["sr-sat"]["label"]):
                paper = ("only in Fig. 3", "")
        seeds = row["seeds"]
        runs = f"{len(seeds)} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
        if not seeds:
            runs = f"1 ({notes[row['method']]})" if row["method"] in notes else "1"
        std = row["std"]
        r = f"{row['recall@20']:.2f}" + (f" ± {std[0]:.2f}" if std else "")
        m = f"{row['mrr@20']:.2f}" + (f" ± {std[1]:.2f}" if std else "")
        return (
            f"| {row['method']} | {PROTOCOL_TEXT[row['protocol']]} | {runs} | {r} | {m} | "
            f"{paper[0]} | {paper[1]} |"
        )

    # the methods in the plan's order, a method not run yet where it would stand
    specs = {}
    for spec in GROUPS.values():
        if spec["kind"] in ("baseline", "model"):
            specs.setdefault(spec["label"], spec)
    labels = list(specs) + [m for m in dict.fromkeys(r["method"] for r in rows) if m not in specs]
    for label in labels:
        mine = [row for row in rows if row["method"] == label]
        for i, row in enumerate(mine):
            lines.append(line(row, i == 0))
        if not mine and label in specs and not specs[label].get("optional"):
            p = _paper_figures(dataset, label)
            paper = (f"{p[0]:.2f}", f"{p[1]:.2f}") if p else ("-", "-")
            lines.append(f"| {label} | | not run | - | - | {paper[0]} | {paper[1]} |")
    for group in ("spop", "itemknn"):
        for _, rec in finished_records(state, group):
            for extra in rec.get("extras", {}).values():
                lines.append(
                    f"| {extra['label']} | all training sessions | 1 | "
                    f"{pct(extra['test']['Recall@20'])} | {pct(extra['test']['MRR@20'])} | | |"
                )
    return "\n".join(lines)


def probes_table(dataset, state):
    """Each probe beside the headline (SR-IEM paper, refit): its figures and the difference."""
    head = [r for r in table2_rows(dataset, state) if r["protocol"] == "refit"]
    head = next((r for r in head if r["method"] == GROUPS["sriem-paper"]["label"]), None)
    lines = []
    for group, spec in GROUPS.items():
        if not group.startswith("probe-") or spec["kind"] != "model" or head is None:
            continue
        for _, r in finished_records(state, group, refit=True):
            dr = 100 * r["test"]["Recall@20"] - head["recall@20"]
            dm = 100 * r["test"]["MRR@20"] - head["mrr@20"]
            lines.append(
                f"| {spec['label']} (refit, seed {r['settings']['seed']}, "
                f"E* = {r['settings']['epochs']} of `{r.get('selection_from', '?')}`) | "
                f"{pct(r['test']['Recall@20'])} | {pct(r['test']['MRR@20'])} | "
                f"{dr:+.2f} | {dm:+.2f} |"
            )
    ties = state["runs"].get("probe-ties")
    if is_done(ties):
        base = ties["rules"]["favour"]
        for rule, text in (
            ("favour", "ties in the target's favour (ours)"),
            ("against", "ties counted against the target"),
            ("average", "the tied group's average rank"),
        ):
            m = ties["rules"][rule]
            dr = 100 * (m["Recall@20"] - base["Recall@20"])
            dm = 100 * (m["MRR@20"] - base["MRR@20"])
            lines.append(
                f"| same scores ({ties['of']}), {text} | {pct(m['Recall@20'])} | "
                f"{pct(m['MRR@20'])} | {dr:+.2f} | {dm:+.2f} |"
            )
    if not lines:
        return ""
    std = head["std"] if head else None
    spread = (
        f" The headline's seed standard deviation is {std[0]:.2f} / {std[1]:.2f}." if std else ""
    )
    return (
        "| probe | R@20 | MRR@20 | Δ R@20 | Δ MRR@20 |\n|---|---|---|---|---|\n"
        + "\n".join(lines)
        + "\n\nΔ: against the headline (SR-IEM (paper), refit, mean over seeds) for retrained "
        "probes; against the same scores with our tie rule for the tie probe." + spread
    )


def knn_note(state_dir):
    """V-SKNN beside the figures session-rec publishes, and how their protocol differs."""
    for method, rec in knn_results(state_dir):
        pub = rec.get("published")
        if method == "V-SKNN" and pub:
            return (
                f"\n\nPublished for comparison ({pub['source']}): HR@20 "
                f"{100 * pub['HR@20']:.2f}, MRR@20 {100 * pub['MRR@20']:.2f}; our V-SKNN: "
                f"{100 * rec['test']['Recall@20']:.2f} / {100 * rec['test']['MRR@20']:.2f}. "
                f"The protocols differ: {pub['protocol']}."
            )
    return ""


def commits_note(state):
    """Which code versions the finished runs were made with (a table never mixes them silently)."""
    by_commit = {}
    for name, r in state["runs"].items():
        if is_done(r):
            by_commit.setdefault(r.get("commit") or "not recorded", []).append(name)
    if len(by_commit) <= 1:
        (commit,) = by_commit or {"-": []}
        return f"Every run was made with commit `{commit}`."
    parts = [f"`{c}`: {', '.join(sorted(names))}" for c, names in sorted(by_commit.items())]
    return (
        "The runs were made with more than one code version (the commit of each run; "
        '"not recorded": made before commits were kept): ' + "; ".join(parts) + "."
    )


# ----------------------------------------------------------------------
# Significance
# ----------------------------------------------------------------------
def significance_rows(state, state_dir):
    """SR-IEM (paper, refit, seed 0) against every other row with kept per-example ranks."""
    from minisriem.experiments.significance import compare
    from minisriem.experiments.state import load_ranks

    base_name = "sriem-paper-seed0-refit"
    base = load_ranks(state_dir, base_name)
    if base is None:
        return []
    out = []
    for name, r in state["runs"].items():
        if name == base_name or not is_done(r) or r.get("group") == "timing":
            continue
        seed = r.get("settings", {}).get("seed", 0)
        if seed != 0:
            continue
        other = load_ranks(state_dir, name)
        if other is None:
            continue
        protocol = r.get("protocol") or "validation-selected"
        label = f"{r.get('label', name)} ({PROTOCOL_TEXT.get(protocol, protocol)})"
        out.append({"run": name, "label": label, **compare(base, other)})
    for method, rec in knn_results(state_dir):
        path = os.path.join(state_dir, rec.get("ranks_file", ""))
        if rec.get("ranks_file") and os.path.exists(path):
            with np.load(path) as z:
                other = z["ranks"]
            out.append({"run": method, "label": f"{method} (refit)", **compare(base, other)})
    return out


def significance_table(state, state_dir):
    rows = significance_rows(state, state_dir)
    if not rows:
        return "_Needs the per-example ranks of SR-IEM (paper), refit, seed 0._"
    lines = [
        "| SR-IEM (paper, refit) against | ΔR@20 | t | p | 95% CI | ΔMRR@20 | t | p | 95% CI |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cells(x):
        lo, hi = x["ci95"]
        return (
            f"{100 * x['diff']:+.2f} | {x['t']:.1f} | {x['p']:.1e} | "
            f"[{100 * lo:+.2f}, {100 * hi:+.2f}]"
        )

    for row in rows:
        lines.append(f"| {row['label']} | {cells(row['recall'])} | {cells(row['mrr'])} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------
# Learning curves
# ----------------------------------------------------------------------
def curves_table(state):
    """Loss, validation and test figures of every epoch of every finished model run."""
    runs = [(n, r) for n, r in state["runs"].items() if is_done(r) and r.get("curve")]
    if not runs:
        return ""
    n_epochs = max(len(r["curve"]) for _, r in runs)
    lines = [
        "| run | | " + " | ".join(f"epoch {e + 1}" for e in range(n_epochs)) + " |",
        "|---|---|" + "---|" * n_epochs,
    ]
    for name, r in runs:
        curve = r["curve"]
        pad = ["-"] * (n_epochs - len(curve))
        cells = [f"{c['lr']:g} / {c['loss']:.3f}" for c in curve]
        lines.append(f"| `{name}` | lr / training loss | " + " | ".join(cells + pad) + " |")
        for part in ("valid", "test"):
            if curve[0][part] is None:
                continue
            selected = r.get("selected_epoch") if part == "test" else None
            cells = [
                f"{pct(c[part]['Recall@20'])} / {pct(c[part]['MRR@20'])}"
                + (" **sel**" if c["epoch"] == selected else "")
                for c in curve
            ]
            lines.append(f"| | {part} R@20 / MRR@20 | " + " | ".join(cells + pad) + " |")
    return (
        "\n".join(lines)
        + "\n\n**sel**: the epoch selected by validation Recall@20 (its test figures are "
        "Table 2's)."
    )


# ----------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------
def runs_table(state):
    lines = [
        "| run | status | epochs run / max | selected epoch | seed | threads | wall time "
        "| peak memory | commit | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in state["runs"].items():
        s = r.get("settings", {})
        threads = r.get("threads") or "all"
        if "epochs" in s:
            ep = f"{r.get('epochs_run', '-')} / {s['epochs']}"
            cmd = f"`{r['command']}`" if "command" in r else "(running)"
            sel = r.get("selected_epoch", "-")
            seed = s.get("seed", "-")
        elif r.get("group") == "probe-ties":
            ep, sel, seed = "-", "-", 0
            cmd = f"in-process: the scores of `{r.get('of')}`'s model under three tie rules"
        elif r.get("group") == "timing":
            ep, sel, seed = "-", "-", s.get("seed", "-")
            cmd = f"in-process (`--runs timing`), {r.get('steps')} steps x {r.get('rounds')} rounds"
        else:
            ep, sel, seed = "-", "-", "-"
            cmd = f"in-process (`minisriem.baselines`), L = {s.get('L')}"
        wall = duration(r.get("wall_seconds", 0.0))
        memory = f"{r['peak_rss_mb'] / 1024:.2f} GiB" if r.get("peak_rss_mb") else "-"
        commit = f"`{r['commit'][:10]}`" if r.get("commit") else "not recorded"
        if r.get("selection_from"):
            sel = f"{sel} (E* of `{r['selection_from']}`)"
        lines.append(
            f"| `{name}` | {r['status']} | {ep} | {sel} | {seed} | {threads} | {wall} | "
            f"{memory} | {commit} | {cmd} |"
        )
    inv = state["invocations"]
    machines = {
        json.dumps({k: v for k, v in i["machine"].items() if k != "threads"}, sort_keys=True)
        for i in inv
    }
    m = inv[-1]["machine"]
    text = "\n".join(lines)
    text += (
        f"\n\nMachine: {m['cpu']}, {m['cores']} cores (threads per run: the table's column); "
        f"{m['platform']}; Python {m['python']}, NumPy {m['numpy']}"
        + (f", Numba {m['numba']}" if "numba" in m else "")
        + "."
    )
    if len(machines) > 1:
        text += f" (The runs were made across {len(machines)} different machine setups.)"
    text += "\n\nInvocations of the command for this dataset:\n\n" + "\n".join(
        f"- {i['started']}: `{i['command']}`" for i in inv
    )
    return text


def dataset_section(dataset, state, fig_dir, fig_rel, bench, state_dir=None):
    title = DATASET_TITLES.get(dataset, dataset)
    if state is None:
        return (
            f"## {title}\n\nNot measured: no run of the reproduction on {title} yet "
            f"(`python -m minisriem.experiments.reproduce --dataset {dataset}`).\n"
        )
    st = state["stats"]
    parts = [f"## {title}"]
    parts.append(
        f"Data: {st.get('train_examples')} training and {st.get('test_examples')} test "
        f"examples, {st.get('n_items')} items, average length {st.get('avg_length')} "
        f"(`data_dir` {state.get('data_dir') or 'default'}). The models hold out the most "
        "recent 10% of training sessions for validation; the baselines use every training "
        "session."
    )
    parts.append(
        "### Table 2: overall performance (percent)\n\n"
        "Protocols, in the order shown: **refit** (the headline): phase 1 trains without the "
        "most recent 10% of training sessions and picks the epoch count E* with the best "
        "validation Recall@20 (ties by MRR@20, early stopping); phase 2 trains a fresh model "
        "with the same seed on every training session for exactly E* epochs with the same "
        "learning-rate schedule, and its last epoch is the result. No choice looks at the "
        "test set. Here the two phases are two runs (`NAME` and `NAME-refit`), so a phase 1 "
        "can be reused; extra seeds of SR-IEM (paper) take seed 0's E* unless their own "
        "phase 1 was run (the runs table says which). **validation-selected**: phase 1's "
        "selected epoch, trained without the validation sessions. **best test over epochs "
        "(authors')**: the best test R@20 and the best test MRR@20 over the refit's epochs, "
        "possibly from different epochs, chosen by looking at the test set (optimistic), as "
        "the authors' code reports. The baselines have nothing to select and use every "
        "training session. Several seeds: mean ± sample standard deviation. Ranks use the "
        "strict tie rule (an item counts ahead of the target only when it scores strictly "
        "higher). V-SKNN and STAN (`benchmarks/tune_vsknn.py`) read whole sessions, choose "
        "their settings on the validation split and are then fitted on every training "
        "session (the refit protocol's analogue; their grids and chosen settings are in "
        "`vsknn.json` / `stan.json` beside `state.json`).\n\n"
        + table2(dataset, state, state_dir)
        + knn_note(state_dir)
        + "\n\n"
        + commits_note(state)
    )
    parts.append(
        "### Significance (paired, on the same test examples)\n\n"
        "SR-IEM (paper), refit, seed 0, against every other seed-0 run whose per-example "
        "ranks are kept (`ranks/NAME.npz` beside `state.json`): Δ is SR-IEM minus the other, in "
        "points; t is the paired t statistic on per-example hits at 20 (R@20) and reciprocal "
        "ranks at 20 (MRR@20), p its two-sided p-value (normal approximation), and the 95% "
        "interval is a paired bootstrap of Δ (2,000 resamples). The paper's rows have no "
        "per-example data and get no test.\n\n" + significance_table(state, state_dir)
    )
    f2 = os.path.join(fig_dir, f"{dataset}-fig2.png")
    parts.append(
        "### Fig. 2: performance by session length\n\n"
        f"![Fig. 2]({fig_rel}/{dataset}-fig2.png)\n\n"
        "Test examples grouped by the number of items before the target (10 and more in one "
        "group: the model reads the 10 most recent). Models: the refit runs (phase-1 runs "
        "where no refit run is done yet), mean over seeds; V-SKNN and STAN: their tuned "
        "settings fitted on every training session.\n\n"
        + fig2(dataset, state, f2, knn_results(state_dir))
    )
    f3 = os.path.join(fig_dir, f"{dataset}-fig3.png")
    parts.append(
        "### Fig. 3: importance modules\n\n"
        f"![Fig. 3]({fig_rel}/{dataset}-fig3.png)\n\n"
        "SR-IEM's framework with its importance module swapped (SR-STAMP: STAMP's attention, "
        "raw weights; SR-SAT: self-attention then average pooling), test figures of the "
        "refit runs (of the validation-selected epoch where no refit run is done yet); "
        "error bars: std over seeds (SR-IEM only).\n\n" + fig3(dataset, state, f3)
    )
    probes = probes_table(dataset, state)
    if probes:
        parts.append("### Probes of the gap to the paper\n\n" + probes)
    ablation = ablation_table(state)
    if ablation:
        parts.append(
            "### Ablation of SR-IEM+\n\n"
            "SR-IEM+ is SR-IEM (paper) with normalised scoring (NISER), dropout on the "
            "looked-up embeddings, a learnable importance form and training in the file's "
            "time order (`python -m minisriem.train --preset sriem-plus`); each row below "
            "switches one addition off or moves one setting (`plus-scale-8`, ...: phase 1 "
            "only), the last has none. The settings are chosen on the validation columns "
            "only; the test columns are reported, not looked at.\n\n" + ablation
        )
    parts.append("### Table 3: time\n\n" + table3(dataset, state, bench))
    curves = curves_table(state)
    if curves:
        parts.append("### Learning curves\n\n" + curves)
    parts.append("### Runs, commands and machine\n\n" + runs_table(state))
    return "\n\n".join(parts) + "\n"


def _discussion(path):
    """The hand-written text between the markers of an existing page, or the default."""
    if not os.path.exists(path):
        return DEFAULT_DISCUSSION
    with open(path) as f:
        text = f.read()
    a, b = text.find(DISCUSSION_START), text.find(DISCUSSION_END)
    if a < 0 or b < a:
        return DEFAULT_DISCUSSION
    return text[a + len(DISCUSSION_START) : b].strip("\n") + "\n"


def write_page(path, out_root, bench_json=None):
    """Write the page from every ``OUT_ROOT/*/state.json``; returns ``path``.

    DIGINETICA and YOOCHOOSE 1/64 always get a section ("not measured"
    without a state); any other dataset with a state (e.g. synthetic) too.
    """
    from minisriem.checkpoint import write_text

    states = {}
    if os.path.isdir(out_root):
        for name in sorted(os.listdir(out_root)):
            if os.path.exists(os.path.join(out_root, name, STATE_FILE)):
                states[name] = load_state(os.path.join(out_root, name))
    bench = None
    if bench_json and os.path.exists(bench_json):
        with open(bench_json) as f:
            bench = json.load(f)
    folder = os.path.dirname(os.path.abspath(path))
    fig_rel = "figures/reproduction"
    fig_dir = os.path.join(folder, fig_rel)
    datasets = list(PAGE_DATASETS) + [d for d in states if d not in PAGE_DATASETS]
    commands = "\n".join(
        [
            "python -m minisriem.experiments.reproduce --dataset diginetica --data-dir DATA_DIR",
            "python -m minisriem.experiments.reproduce --dataset yoochoose1_64 --data-dir DATA_DIR",
            "python -m minisriem.experiments.reproduce --report-only   # rewrite this page",
        ]
    )
    head = (
        "# Reproducing SR-IEM (Pan et al., SIGIR 2020)\n\n"
        f"_Generated on {time.strftime('%Y-%m-%d %H:%M')} by "
        "`python -m minisriem.experiments.reproduce` from the recorded runs in "
        f"`{out_root}/DATASET/state.json`. Every number is regenerated by the command; "
        "edit only the discussion at the end, which the command keeps._\n\n"
        "To regenerate (each command is resumable: interrupt it and start it again):\n\n"
        f"```\n{commands}\n```\n\n"
        "Options to limit the work: `--runs spop,itemknn,sriem-paper,...`, "
        "`--only baselines|models`, `--epochs N`, `--seeds 0,1,2`.\n"
    )
    body = [
        dataset_section(d, states.get(d), fig_dir, fig_rel, bench, os.path.join(out_root, d))
        for d in datasets
    ]
    summary = [
        row
        for d in datasets
        if states.get(d)
        for row in table2_rows(d, states[d], os.path.join(out_root, d))
    ]
    write_text(os.path.join(out_root, SUMMARY_FILE), json.dumps(summary, indent=1) + "\n")
    tail = f"## Discussion of gaps\n\n{DISCUSSION_START}\n{_discussion(path)}{DISCUSSION_END}\n"
    os.makedirs(folder, exist_ok=True)
    write_text(path, head + "\n" + "\n".join(body) + "\n" + tail)
    return path
