"""Saving and loading: the model file and the training checkpoint.

Two kinds of ``.npz`` file, both plain NumPy archives read without pickle:

``model.npz``, a trained model that loads without the training data:
    ``format`` "minisriem-model", ``format_version`` 1,
    ``config`` the :class:`~minisriem.config.Config` as JSON plus ``n_items``,
    ``meta`` JSON (dataset, epoch, metrics: whatever the writer adds),
    ``item_ids`` (n + 1,) int64: raw id of every internal id (entry 0 is
    padding), and ``param/<name>`` for every parameter (``param/E``, ...).

``checkpoint.npz``, everything needed to continue a training run exactly:
    the same ``config``, ``item_ids`` and ``param/*``, with ``format``
    "minisriem-checkpoint", plus ``adam/<key>`` (the optimiser's state) and
    ``state`` JSON (epoch, step, history: see :mod:`minisriem.trainer`).

Every file is written under a temporary name in its folder and renamed, so a
crash never leaves a half-written file. A file that is not one of ours, or
that a newer version wrote, raises :class:`ModelFileError` with a one-line
message.
"""

import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from data_tools.fileio import atomic_outputs
from minisriem.config import Config
from minisriem.model import SRIEM

MODEL_FORMAT = "minisriem-model"
CHECKPOINT_FORMAT = "minisriem-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.npz"
CHECKPOINT_FILE = "checkpoint.npz"


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be used; the message is one line."""


@dataclass
class SavedModel:
    """A model with what it needs to answer in the dataset's own item ids.

    Attributes
    ----------
    model : SRIEM
    config : Config
    item_ids : int64 array of shape (n_items + 1,)
        Raw id of each internal item id; entry 0 is the padding slot.
    meta : dict
        Free-form facts about the model (dataset, epoch, metrics, ...).
    path : str or None
        The file it was loaded from.
    """

    model: SRIEM
    config: Config
    item_ids: np.ndarray
    meta: dict = field(default_factory=dict)
    path: str = None

    def _id_index(self):
        """The raw ids sorted, and where each sits in ``item_ids`` (made once, then kept)."""
        if getattr(self, "_index", None) is None or self._index[0] is not self.item_ids:
            order = np.argsort(self.item_ids[1:], kind="stable")
            self._index = (self.item_ids, order, self.item_ids[1:][order])
        return self._index[1:]

    def internal_ids(self, raw_ids):
        """Map raw item ids to the model's ids 1..n.

        Parameters
        ----------
        raw_ids : sequence of int

        Returns
        -------
        ids : int64 array of shape (m,), the known items in the order given
        unknown : list of int, the raw ids the model has never seen
        """
        raw = np.asarray(list(raw_ids), dtype=np.int64)
        order, sorted_raw = self._id_index()
        pos = np.clip(np.searchsorted(sorted_raw, raw), 0, max(len(sorted_raw) - 1, 0))
        known = sorted_raw[pos] == raw if len(sorted_raw) else np.zeros(len(raw), bool)
        ids = order[pos[known]] + 1
        unknown = [int(r) for r in raw[~known]]
        return ids.astype(np.int64), unknown


# ----------------------------------------------------------------------
# Paths


def model_path(path):
    """The model file named by ``path``: a ``model.npz`` or a run directory.

    Parameters
    ----------
    path : str

    Returns
    -------
    str
        ``path`` itself for a file, ``path/model.npz`` for a directory.

    Raises
    ------
    FileNotFoundError
        With a one-line message when there is no such file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, MODEL_FILE)
        if not os.path.exists(candidate):
            raise FileNotFoundError(
                f"{path} holds no {MODEL_FILE}: the run has not finished an epoch yet "
                "(continue it with --resume) or it is not a run directory"
            )
        return candidate
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such model file or run directory")
    return path


# ----------------------------------------------------------------------
# Writing


def write_npz(path, arrays):
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically.

    Parameters
    ----------
    path : str
    arrays : dict of str -> array
    """
    with atomic_outputs([path]) as (tmp,):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def write_text(path, text):
    """Write ``text`` to ``path`` atomically (temporary name, then rename)."""
    with atomic_outputs([path]) as (tmp,):
        with open(tmp, "w") as f:
            f.write(text)


def _json_array(obj):
    return np.array(json.dumps(obj))


def _model_arrays(fmt, model, config, item_ids):
    config_dict = {**config.to_dict(), "n_items": model.n_items}
    arrays = {
        "format": np.array(fmt),
        "format_version": np.array(FORMAT_VERSION),
        "config": _json_array(config_dict),
        "item_ids": np.asarray(item_ids, dtype=np.int64),
    }
    for name, value in model.params.items():
        arrays[f"param/{name}"] = value
    return arrays


def save_model(path, model, config, item_ids, meta=None):
    """Save a trained model as one ``.npz`` that loads without the training data.

    Parameters
    ----------
    path : str
    model : SRIEM
    config : Config
    item_ids : int array of shape (n_items + 1,), raw id of each internal id
    meta : dict, optional, JSON-serialisable facts to keep with the model
    """
    item_ids = np.asarray(item_ids)
    if item_ids.shape != (model.n_items + 1,):
        raise ValueError(
            f"item_ids must have n_items + 1 = {model.n_items + 1} entries, got {item_ids.shape}"
        )
    arrays = _model_arrays(MODEL_FORMAT, model, config, item_ids)
    arrays["meta"] = _json_array(meta or {})
    write_npz(path, arrays)


def save_checkpoint(path, model, config, item_ids, optimizer, state):
    """Save everything a training run needs to continue exactly.

    Parameters
    ----------
    path : str
    model : SRIEM
    config : Config
    item_ids : int array of shape (n_items + 1,)
    optimizer : Adam, whose ``state_dict()`` is stored
    state : dict, JSON-serialisable position and history of the run
    """
    arrays = _model_arrays(CHECKPOINT_FORMAT, model, config, item_ids)
    for key, value in optimizer.state_dict().items():
        arrays[f"adam/{key}"] = value
    arrays["state"] = _json_array(state)
    write_npz(path, arrays)


# ----------------------------------------------------------------------
# Reading


def _read_archive(path, expected_format):
    """All arrays of one of our files, after checking its format and version."""
    what = "model" if expected_format == MODEL_FORMAT else "checkpoint"
    try:
        loaded = np.load(path, allow_pickle=False)
    except OSError:
        raise
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path} is not a minisriem {what} file (not a NumPy .npz)") from e
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{path} is not a minisriem {what} file (a single array, not .npz)")
    try:
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path} is not a minisriem {what} file (unreadable: {e})") from e
    if "format" not in arrays or "format_version" not in arrays:
        raise ModelFileError(f"{path} is not a minisriem {what} file (no format marker)")
    found = str(arrays["format"])
    if found != expected_format:
        hint = " (pass the run directory or its model.npz)" if found == CHECKPOINT_FORMAT else ""
        raise ModelFileError(f"{path} is a {found} file, not a {expected_format} file{hint}")
    version = int(arrays["format_version"])
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has {what} format version {version}, newer than this minisriem reads "
            f"({FORMAT_VERSION}): upgrade minisriem"
        )
    return arrays


def _build_model(path, arrays):
    """The SRIEM and Config stored in ``arrays``, parameters checked and copied in."""
    config_dict = json.loads(str(arrays["config"]))
    config = Config.from_dict(config_dict)
    model = SRIEM(
        config_dict["n_items"],
        d=config.d,
        l=config.l,
        variant=config.variant,
        importance=config.importance,
        dtype=np.float32,
    )
    for name, value in model.params.items():
        key = f"param/{name}"
        if key not in arrays or arrays[key].shape != value.shape:
            raise ModelFileError(f"{path}: parameter {name} is missing or has the wrong shape")
        value[...] = arrays[key]
    return model, config


def load_model(path):
    """Load a model saved by :func:`save_model` (a file or its run directory).

    Parameters
    ----------
    path : str
        A ``model.npz`` or a run directory holding one.

    Returns
    -------
    SavedModel

    Raises
    ------
    ModelFileError
        When the file is not a minisriem model or was written by a newer version.
    FileNotFoundError
        When there is no such file.
    """
    path = model_path(path)
    arrays = _read_archive(path, MODEL_FORMAT)
    model, config = _build_model(path, arrays)
    meta = json.loads(str(arrays["meta"]))
    return SavedModel(model, config, arrays["item_ids"], meta, path)


def load_checkpoint(path):
    """Load a checkpoint saved by :func:`save_checkpoint`.

    Returns
    -------
    saved : SavedModel
        The model at the checkpoint (``meta`` is empty).
    adam_state : dict of arrays, for ``Adam.load_state_dict``
    state : dict, the run's position and history
    """
    arrays = _read_archive(path, CHECKPOINT_FORMAT)
    model, config = _build_model(path, arrays)
    adam_state = {k[len("adam/") :]: v for k, v in arrays.items() if k.startswith("adam/")}
    state = json.loads(str(arrays["state"]))
    return SavedModel(model, config, arrays["item_ids"], {}, path), adam_state, state
