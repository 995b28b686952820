"""Evaluation: the Python call, the command, and its JSON."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_tools import load_dataset
from minisriem.checkpoint import load_model
from minisriem.evaluate import read_evaluation
from minisriem.kernels import rank_topk_numpy
from minisriem.metrics import EVALUATION_METRICS, ranking_metrics, target_ranks
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
    scores = saved.model.scores(item_seq, item_seq_len)
    ranks = target_ranks(scores, targets)
    for key, value in ranking_metrics(ranks).items():
        assert report["metrics"][key] == pytest.approx(value), key
    top = rank_topk_numpy(scores, targets - 1, 20)[1] + 1  # item ids, best first
    assert report["metrics"]["coverage@20"] == pytest.approx(
        len(np.unique(top)) / len(np.unique(np.concatenate([ds.train.items, ds.train.targets])))
    )
    counts = np.bincount(ds.train.targets, minlength=ds.n_items + 1)
    assert report["metrics"]["avg_popularity@5"] == pytest.approx(counts[top[:, :5]].mean())
    assert report["examples"] == len(ds.test)
    assert sum(g["count"] for g in report["by_length"].values()) == len(ds.test)
    assert list(report["by_length"]) == [str(t) for t in range(1, 10)] + ["10+"]
    history = result.history[-1]["test"]  # the saved epoch: the refit's last
    assert report["metrics"]["recall@20"] == pytest.approx(history["Recall@20"])
    assert report["metrics"]["mrr@10"] == pytest.approx(history["MRR@10"])
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
    for word in (
        "hit rate (= recall)",
        "tail share",
        "hit@5",
        "ndcg@20",
        "popularity baseline",
        "length 10+",
    ):
        assert word in proc.stdout
    data = json.loads(out.read_text())  # strict JSON: no NaN
    assert {"metrics", "by_length", "popularity", "examples", "tie_rule", "length_rule"} <= set(
        data
    )
    keys = {f"{m}@{k}" for m in EVALUATION_METRICS for k in (5, 10, 20)}
    assert set(data["metrics"]) == keys == set(data["popularity"])
    fractions = {k: v for k, v in data["metrics"].items() if not k.startswith("avg_popularity")}
    assert all(0 <= v <= 1 for v in fractions.values())
    assert data["metrics"]["hit@20"] == data["metrics"]["recall@20"]
    for group in data["by_length"].values():
        assert group["count"] > 0 or group["hit@20"] is None
    assert data["metrics"]["recall@20"] == pytest.approx(
        evaluate(result.run_dir, ds)["metrics"]["recall@20"]
    )
    assert read_evaluation(str(out)) == data
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


def test_an_evaluation_file_of_the_old_keys_still_loads(tmp_path):
    old = {
        "dataset": "synthetic",
        "examples": 2,
        "model": "m",
        "model_name": "SR-IEM",
        "tie_rule": "t",
        "metrics": {"Recall@20": 0.5, "MRR@20": 0.25, "NDCG@20": 0.3},
        "popularity": {"Recall@20": 0.1, "MRR@20": 0.05, "NDCG@20": 0.07},
        "by_length": {"1": {"count": 2, "Recall@20": 0.5, "MRR@20": 0.25, "NDCG@20": 0.3}},
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    report = read_evaluation(str(path))
    assert report["metrics"] == {"hit@20": 0.5, "recall@20": 0.5, "mrr@20": 0.25, "ndcg@20": 0.3}
    assert report["popularity"]["hit@20"] == 0.1
    assert report["by_length"]["1"] == {
        "count": 2,
        "hit@20": 0.5,
        "recall@20": 0.5,
        "mrr@20": 0.25,
        "ndcg@20": 0.3,
    }
    from minisriem.evaluate import format_report

    text = format_report(report)  # a table of what the file holds, dashes for the rest
    assert "50.00" in text and "tail share" in text
