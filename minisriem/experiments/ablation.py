"""The ablation table of SR-IEM+: each of its additions switched off in turn (issue #12)."""

from minisriem.experiments.plan import GROUPS
from minisriem.experiments.records import PROTOCOL_TEXT, finished_records, pct


def seed0_runs(state, group):
    """``{protocol: record}`` of a group's finished seed-0 runs, the refit first."""
    out = {}
    for refit, protocol in ((True, "refit"), (False, "validation-selected")):
        for _, r in finished_records(state, group, refit=refit):
            if r["settings"].get("seed", 0) == 0:
                out[protocol] = r
    return out


def ablation_table(state):
    """SR-IEM+ beside its ablation runs and SR-IEM (paper), seed 0; "" when no ablation ran.

    Each row gives its phase 1's validation figures at E* (what a choice between the
    rows may look at) and its test figures: of the refit where it is done, of phase 1's
    selected epoch otherwise. Δ is the row minus SR-IEM+ under the same protocol, in
    points. The sentence under the table names the row with the best validation R@20.
    """
    rows = []  # (label, {protocol: record})
    full = seed0_runs(state, "sriem-plus")
    rows.append((f"{GROUPS['sriem-plus']['label']} (every addition)", full))
    for group, spec in GROUPS.items():
        runs = seed0_runs(state, group) if spec.get("ablation") else {}
        if runs:
            rows.append((spec["label"], runs))
    if len(rows) == 1:
        return ""
    plain = seed0_runs(state, "sriem-paper")
    if plain:
        rows.append((f"{GROUPS['sriem-paper']['label']} (no addition)", plain))
    lines = [
        "| run | valid R@20 | valid MRR@20 | E* | test protocol | R@20 | MRR@20 "
        "| Δ R@20 | Δ MRR@20 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    best = None  # (valid R@20, valid MRR@20, label) of the best phase 1
    for label, runs in rows:
        if not runs:
            continue
        phase1 = runs.get("validation-selected")
        valid = ("-", "-", "-")
        if phase1 is not None and phase1.get("valid"):
            v = phase1["valid"]
            valid = (pct(v["Recall@20"]), pct(v["MRR@20"]), str(phase1["selected_epoch"]))
            key = (v["Recall@20"], v["MRR@20"], label)
            best = key if best is None or key[:2] > best[:2] else best
        protocol, r = next(iter(runs.items()))
        delta = ("", "")
        if protocol in full and runs is not full:
            base = full[protocol]["test"]
            delta = tuple(f"{100 * (r['test'][k] - base[k]):+.2f}" for k in ("Recall@20", "MRR@20"))
        lines.append(
            f"| {label} | {' | '.join(valid)} | {PROTOCOL_TEXT[protocol]} | "
            f"{pct(r['test']['Recall@20'])} | {pct(r['test']['MRR@20'])} | "
            f"{delta[0]} | {delta[1]} |"
        )
    text = (
        "\n".join(lines)
        + "\n\nSeed 0. valid: phase 1's validation figures at its selected epoch E*; test: the "
        "refit where it is done, phase 1's selected epoch otherwise. Δ: the row minus SR-IEM+ "
        "(every addition) under the same protocol, in points; a negative Δ is what the "
        "addition switched off was worth."
    )
    if best is not None:
        text += f" Best validation R@20 (the choice the preset should follow): {best[2]}."
    return text
