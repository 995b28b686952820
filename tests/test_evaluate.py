"""Evaluation: the Python call, the command, and its JSON."""

import json
import os
import subprocess
import sys

import pytest

from data_tools import load_dataset
from minisriem.checkpoint import load_model
from minisriem.metrics import rank_metrics, target_ranks
from minisriem.workflow import evaluate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset saved as a prepared folder, and a model trained on it."""
    folder = tmp_path_factory.mktemp("evaluate")
    ds = load_dataset("synthetic", n_sessions=300, n_items=40, n_groups=4, seed=2)
    ds.save(str(folder / "data"))
    result = train(
        ds, out=str(folder / "run"), d=8, l=4, epochs=1, progress=False, log=lambda s: None
    )
    return ds, folder, result


def test_evaluate_matches_ranking_by_hand(trained):
    ds, folder, result = trained
    report = evaluate(result.run_dir, ds)
    saved = load_model(result.run_dir)
    item_seq, item_seq_len, targets = ds.test.padded(10)
    ranks = target_ranks(saved.model.scores(item_seq, item_seq_len), targets)
    assert report["metrics"] == pytest.approx(rank_metrics(ranks))
    assert report["examples"] == len(ds.test)
    assert sum(g["count"] for g in report["by_length"].values()) == len(ds.test)
    assert list(report["by_length"]) == [str(t) for t in range(1, 10)] + ["10+"]
    assert report["metrics"] == pytest.approx(result.history[-1]["test"])  # the saved epoch
    assert set(report["popularity"]) == set(report["metrics"])
    assert "strictly higher" in report["tie_rule"] and "10+" in report["length_rule"]


def test_evaluate_refuses_another_item_set(trained):
    _, _, result = trained
    other = load_dataset("synthetic", n_sessions=300, n_items=60, n_groups=6, seed=2)
    with pytest.raises(ValueError, match="dataset it was trained on"):
        evaluate(result.run_dir, other)


def test_cli_prints_the_tables_and_writes_json(trained):
    ds, folder, result = trained
    out = folder / "eval.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "minisriem.evaluate",
            "--model",
            result.run_dir,
            "--dataset",
            str(folder / "data"),
            "--out",
            str(out),
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    for word in ("Recall@5", "MRR@10", "NDCG@20", "popularity baseline", "length 10+"):
        assert word in proc.stdout
    data = json.loads(out.read_text())  # strict JSON: no NaN
    assert {"metrics", "by_length", "popularity", "examples", "tie_rule", "length_rule"} <= set(
        data
    )
    keys = {f"{m}@{k}" for m in ("Recall", "MRR", "NDCG") for k in (5, 10, 20)}
    assert set(data["metrics"]) == keys
    assert all(0 <= v <= 1 for v in data["metrics"].values())
    for group in data["by_length"].values():
        assert group["count"] > 0 or group["Recall@20"] is None
    assert data["metrics"]["Recall@20"] == pytest.approx(
        evaluate(result.run_dir, ds)["metrics"]["Recall@20"]
    )
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]


def test_cli_missing_dataset_is_one_line(trained, tmp_path):
    _, _, result = trained
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "minisriem.evaluate",
            "--model",
            result.run_dir,
            "--dataset",
            "yoochoose1_64",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "yoochoose-clicks.dat" in proc.stderr
    assert "Traceback" not in proc.stderr
