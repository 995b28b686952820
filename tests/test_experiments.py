"""The reproduction command on the synthetic dataset, with tiny runs.

The full DIGINETICA runs are not tests: these check the plumbing (baselines,
a model run interrupted and resumed, the state file, the page, the kept
discussion) in seconds.
"""

import fcntl
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from minisriem.experiments import page, plan, reproduce

TINY = ["--d", "8", "--l", "4", "--batch-size", "2048"]


def run(tmp_path, *extra):
    argv = [
        "--dataset",
        "synthetic",
        "--out-dir",
        str(tmp_path / "runs"),
        "--state-dir",
        str(tmp_path / "state"),
        "--report",
        str(tmp_path / "docs" / "REPRODUCTION.md"),
        "--bench-json",
        str(tmp_path / "no-bench.json"),
        "--no-progress",
        *extra,
    ]
    return reproduce.main(argv)


def state(tmp_path):
    with open(tmp_path / "state" / "synthetic" / "state.json") as f:
        return json.load(f)


def test_plan_runs():
    default = reproduce._groups(reproduce.build_parser().parse_args([]))
    assert "sriem-all-train" in plan.GROUPS and "sriem-all-train" not in default
    runs = plan.plan_runs(default, [0, 1, 2], 10, {"d": 50})
    names = [r["name"] for r in runs]
    assert names == [
        "spop",
        "itemknn",
        "sriem-paper-seed0",
        "sriem-paper-seed0-refit",
        "sriem-paper-seed1-refit",
        "sriem-paper-seed2-refit",
        "sriem-official-seed0",
        "sriem-official-seed0-refit",
        "sr-stamp-seed0",
        "sr-stamp-seed0-refit",
        "sr-sat-seed0",
        "sr-sat-seed0-refit",
        "timing",
    ]
    assert runs[-1]["settings"] == {"seed": 0, "d": 50}
    assert runs[-3]["settings"] == {
        "variant": "paper",
        "importance": "sat",
        "seed": 0,
        "epochs": 10,
        "d": 50,
    }
    # the refit (phase 2) takes its epoch count from a phase-1 run when that is done
    refit = runs[-2]
    assert refit["kind"] == "refit" and refit["of"] == "sr-sat-seed0"
    phase1 = {k: v for k, v in runs[-3]["settings"].items() if k != "epochs"}
    assert refit["settings"] == {**phase1, "valid_fraction": 0.0}
    assert "epochs" not in refit["settings"] and refit["settings"]["valid_fraction"] == 0.0
    # extra seeds take the first seed's E*, unless their own phase 1 is recorded
    assert [r["of"] for r in runs if r["group"] == "sriem-paper" and r["kind"] == "refit"] == [
        "sriem-paper-seed0"
    ] * 3
    again = plan.plan_runs(["sriem-paper"], [0, 1], 6, {}, recorded={"sriem-paper-seed1"})
    assert [r["name"] for r in again] == [
        "sriem-paper-seed0",
        "sriem-paper-seed0-refit",
        "sriem-paper-seed1",
        "sriem-paper-seed1-refit",
    ]
    assert again[-1]["of"] == "sriem-paper-seed1"
    # a retrained probe changes one thing and keeps the headline's E*: a refit run only
    probes = plan.plan_runs(["probe-whole-sessions", "probe-released-loader"], [0, 1], 6, {})
    assert [(r["name"], r["kind"], r["of"]) for r in probes] == [
        ("probe-whole-sessions-seed0-refit", "refit", "sriem-paper-seed0"),
        ("probe-released-loader-seed0-refit", "refit", "sriem-paper-seed0"),
    ]
    assert probes[0]["settings"]["L"] == 69 and probes[1]["settings"]["shuffle"] is False


def test_baselines_and_page(tmp_path, capsys):
    assert run(tmp_path, "--only", "baselines") == 0
    runs = state(tmp_path)["runs"]
    assert set(runs) == {"spop", "itemknn"}
    assert 0 < runs["itemknn"]["test"]["Recall@20"] <= 1
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    assert "| S-POP | all training sessions | 1 (L = " in text
    assert "| Item-KNN | all training sessions | 1 (last item) |" in text
    assert "## YOOCHOOSE 1/64\n\nNot measured" in text
    assert "## DIGINETICA\n\nNot measured" in text
    assert (tmp_path / "docs" / "figures" / "reproduction" / "synthetic-fig2.png").exists()

    # the hand-written discussion survives a regeneration; finished runs are skipped
    mine = "Our S-POP counts whole sessions.\n\nA second paragraph.\n"
    text = text.replace(page.DEFAULT_DISCUSSION, mine)
    (tmp_path / "docs" / "REPRODUCTION.md").write_text(text)
    capsys.readouterr()
    assert run(tmp_path, "--only", "baselines") == 0
    assert "spop: finished before, skipped" in capsys.readouterr().out
    again = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    assert f"{page.DISCUSSION_START}\n{mine}{page.DISCUSSION_END}" in again
    assert len(state(tmp_path)["invocations"]) == 2

    # a tuned kNN baseline's record beside the state is drawn in Fig. 2 and listed under it
    by_length = runs["spop"]["by_length"]
    halved = {g: {**v, "Recall@20": v["Recall@20"] / 2} for g, v in by_length.items()}
    knn = {"method": "V-SKNN", "test": runs["spop"]["test"], "by_length": halved}
    (tmp_path / "state" / "synthetic" / "vsknn.json").write_text(json.dumps(knn))
    assert run(tmp_path, "--report-only") == 0
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    fig2 = text[text.index("### Fig. 2") : text.index("### Fig. 3")]
    row = next(ln for ln in fig2.splitlines() if ln.startswith("| V-SKNN R@20 |"))
    assert row.split(" | ")[1] == f"{50 * next(iter(by_length.values()))['Recall@20']:.2f}"


def test_model_run_is_resumed_after_an_interruption(tmp_path):
    tiny = ["--runs", "sr-sat", "--epochs", "1", *TINY]
    assert run(tmp_path, *tiny, "--stop-after-steps", "2") == 130
    record = state(tmp_path)["runs"]["sr-sat-seed0"]
    assert record["status"] == "running"
    assert os.path.exists(tmp_path / "runs" / "synthetic" / "sr-sat-seed0" / "checkpoint.npz")

    assert run(tmp_path, *tiny) == 0
    record = state(tmp_path)["runs"]["sr-sat-seed0"]
    assert record["status"] == "finished" and record["epochs_run"] == 1
    assert record["test_pass"]["Recall@20"] == pytest.approx(record["test"]["Recall@20"])
    assert sum(g["count"] for g in record["by_length"].values()) == record["test_examples"]
    assert "--importance sat" in record["command"]
    assert [c["epoch"] for c in record["curve"]] == [1]
    assert record["curve"][0]["test"] == pytest.approx(record["test"])
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    assert "| SR-SAT | refit | 1 (seed 0) |" in text and "| SR-SAT | validation-selected |" in text
    assert "| `sr-sat-seed0` | lr / training loss | 0.001 / " in text
    assert (tmp_path / "docs" / "figures" / "reproduction" / "synthetic-fig3.png").exists()

    # --refresh records a finished run again from its directory, without training
    path = tmp_path / "state" / "synthetic" / "state.json"
    old = json.loads(path.read_text())
    del old["runs"]["sr-sat-seed0"]["curve"]
    path.write_text(json.dumps(old))
    assert run(tmp_path, *tiny, "--refresh") == 0
    again = state(tmp_path)["runs"]["sr-sat-seed0"]
    assert again["curve"] == record["curve"] and again["train_seconds"] == record["train_seconds"]

    # other settings for a finished run: a clear error, nothing overwritten
    assert run(tmp_path, "--runs", "sr-sat", "--epochs", "2", "--d", "8", "--l", "4") == 2
    assert state(tmp_path)["runs"]["sr-sat-seed0"]["status"] == "finished"


def test_bad_options(tmp_path, capsys):
    assert run(tmp_path, "--runs", "sr-gnn") == 2
    assert "unknown run group" in capsys.readouterr().err
    assert run(tmp_path, "--seeds", "a,b") == 2


def test_a_run_trained_by_hand_is_recorded_with_its_own_times(tmp_path):
    """A run made with ``minisriem.train`` and the same settings is picked up, not retrained."""
    from minisriem.workflow import train

    settings = dict(variant="paper", importance="sat", seed=0, epochs=1, d=8, l=4)
    run_dir = tmp_path / "runs" / "synthetic" / "sr-sat-seed0"
    result = train(  # phase 1 of the refit protocol: the reproduction's command says --no-refit
        "synthetic",
        out=str(run_dir),
        refit=False,
        batch_size=2048,
        threads=1,
        progress=False,
        log=lambda _: None,
        **settings,
    )
    assert result.status == "finished"
    assert run(tmp_path, "--runs", "sr-sat", "--epochs", "1", *TINY) == 0
    record = state(tmp_path)["runs"]["sr-sat-seed0"]
    assert record["status"] == "finished" and record["threads"] == 1
    own = sum(result.history[0][k] for k in ("train_seconds", "eval_seconds"))
    assert record["wall_seconds"] == pytest.approx(own + record["test_seconds"])


def test_a_run_another_command_holds_is_skipped(tmp_path, capsys):
    out = tmp_path / "runs" / "synthetic"
    out.mkdir(parents=True)
    with open(out / "sr-sat-seed0.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert run(tmp_path, "--runs", "sr-sat", "--epochs", "1", *TINY) == 0
    assert "sr-sat-seed0: another command is running it, skipped" in capsys.readouterr().out
    assert "sr-sat-seed0" not in state(tmp_path)["runs"]


def test_two_commands_at_once_keep_each_others_records(tmp_path):
    def start(group):
        argv = [
            sys.executable, "-m", "minisriem.experiments.reproduce", "--dataset", "synthetic",
            "--out-dir", str(tmp_path / "runs"), "--state-dir", str(tmp_path / "state"),
            "--report", str(tmp_path / "docs" / "REPRODUCTION.md"), "--no-progress",
            "--threads", "1", "--runs", group, "--epochs", "1", *TINY,
        ]  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    procs = [start("sr-sat"), start("sr-stamp")]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    st = state(tmp_path)
    assert {n for n, r in st["runs"].items() if r["status"] == "finished"} == {
        "sr-sat-seed0",
        "sr-sat-seed0-refit",
        "sr-stamp-seed0",
        "sr-stamp-seed0-refit",
    }
    assert len(st["invocations"]) == 2


def fake_torch_script(tmp_path, body):
    script = tmp_path / "fake_torch.sh"
    script.write_text("#!/usr/bin/env bash\n" + body)
    return str(script)


FAKE_TORCH = (  # as benchmarks/torch_sriem.py ends: a 100 ms step, 50 test examples a second
    'while [ "$1" != "--batch-size" ]; do shift; done; b=$2\n'
    'echo "torch=x threads=2 torch_train_ex_per_s=$((b * 10)).0 '
    'torch_train_ex_per_s_fused=$((b * 20)).0 torch_eval_ex_per_s=50.0"\n'
)


def test_timing_group_times_every_model_side_by_side(tmp_path, monkeypatch):
    python = fake_torch_script(tmp_path, FAKE_TORCH)  # stands for the Python with torch
    os.chmod(python, 0o755)
    timing = ["--timing-steps", "2", "--timing-rounds", "2", "--timing-test", "300"]
    torch = ["--torch-python", python, "--torch-script", ""]
    assert run(tmp_path, "--runs", "timing", *TINY, *timing, *torch) == 0
    record = state(tmp_path)["runs"]["timing"]
    assert record["status"] == "finished"
    assert list(record["models"]) == list(plan.TIMED_GROUPS)
    for t in record["models"].values():
        assert len(t["step_seconds"]) == 2 and min(t["step_seconds"]) > 0
        assert t["train_epoch_seconds"] > 0 and t["test_seconds"] > 0
    assert record["timed_test_examples"] == 300
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    assert "Measured side by side by the `timing` group" in text
    torch_epoch = 0.1 * record["batches_per_epoch"]
    assert f"| PyTorch reference (Adam; torch x, 2 threads) | {torch_epoch:.1f} |" in text
    torch_test = record["test_examples"] / 50.0
    assert f"| {torch_test:.1f} |" in text


def test_timing_without_the_torch_reference_says_so(tmp_path, monkeypatch, capsys):
    python = fake_torch_script(tmp_path, "echo 'no torch here' >&2; exit 3\n")
    os.chmod(python, 0o755)
    timing = ["--timing-steps", "1", "--timing-rounds", "1", "--timing-test", "100"]
    torch = ["--torch-python", python, "--torch-script", ""]
    assert run(tmp_path, "--runs", "timing", *TINY, *timing, *torch) == 0
    assert "PyTorch reference failed (exit 3): no torch here" in capsys.readouterr().out
    assert state(tmp_path)["runs"]["timing"]["torch"] is None
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    assert "The PyTorch reference was not run" in text


def test_the_timing_runs_the_projects_torch_reference_on_the_examples_given(tmp_path):
    from minisriem.experiments import timing
    from minisriem.gradcheck import random_session_batch

    python = timing.default_torch_python()
    if python is None:
        pytest.skip("no Python with torch (the 'bench' extra, or set MINISRIEM_TORCH_PYTHON)")
    rng = np.random.default_rng(0)
    n = 30
    train = random_session_batch(rng, 200, 10, n)
    test = random_session_batch(rng, 3 * 512, 10, n)  # one timed batch after two warm-ups
    data = str(tmp_path / "examples.npz")
    timing.write_reference_data(data, n, train, test)
    logged = []
    ref = timing.run_own_torch_reference(python, data, 8, 2, 1, 1, logged.append)
    assert ref is not None, logged
    assert ref["script"] == timing.TORCH_SCRIPT and ref["torch_threads"] == 1
    assert ref["torch_step_ms"] > 0 and ref["torch_step_ms_fusedadam"] > 0
    assert ref["torch_eval_ex_per_s"] > 0 and isinstance(ref["torch"], str)


def test_the_all_training_data_probe_runs_only_when_named(tmp_path):
    assert run(tmp_path, "--runs", "sriem-all-train", "--epochs", "1", *TINY) == 0
    record = state(tmp_path)["runs"]["sriem-all-train-seed0"]
    assert record["settings"]["valid_fraction"] == 0.0
    assert record["valid"] is None and record["selected_epoch"] == 1
    assert "--valid-fraction 0.0" in record["command"]
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    probe = "| SR-IEM (paper), all training sessions, last epoch | fixed epochs, all training"
    assert probe + " sessions | 1 (seed 0) |" in text


def test_a_retrained_probe_is_a_refit_for_the_headlines_epoch_count(tmp_path):
    runs = "sriem-paper,probe-released-loader"
    assert run(tmp_path, "--runs", runs, "--seeds", "0", "--epochs", "2", *TINY) == 0
    records = state(tmp_path)["runs"]
    probe = records["probe-released-loader-seed0-refit"]
    assert "probe-released-loader-seed0" not in records
    assert probe["selection_from"] == "sriem-paper-seed0"
    assert probe["settings"]["epochs"] == records["sriem-paper-seed0"]["selected_epoch"]
    assert probe["settings"]["batch_size"] == 256 and probe["settings"]["valid_fraction"] == 0
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    epochs = probe["settings"]["epochs"]
    assert f"(refit, seed 0, E* = {epochs} of `sriem-paper-seed0`) |" in text


# ----------------------------------------------------------------------
# Significance and the machine-readable summary


def test_paired_test_on_hand_made_ranks():
    from minisriem.experiments.significance import compare, paired_bootstrap, paired_t

    a = np.array([1, 2, 30, 5])
    b = np.array([1, 40, 30, 50])
    result = compare(a, b, n_boot=500)
    # hits: a = 1,1,0,1 and b = 1,0,0,0, so d = 0,1,0,1: mean 1/2, sample std sqrt(1/3)
    t = 0.5 / (np.sqrt(1 / 3) / 2)
    assert result["recall"]["diff"] == pytest.approx(0.5)
    assert result["recall"]["t"] == pytest.approx(t)
    assert result["recall"]["p"] == pytest.approx(math.erfc(t / math.sqrt(2)))
    # reciprocal ranks at 20: a = 1, 1/2, 0, 1/5 and b = 1, 0, 0, 0
    assert result["mrr"]["diff"] == pytest.approx((0.5 + 0.2) / 4)
    lo, hi = result["recall"]["ci95"]
    assert 0 <= lo <= 0.5 <= hi <= 1
    assert paired_t(a, a) == (0.0, 1.0)
    # a clear, consistent difference on many examples: tiny p, an interval away from 0
    rng = np.random.default_rng(0)
    good = rng.integers(1, 15, size=5000)
    bad = good + rng.integers(0, 30, size=5000)
    strong = compare(good, bad)
    assert strong["recall"]["t"] > 10 and strong["recall"]["p"] < 1e-10
    assert strong["recall"]["ci95"][0] > 0
    lo, hi = paired_bootstrap(np.ones(100), np.ones(100))
    assert lo == hi == 0
    with pytest.raises(ValueError, match="different test sets"):
        compare(a, b[:3])


def test_summary_json_matches_the_page(tmp_path):
    runs = "spop,sriem-paper,probe-ties"
    assert run(tmp_path, "--runs", runs, "--seeds", "0,1", "--epochs", "1", *TINY) == 0
    st = state(tmp_path)
    assert {"sriem-paper-seed0", "sriem-paper-seed0-refit", "sriem-paper-seed1-refit"} <= set(
        st["runs"]
    )
    assert st["runs"]["sriem-paper-seed1-refit"]["selection_from"] == "sriem-paper-seed0"
    assert all(r["commit"] for r in st["runs"].values() if r.get("status") == "finished")
    assert (tmp_path / "state" / "synthetic" / "ranks" / "sriem-paper-seed0-refit.npz").exists()
    summary = json.loads((tmp_path / "state" / "summary.json").read_text())
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    keys = {"dataset", "method", "protocol", "recall@20", "mrr@20", "std", "seeds", "commit"}
    assert summary and all(set(row) == keys for row in summary)
    protocols = {(r["method"], r["protocol"]) for r in summary}
    assert ("SR-IEM (paper)", "refit") in protocols and ("S-POP", "all-train") in protocols
    for row in summary:
        cells = f"| {row['method']} | {page.PROTOCOL_TEXT[row['protocol']]} |"
        line = next(ln for ln in text.splitlines() if ln.startswith(cells))
        assert f"| {row['recall@20']:.2f}" in line and f"| {row['mrr@20']:.2f}" in line
    refit = next(r for r in summary if r["protocol"] == "refit")
    assert refit["seeds"] == [0, 1] and len(refit["std"]) == 2
    assert "SR-IEM (paper, refit) against | ΔR@20" in text
    assert "| S-POP (all training sessions) |" in text
    ties = st["runs"]["probe-ties"]
    assert ties["rules"]["favour"]["Recall@20"] == pytest.approx(
        st["runs"]["sriem-paper-seed0-refit"]["test"]["Recall@20"]
    )
    assert "ties counted against the target" in text


def test_tie_rules_on_hand_made_scores():
    from minisriem.experiments.probes import at20, tie_ranks

    scores = np.array(
        [
            [0.5, 0.9, 0.5, 0.5, 0.1],  # target item 1 (column 0): one above, two tied
            [0.2, 0.3, 0.1, 0.0, 0.4],  # target item 3 (column 2): no tie
        ]
    )
    ranks = tie_ranks(scores, np.array([1, 3]))
    assert ranks["favour"].tolist() == [2, 4]
    assert ranks["against"].tolist() == [4, 4]
    assert ranks["average"].tolist() == [3, 4]
    assert at20([1, 2, 40])["MRR@20"] == pytest.approx((1 + 0.5) / 3)
