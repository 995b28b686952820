"""Model files and checkpoints: round trips, and clear errors for files that are not ours."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minisriem import checkpoint
from minisriem.checkpoint import (
    ModelFileError,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from minisriem.config import Config
from minisriem.model import SRIEM
from minisriem.optim import Adam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_model(variant="paper", n_items=15):
    config = Config(d=8, l=4, variant=variant)
    model = SRIEM(n_items, d=config.d, l=config.l, variant=variant, seed=3)
    item_ids = np.concatenate([[-1], 1000 + 7 * np.arange(n_items)])  # raw ids unlike ours
    return model, config, item_ids


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_model_round_trip(tmp_path, variant):
    model, config, item_ids = small_model(variant)
    path = tmp_path / "model.npz"
    save_model(str(path), model, config, item_ids, meta={"dataset": "toy", "epoch": 2})
    saved = load_model(str(path))
    assert saved.config == config
    assert saved.meta == {"dataset": "toy", "epoch": 2}
    np.testing.assert_array_equal(saved.item_ids, item_ids)
    assert saved.model.params.keys() == model.params.keys()
    for name, value in model.params.items():
        assert saved.model.params[name].dtype == np.float32
        np.testing.assert_array_equal(saved.model.params[name], value)
    seq, seq_len = np.array([[1, 5, 0]]), np.array([2])
    np.testing.assert_array_equal(saved.model.scores(seq, seq_len), model.scores(seq, seq_len))
    assert [f for f in os.listdir(tmp_path) if f != "model.npz"] == []  # no temporary left


def test_a_run_directory_names_its_model(tmp_path):
    model, config, item_ids = small_model()
    save_model(str(tmp_path / "model.npz"), model, config, item_ids)
    assert load_model(str(tmp_path)).path == str(tmp_path / "model.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no model.npz"):
        load_model(str(empty))
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(str(tmp_path / "missing.npz"))


def test_internal_ids_maps_raw_ids_and_lists_unknown():
    model, config, item_ids = small_model()
    saved = checkpoint.SavedModel(model, config, item_ids)
    ids, unknown = saved.internal_ids([1007, 5, 1000, 1098, 1007])
    np.testing.assert_array_equal(ids, [2, 1, 15, 2])
    assert unknown == [5]


def test_checkpoint_round_trip_with_adam_state(tmp_path):
    model, config, item_ids = small_model()
    adam = Adam(model.params, lr=1e-2, l2=1e-5)
    loss, grads = model.loss_and_grads(np.array([[1, 2]]), np.array([2]), np.array([3]))
    adam.step(model.params, grads)
    state = {"epoch": 1, "step": 4, "history": [{"epoch": 1, "loss": float(loss)}]}
    path = str(tmp_path / "checkpoint.npz")
    save_checkpoint(path, model, config, item_ids, adam, state)
    saved, adam_state, got_state = load_checkpoint(path)
    assert got_state == state
    fresh = Adam(saved.model.params, lr=0.0)
    fresh.load_state_dict(adam_state)
    assert fresh.t == 1 and fresh.lr == 1e-2
    for name in model.params:
        np.testing.assert_array_equal(saved.model.params[name], model.params[name])
        np.testing.assert_array_equal(fresh.m[name], adam.m[name])
        np.testing.assert_array_equal(fresh.v[name], adam.v[name])


def test_files_that_are_not_models_are_clear_errors(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match="is not a minisriem model file"):
        load_model(str(text))
    array = tmp_path / "array.npy"
    np.save(array, np.zeros(3))
    with pytest.raises(ModelFileError, match="is not a minisriem model file"):
        load_model(str(array))
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ModelFileError, match="no format marker"):
        load_model(str(other))
    model, config, item_ids = small_model()
    adam = Adam(model.params)
    save_checkpoint(str(tmp_path / "ck.npz"), model, config, item_ids, adam, {})
    with pytest.raises(ModelFileError, match="checkpoint file, not a minisriem-model"):
        load_model(str(tmp_path / "ck.npz"))


def test_a_newer_format_is_refused(tmp_path):
    model, config, item_ids = small_model()
    path = str(tmp_path / "model.npz")
    save_model(path, model, config, item_ids)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["format_version"] = np.array(checkpoint.FORMAT_VERSION + 1)
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="newer than this minisriem reads"):
        load_model(path)


def test_wrong_parameter_shape_is_refused(tmp_path):
    model, config, item_ids = small_model()
    path = str(tmp_path / "model.npz")
    save_model(path, model, config, item_ids)
    with np.load(path) as z:
        arrays = dict(z)
    arrays["config"] = np.array(json.dumps({**config.to_dict(), "d": 9, "n_items": 15}))
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="wrong shape"):
        load_model(path)


def test_cli_reports_a_bad_model_in_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x00garbage")
    for tool in ("recommend", "evaluate"):
        args = ["--model", str(bad)] + (["--session", "1"] if tool == "recommend" else [])
        proc = subprocess.run(
            [sys.executable, "-m", f"minisriem.{tool}", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert proc.returncode == 2
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
        assert "not a minisriem model file" in proc.stderr and "Traceback" not in proc.stderr
