"""A run directory: what ``train`` writes, and how it is read back.

A run directory holds ``config.json`` (the settings, the dataset and the
software, written once when the run starts), ``metrics.jsonl`` (one record
per epoch), ``checkpoint.npz`` (to resume) and ``model.npz`` (the selected
model). This module names the format, reads ``config.json`` back with
one-line errors, picks a fresh directory, and holds :class:`TrainResult`,
what :func:`minisriem.workflow.train` returns.
"""

import json
import os
import time
from dataclasses import dataclass

from minisriem import checkpoint
from minisriem.checkpoint import load_model
from minisriem.report import final_table

RUN_FORMAT = "minisriem-run"
CONFIG_FILE = "config.json"


@dataclass
class TrainResult:
    """What :func:`minisriem.workflow.train` returns.

    Attributes
    ----------
    run_dir : str
    status : str, "finished", "early-stopped" or "interrupted"
    history : list of dict, one record per epoch (as in ``metrics.jsonl``)
    summary : dict or None
        ``selected`` (the record of the selected epoch), ``selected_by``,
        ``best_test`` (the authors' best-over-epochs figures) and
        ``popularity`` (the baseline's test metrics); None before any epoch ended.
    signal : int or None, the signal that interrupted the run
    """

    run_dir: str
    status: str
    history: list
    summary: dict = None
    signal: int = None

    @property
    def model_path(self):
        return os.path.join(self.run_dir, checkpoint.MODEL_FILE)

    def load_model(self):
        """The selected model, as a :class:`~minisriem.checkpoint.SavedModel`."""
        return load_model(self.model_path)

    def table(self):
        """The final table as text (empty before any epoch ended)."""
        return final_table(self.summary) if self.summary else ""

    def model_note(self):
        """What ``model.npz`` holds, in a few words, for the command's last line.

        Read from the summary the run already has (loading the model would read
        every parameter for one line).
        """
        if not self.summary or not os.path.exists(self.model_path):
            return "no model.npz yet: the run has not finished"
        if "refit" in self.summary:
            epochs = self.summary["refit"]["epoch"]
            return f"model.npz is the refit model, {epochs} epochs on every training session"
        return (
            f"model.npz is epoch {self.summary['selected']['epoch']}, {self.summary['selected_by']}"
        )


def choose_run_dir(out, dataset_name):
    """The new run's directory: ``out``, or a fresh ``runs/<dataset>-<time>/``."""
    if out is None:
        base = os.path.join("runs", f"{dataset_name}-{time.strftime('%Y%m%d-%H%M%S')}")
        out, n = base, 1
        while os.path.exists(out):
            n += 1
            out = f"{base}-{n}"
    if os.path.exists(os.path.join(out, CONFIG_FILE)):
        raise ValueError(
            f"{out} already holds a run: continue it with --resume {out}, or pick another --out"
        )
    return out


def read_run_config(run_dir):
    """The run directory's ``config.json`` as a dict; one-line errors when it is not a run.

    ``config`` and ``options`` are checked to be JSON objects (their values
    are checked by :class:`Config` and :class:`TrainOptions`).
    """
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir} is not a run directory (no such folder)")
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG_FILE})") from None
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        raise ValueError(f"{path} does not describe a minisriem run (not a run's config.json)")
    for key in ("config", "options"):
        if not isinstance(info.get(key), dict):
            raise ValueError(
                f"{path}: {key!r} must be a JSON object of settings, found "
                f"{type(info.get(key)).__name__}; the run directory is damaged: start a new run"
            )
    if not isinstance(info.get("dataset"), str) or not info["dataset"]:
        raise ValueError(f"{path}: 'dataset' must name the dataset the run trains on")
    if info.get("data_dir") is not None and not isinstance(info["data_dir"], str):
        raise ValueError(f"{path}: 'data_dir' must be a folder name or null")
    return info


def settings_from(path, cls, values):
    try:
        return cls.from_dict(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def dataset_record(dataset):
    """What ``config.json`` records for a dataset argument: a name, or a prepared path made
    absolute (so ``evaluate --model RUN`` finds it from any folder)."""
    from data_tools.dataset import ARRAYS
    from data_tools.load import NAMES

    if dataset not in NAMES and (
        os.path.isfile(dataset) or os.path.isfile(os.path.join(dataset, ARRAYS))
    ):
        return os.path.abspath(dataset)
    return dataset
