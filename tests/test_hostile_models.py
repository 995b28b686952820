"""Issue 13, models and runs: damaged model and checkpoint files, resume errors, Ctrl-C in
evaluate, a model trained from a prepared folder found again, reproduce's state files.

Each test uses the issue's example and at least one variation of our own.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from data_tools import load_dataset
from minisriem.checkpoint import (
    ModelFileError,
    check_run_state,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from minisriem.config import Config
from minisriem.experiments import reproduce
from minisriem.experiments.state import load_state
from minisriem.model import SRIEM
from minisriem.optim import Adam
from minisriem.workflow import evaluate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model_arrays(tmp_path):
    config = Config(d=4, l=2)
    model = SRIEM(6, d=4, l=2, seed=0)
    path = tmp_path / "model.npz"
    save_model(str(path), model, config, np.arange(-1, 6) * 10 + 10, {"dataset": "toy"})
    with np.load(path) as z:
        return path, {k: z[k] for k in z.files}


def rewrite(path, arrays, **changes):
    arrays = {**arrays, **changes}
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


def config_with(arrays, **changes):
    config = json.loads(str(arrays["config"]))
    config.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del config[key]
    return np.array(json.dumps(config))


@pytest.mark.parametrize(
    "change, field",
    [
        # the examples
        (lambda a: {"meta": None}, "meta is missing"),
        (lambda a: {"item_ids": None}, "item_ids is missing"),
        (lambda a: {"config": None}, "config is missing"),
        (lambda a: {"config": config_with(a, n_items=None)}, "config n_items must be"),
        (lambda a: {"config": np.array("{not json")}, "config is not valid JSON"),
        (lambda a: {"config": config_with(a, L=0)}, "L (--recent-items) must be in [1, 1000]"),
        (lambda a: {"format_version": np.array("abc")}, "format_version must be an integer"),
        (lambda a: {"meta": np.array("[1, 2]")}, "meta must be a JSON object, found list"),
        (lambda a: {"item_ids": np.array([-1, 10, 10, 30, 40, 50, 60])}, "duplicate raw ids"),
        (lambda a: {"param/E": a["param/E"].astype(str)}, "param/E must be floating point"),
        (lambda a: {"param/E": a["param/E"] * np.nan}, "param/E holds NaN"),
        # variations
        (lambda a: {"config": config_with(a, n_items=10**12)}, "n_items must be an integer"),
        (lambda a: {"config": config_with(a, d=8)}, "param/E has the wrong shape (7, 4)"),
        (lambda a: {"format_version": np.array(0)}, "format_version must be at least 1"),
        (lambda a: {"config": np.array(7)}, "config must be a text"),
        (lambda a: {"param/W0": np.full((4, 8), np.inf, np.float32)}, "param/W0 holds NaN"),
        (lambda a: {"item_ids": np.zeros((7, 2), np.int64)}, "item_ids has the wrong shape"),
        (lambda a: {"param/E": np.zeros((7, 4), object)}, "param/E holds Python objects"),
    ],
)
def test_damaged_model_files_name_the_file_and_field(tmp_path, change, field):
    path, arrays = model_arrays(tmp_path)
    rewrite(path, arrays, **change(arrays))
    with pytest.raises(ModelFileError) as e:
        load_model(str(path))
    message = str(e.value)
    assert str(path) in message and field in message and "\n" not in message


def test_only_the_formats_arrays_are_read(tmp_path):
    path, arrays = model_arrays(tmp_path)
    rewrite(path, arrays, extra=np.zeros(10))  # unknown members are never loaded
    assert load_model(str(path)).config.d == 4


def checkpoint_file(tmp_path, state=None):
    config = Config(d=4, l=2)
    model = SRIEM(6, d=4, l=2, seed=0)
    state = state or {"epoch": 0, "step": 3, "global_step": 3, "loss_sum": 1.5,
                      "loss_count": 3, "history": [], "status": "running"}  # fmt: skip
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(str(path), model, config, np.arange(7) - 1, Adam(model.params), state)
    with np.load(path) as z:
        return path, {k: z[k] for k in z.files}


def test_checkpoints_without_state_or_adam_moments_are_clear_errors(tmp_path):
    path, arrays = checkpoint_file(tmp_path)
    for key, words in (("state", "state is missing"), ("adam/m/E", "adam/m/E is missing"),
                       ("adam/t", "adam/t is missing")):  # fmt: skip
        rewrite(path, arrays, **{key: None})
        with pytest.raises(ModelFileError, match=words):
            load_checkpoint(str(path))
    # variation: a state that lacks the run's position
    rewrite(path, arrays, state=np.array(json.dumps({"epoch": 2})))
    _, _, state = load_checkpoint(str(path))
    with pytest.raises(ModelFileError, match=r"state.step must be an int >= 0, found None"):
        check_run_state(state, str(path))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch run, trained from a prepared folder (given as a path)."""
    base = tmp_path_factory.mktemp("runs")
    ds = load_dataset("synthetic", n_sessions=200, n_items=30, n_groups=3, seed=1)
    ds.save(str(base / "prepared"))
    result = train(str(base / "prepared"), out=str(base / "run"), d=4, l=2, epochs=1,
                   progress=False, log=lambda s: None)  # fmt: skip
    return base, result.run_dir


def test_a_model_trained_from_a_prepared_folder_finds_its_data(run_dir, monkeypatch, tmp_path):
    base, run = run_dir
    info = json.loads((base / "run" / "config.json").read_text())
    assert info["dataset"] == str(base / "prepared")  # an absolute path, not the name
    monkeypatch.chdir(tmp_path)  # variation: from another folder, by the run directory
    assert evaluate(run)["examples"] > 0
    assert evaluate(os.path.join(run, "model.npz"))["dataset"] == "synthetic"


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda info: {k: v for k, v in info.items() if k != "options"}, "'options' must be"),
        (lambda info: [info], "does not describe a minisriem run"),
        (
            lambda info: {**info, "options": {**info["options"], "epochs": -1}},
            "epochs (--epochs) must be in [1, 10000], got -1",
        ),  # fmt: skip
        (lambda info: {**info, "config": "d=4"}, "'config' must be a JSON object"),
        (lambda info: {**info, "dataset": 5}, "'dataset' must name the dataset"),
    ],
)
def test_resume_errors_name_the_file(run_dir, tmp_path, change, words):
    import shutil

    base, run = run_dir
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    info = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(change(info)))
    with pytest.raises(ValueError) as e:
        train(resume=str(copy), progress=False, log=lambda s: None)
    assert words in str(e.value) and "config.json" in str(e.value)


def test_ctrl_c_in_evaluate_is_one_line_and_130(tmp_path):
    code = (
        "import sys, time\n"
        "import minisriem.workflow as w\n"
        "def slow(*a, **k):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "w.evaluate = slow\n"
        "from minisriem.evaluate import main\n"
        "sys.exit(main(['--model', 'x', '--threads', '1']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip() == "interrupted"


# --- reproduce's state files ----------------------------------------------------------


@pytest.mark.parametrize(
    "text, words",
    [
        ("[]", "not a minisriem-reproduce state file (found list)"),
        ('{"format": "minisriem-reproduce", "runs": {}, "invocations": []}', "'dataset' is"),
        ('{"format": "minisriem-reproduce", "dataset": "x", "invocations": []}', "'runs' is"),
        (
            '{"format": "minisriem-reproduce", "dataset": "x", "runs": {"a": 1},'
            ' "invocations": []}',
            "run 'a' is not a JSON object",
        ),  # fmt: skip
        ("{bad", "is not valid JSON"),
    ],
)
def test_a_bad_state_json_is_one_line_even_with_report_only(tmp_path, text, words, capsys):
    folder = tmp_path / "state" / "diginetica"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(text)
    with pytest.raises(ValueError, match="state.json"):
        load_state(str(folder))
    status = reproduce.main(["--report-only", "--state-dir", str(tmp_path / "state"),
                             "--report", str(tmp_path / "page.md")])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "page.md").exists()


def test_a_rejected_reproduce_command_does_not_block_the_corrected_one(
    tmp_path, capsys, monkeypatch
):
    common = ["--dataset", "synthetic", "--out-dir", str(tmp_path / "runs"), "--state-dir",
              str(tmp_path / "state"), "--report", str(tmp_path / "page.md"), "--bench-json",
              str(tmp_path / "none.json"), "--no-progress", "--runs", "sriem-paper",
              "--seeds", "0", "--epochs", "1", "--l", "4"]  # fmt: skip
    # the example, refused as it is parsed: no record at all
    with pytest.raises(SystemExit):
        reproduce.main([*common, "--d", "0"])
    assert not (tmp_path / "state").exists()
    # variation: refused by the trainer before any run directory exists
    import minisriem.workflow

    def refuse(*args, **kwargs):
        raise ValueError("refused for the test")

    monkeypatch.setattr(minisriem.workflow, "train", refuse)
    assert reproduce.main([*common, "--d", "6"]) == 2
    assert "refused for the test" in capsys.readouterr().err
    monkeypatch.undo()
    assert reproduce.main([*common, "--d", "8", "--stop-after-steps", "1"]) == 130
    assert "was made with" not in capsys.readouterr().err
