"""The ablation table of SR-IEM+: each of its additions switched off in turn (issue #12)."""

from minisriem.experiments.plan import GROUPS
from minisriem.experiments.records import PROTOCOL_TEXT, finished_records, pct


def ablation_table(state):
    """SR-IEM+ beside its ablation runs (each addition off in turn), seed 0; "" when none ran.

    Each run's refit where it is done, its phase 1 (validation-selected) otherwise; Δ is
    the ablation minus SR-IEM+ under the same protocol, in points.
    """

    def seed0(group):
        """``{protocol: record}`` of the group's seed-0 runs, refit first."""
        out = {}
        for refit, protocol in ((True, "refit"), (False, "validation-selected")):
            for _, r in finished_records(state, group, refit=refit):
                if r["settings"].get("seed", 0) == 0:
                    out[protocol] = r
        return out

    runs = []
    for group, spec in GROUPS.items():
        if spec.get("ablation") and seed0(group):
            protocol, r = next(iter(seed0(group).items()))
            runs.append((spec["label"], protocol, r))
    if not runs:
        return ""
    full = seed0("sriem-plus")
    lines = [
        "| run | protocol | R@20 | MRR@20 | Δ R@20 | Δ MRR@20 |",
        "|---|---|---|---|---|---|",
    ]
    for protocol, r in full.items():
        lines.append(
            f"| {GROUPS['sriem-plus']['label']} (every addition) | {PROTOCOL_TEXT[protocol]} | "
            f"{pct(r['test']['Recall@20'])} | {pct(r['test']['MRR@20'])} | | |"
        )
    for label, protocol, r in runs:
        delta = ("", "")
        if protocol in full:
            base = full[protocol]["test"]
            delta = tuple(f"{100 * (r['test'][k] - base[k]):+.2f}" for k in ("Recall@20", "MRR@20"))
        lines.append(
            f"| {label} | {PROTOCOL_TEXT[protocol]} | {pct(r['test']['Recall@20'])} | "
            f"{pct(r['test']['MRR@20'])} | {delta[0]} | {delta[1]} |"
        )
    return (
        "\n".join(lines)
        + "\n\nSeed 0. Δ: the ablation minus SR-IEM+ (every addition) under the same "
        "protocol, in points; a negative Δ is what the addition switched off was worth."
    )
