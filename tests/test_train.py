"""Training: determinism, exact resume after an interruption, NaN stop, clear data errors.

Small settings throughout (d = 8, a few hundred sessions) so the file runs in
well under a minute on 2 cores.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from data_tools import load_dataset
from minisriem import checkpoint
from minisriem.model import SRIEM
from minisriem.trainer import (
    TrainingDiverged,
    best_test_over_epochs,
    epoch_batches,
    select_epoch,
)
from minisriem.workflow import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(d=8, l=4, batch_size=64, epochs=2, progress=False, log=lambda line: None)


@pytest.fixture(scope="module")
def tiny_data():
    return load_dataset("synthetic", n_sessions=400, n_items=60, n_groups=6, seed=1)


def params_of(run_dir, name=checkpoint.CHECKPOINT_FILE):
    with np.load(os.path.join(run_dir, name)) as z:
        return {k: z[k] for k in z.files if k.startswith(("param/", "adam/"))}


def without_times(history):
    # times and peak memory are measurements of the machine, not of the run
    return [{k: v for k, v in r.items() if not k.endswith(("_seconds", "_mb"))} for r in history]


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "minisriem.train", "--no-progress", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


# ----------------------------------------------------------------------
# Pieces


def test_epoch_batches_cover_every_example_once_and_depend_on_seed_and_epoch():
    batches = epoch_batches(10, 4, seed=0, epoch=1)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches)) == list(range(10))
    again = epoch_batches(10, 4, seed=0, epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = np.concatenate(epoch_batches(10, 4, seed=0, epoch=2))
    assert not np.array_equal(np.concatenate(batches), other)
    np.testing.assert_array_equal(
        np.concatenate(epoch_batches(10, 4, 0, 1, shuffle=False)), np.arange(10)
    )


def test_selection_on_validation_and_the_authors_best_over_epochs():
    def rec(epoch, valid, test):
        return {
            "epoch": epoch,
            "valid": {"Recall@20": valid[0], "MRR@20": valid[1]},
            "test": {"Recall@20": test[0], "MRR@20": test[1]},
        }

    history = [
        rec(1, (0.5, 0.1), (0.40, 0.30)),
        rec(2, (0.6, 0.1), (0.45, 0.10)),
        rec(3, (0.6, 0.2), (0.50, 0.12)),  # tie on Recall@20, better MRR@20: selected
        rec(4, (0.6, 0.2), (0.55, 0.11)),  # exact tie: the earlier epoch stays
    ]
    assert select_epoch(history) == 2
    assert best_test_over_epochs(history) == {"Recall@20": (0.55, 4), "MRR@20": (0.30, 1)}
    no_valid = [dict(r, valid=None) for r in history]
    assert select_epoch(no_valid) == 3


# ----------------------------------------------------------------------
# Runs


def test_a_run_writes_its_directory(tiny_data, tmp_path):
    lines = []
    result = train(tiny_data, out=str(tmp_path / "run"), **{**TINY, "log": lines.append})
    run = tmp_path / "run"
    assert (
        result.status == "finished" and len(result.history) == 2 + result.summary["refit"]["epoch"]
    )
    files = sorted(os.listdir(run))
    assert files == [
        "checkpoint.npz",
        "config.json",
        "curve.png",
        "metrics.jsonl",
        "model.npz",
        "selected-model.npz",
    ]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    chosen = result.summary["selected"]["epoch"]
    assert [r["epoch"] for r in records] == [1, 2, *range(1, chosen + 1)]
    assert [r["phase"] for r in records] == ["select"] * 2 + ["refit"] * chosen
    assert {"loss", "lr", "valid", "test", "train_seconds"} <= records[0].keys()
    assert all(r["valid"] is None for r in records[2:])
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["d"] == 8 and config["options"]["epochs"] == 2
    assert config["options"]["refit"] is True
    saved = result.load_model()
    assert saved.meta["epoch"] == chosen and saved.meta["selected_by"].startswith("refit")
    assert result.summary["refit"]["test"] == records[-1]["test"]
    selected = checkpoint.load_model(str(run / "selected-model.npz"))
    assert selected.meta["epoch"] == chosen and selected.meta["valid"] is not None
    assert any(line.startswith("epoch  2/2") for line in lines)
    assert any(line.startswith(f"refit epoch  {chosen}/{chosen}") for line in lines)
    table = lines[-1].splitlines()
    assert "refit on every training session" in table[1]
    assert "popularity baseline" in lines[-1] and "best test over refit epochs" in lines[-1]
    assert (run / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_training_is_deterministic(tiny_data, tmp_path):
    a = train(tiny_data, out=str(tmp_path / "a"), seed=5, **TINY)
    b = train(tiny_data, out=str(tmp_path / "b"), seed=5, **TINY)
    assert without_times(a.history) == without_times(b.history)
    assert_same_arrays(params_of(a.run_dir), params_of(b.run_dir))
    c = train(tiny_data, out=str(tmp_path / "c"), seed=6, **TINY)
    assert without_times(c.history) != without_times(a.history)


def test_sigint_mid_epoch_then_resume_equals_an_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    whole = train(tiny_data, out=str(tmp_path / "whole"), **TINY)

    # Deliver a real SIGINT from inside step 30 (of 2 x 24): the handler asks to
    # stop, the step finishes, a checkpoint is written and train() returns.
    original, calls = SRIEM.loss_and_grads, []

    def interrupted_at_step_30(self, *args):
        calls.append(1)
        if len(calls) == 30:
            signal.raise_signal(signal.SIGINT)
        return original(self, *args)

    monkeypatch.setattr(SRIEM, "loss_and_grads", interrupted_at_step_30)
    part = train(tiny_data, out=str(tmp_path / "part"), **TINY)
    monkeypatch.setattr(SRIEM, "loss_and_grads", original)
    assert part.status == "interrupted" and part.signal == signal.SIGINT
    _, _, state = checkpoint.load_checkpoint(str(tmp_path / "part" / "checkpoint.npz"))
    assert state["global_step"] == 30 and state["epoch"] == 1 and len(state["history"]) == 1

    resumed = train(tiny_data, resume=str(tmp_path / "part"), progress=False, log=lambda s: None)
    assert resumed.status == "finished"
    assert without_times(resumed.history) == without_times(whole.history)
    assert_same_arrays(params_of(resumed.run_dir), params_of(whole.run_dir))
    assert_same_arrays(
        params_of(resumed.run_dir, "model.npz"), params_of(whole.run_dir, "model.npz")
    )


def test_cli_stop_after_steps_then_resume_is_bitwise_equal_with_one_thread(tmp_path):
    common = ["--d", "8", "--l", "4", "--batch-size", "1024", "--epochs", "2", "--threads", "1"]
    whole = cli(*common, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    part = cli(*common, "--out", str(tmp_path / "part"), "--stop-after-steps", "40")
    assert part.returncode == 128 + signal.SIGINT, part.stderr
    assert "--resume" in part.stderr and "Traceback" not in part.stderr
    resumed = cli("--resume", str(tmp_path / "part"), "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert_same_arrays(params_of(tmp_path / "whole"), params_of(tmp_path / "part"))


def test_nan_loss_stops_with_the_step_named_and_keeps_the_last_good_checkpoint(
    tiny_data, tmp_path, monkeypatch
):
    original = SRIEM.loss_and_grads
    calls = []

    def nan_at_step_30(self, *args):
        calls.append(1)
        loss, grads = original(self, *args)
        return (float("nan") if len(calls) == 30 else loss), grads

    monkeypatch.setattr(SRIEM, "loss_and_grads", nan_at_step_30)
    run = str(tmp_path / "run")
    named = r"became nan at epoch 2, step \d+ \(step 30 of the run\)"
    with pytest.raises(TrainingDiverged, match=named):
        train(tiny_data, out=run, **TINY)
    _, _, state = checkpoint.load_checkpoint(os.path.join(run, "checkpoint.npz"))
    assert state["epoch"] == 1 and state["step"] == 0  # the end of epoch 1, the last good one


def test_cli_out_of_range_learning_rate_is_a_one_line_error(tmp_path):
    """A learning rate that could only diverge is refused when the options are read."""
    proc = cli("--lr", "1e30", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith("argument --lr: must be in (0, 10], got 1e+30")
    )
    assert not (tmp_path / "run").exists()


def test_cli_diverged_loss_is_a_one_line_error(tmp_path):
    """A NaN loss ends the command with one line naming the step (no traceback)."""
    code = (
        "import sys\n"
        "from minisriem.model import SRIEM\n"
        "original = SRIEM.loss_and_grads\n"
        "def nan_loss(self, *args):\n"
        "    loss, grads = original(self, *args)\n"
        "    return float('nan'), grads\n"
        "SRIEM.loss_and_grads = nan_loss\n"
        "from minisriem.train import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    tiny = ["--d", "8", "--l", "4", "--batch-size", "512", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *tiny, "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: the training loss became nan")
    assert "smaller --lr" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_names_the_file_and_folder(tmp_path):
    proc = cli("--dataset", "diginetica", "--data-dir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "train-item-views.csv" in proc.stderr and str(tmp_path / "diginetica") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(ROOT, "runs", "diginetica"))


def test_valid_fraction_zero_says_the_last_epoch_is_selected(tiny_data, tmp_path):
    lines = []
    result = train(
        tiny_data, out=str(tmp_path / "r"), valid_fraction=0, **{**TINY, "log": lines.append}
    )
    assert any("no validation split" in line for line in lines)
    assert result.summary["selected"]["epoch"] == 2 and result.history[0]["valid"] is None
    assert "last epoch" in result.summary["selected_by"]


def test_bad_settings_are_clear_errors(tiny_data, tmp_path):
    with pytest.raises(ValueError, match=r"batch_size \(--batch-size\) must be in \[1, "):
        train(tiny_data, out=str(tmp_path / "r"), batch_size=0)
    with pytest.raises(TypeError, match="unknown setting"):
        train(tiny_data, out=str(tmp_path / "r"), dd=3)


def test_default_synthetic_cli_smoke(tmp_path):
    """The default command on tiny settings prints R@20 / MRR@20 beside popularity."""
    tiny = ["--d", "16", "--l", "8", "--epochs", "1", "--batch-size", "512", "--lr", "1e-2"]
    proc = cli(*tiny, "--threads", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "epoch  1/1" in out and "Recall@20" in out and "MRR@20" in out
    model_row = next(line for line in out.splitlines() if line.startswith("SR-IEM, refit"))
    pop_row = next(line for line in out.splitlines() if line.startswith("popularity baseline"))
    assert float(model_row.split()[-2]) > float(pop_row.split()[-2])  # Recall@20


def test_the_commands_load_numpy_only_after_reading_threads():
    code = (
        "import sys, minisriem.train, minisriem.evaluate, minisriem.recommend; "
        "print('numpy' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.strip() == "False", proc.stderr


def test_resume_warns_about_the_options_it_ignores(tmp_path, capsys):
    from minisriem.train import main

    assert main(["--resume", str(tmp_path / "nothing"), "--lr", "0.5", "--seed", "3"]) == 2
    err = capsys.readouterr().err
    assert "ignored: --lr, --seed" in err
    assert "not a run directory" in err


# ----------------------------------------------------------------------
# Refit (phase 2: every training session, the selected number of epochs)


def test_refit_trains_every_session_for_exactly_the_selected_epochs(tiny_data, tmp_path):
    result = train(tiny_data, out=str(tmp_path / "r"), **{**TINY, "epochs": 3})
    chosen = result.summary["selected"]["epoch"]
    refit = [r for r in result.history if r["phase"] == "refit"]
    assert len(refit) == chosen == result.summary["refit"]["epoch"]
    assert all(r["examples"] == len(tiny_data.train) for r in refit)
    phase1 = result.summary["selected"]
    assert phase1["examples"] < len(tiny_data.train)  # phase 1 held the validation split out
    # The same as training on everything for E* epochs with the same seed (how the
    # reproduction runs phase 2 on its own), bitwise with the same thread count.
    direct = train(
        tiny_data, out=str(tmp_path / "d"), valid_fraction=0, **{**TINY, "epochs": chosen}
    )
    assert_same_arrays(
        params_of(result.run_dir, "model.npz"), params_of(direct.run_dir, "model.npz")
    )
    assert [r["test"] for r in refit] == [r["test"] for r in direct.history]


def test_no_refit_keeps_the_selected_epoch_as_the_model(tiny_data, tmp_path):
    result = train(tiny_data, out=str(tmp_path / "r"), refit=False, **TINY)
    assert "refit" not in result.summary and len(result.history) == 2
    assert not os.path.exists(tmp_path / "r" / "selected-model.npz")
    assert result.load_model().meta["epoch"] == result.summary["selected"]["epoch"]


def test_an_interrupted_refit_resumes_to_the_same_parameters(tiny_data, tmp_path):
    whole = train(tiny_data, out=str(tmp_path / "whole"), **TINY)
    phase1_steps = [r for r in whole.history if r["phase"] == "select"][-1]["steps"]
    part = train(tiny_data, out=str(tmp_path / "part"), stop_after_steps=phase1_steps + 5, **TINY)
    assert part.status == "interrupted"
    _, _, state = checkpoint.load_checkpoint(str(tmp_path / "part" / "checkpoint.npz"))
    assert state["phase"] == "refit" and state["step"] == 5
    assert not os.path.exists(tmp_path / "part" / "model.npz")  # written when the refit ends
    resumed = train(tiny_data, resume=str(tmp_path / "part"), progress=False, log=lambda s: None)
    assert resumed.status == "finished"
    assert without_times(resumed.history) == without_times(whole.history)
    assert_same_arrays(params_of(tmp_path / "part"), params_of(tmp_path / "whole"))
    assert_same_arrays(
        params_of(tmp_path / "part", "model.npz"), params_of(tmp_path / "whole", "model.npz")
    )
