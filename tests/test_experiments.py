"""The reproduction command on the synthetic dataset, with tiny runs.

The full DIGINETICA runs are not tests: these check the plumbing (baselines,
a model run interrupted and resumed, the state file, the page, the kept
discussion) in seconds.
"""

import json
import os

import pytest

from minisriem.experiments import page, reproduce


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
    runs = reproduce.plan_runs(list(reproduce.GROUPS), [0, 1, 2], 10, {"d": 50})
    names = [r["name"] for r in runs]
    assert names == [
        "spop",
        "itemknn",
        "sriem-paper-seed0",
        "sriem-paper-seed1",
        "sriem-paper-seed2",
        "sriem-official-seed0",
        "sr-stamp-seed0",
        "sr-sat-seed0",
    ]
    assert runs[-1]["settings"] == {
        "variant": "paper",
        "importance": "sat",
        "seed": 0,
        "epochs": 10,
        "d": 50,
    }


def test_baselines_and_page(tmp_path, capsys):
    assert run(tmp_path, "--only", "baselines") == 0
    runs = state(tmp_path)["runs"]
    assert set(runs) == {"spop", "itemknn"}
    assert 0 < runs["itemknn"]["test"]["Recall@20"] <= 1
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    assert "| S-POP | 1 (L = " in text and "| Item-KNN | 1 (last item) |" in text
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


def test_model_run_is_resumed_after_an_interruption(tmp_path):
    tiny = ["--runs", "sr-sat", "--epochs", "1", "--d", "8", "--l", "4", "--batch-size", "2048"]
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
    text = (tmp_path / "docs" / "REPRODUCTION.md").read_text()
    assert "| SR-SAT | 1 (seed 0) |" in text
    assert (tmp_path / "docs" / "figures" / "reproduction" / "synthetic-fig3.png").exists()

    # other settings for a finished run: a clear error, nothing overwritten
    assert run(tmp_path, "--runs", "sr-sat", "--epochs", "2", "--d", "8", "--l", "4") == 2
    assert state(tmp_path)["runs"]["sr-sat-seed0"]["status"] == "finished"


def test_bad_options(tmp_path, capsys):
    assert run(tmp_path, "--runs", "sr-gnn") == 2
    assert "unknown run group" in capsys.readouterr().err
    assert run(tmp_path, "--seeds", "a,b") == 2
