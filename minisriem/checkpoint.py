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

import contextlib
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from data_tools.dataset import MAX_N_ITEMS, ZIP_ERRORS, npy_header
from data_tools.errors import DataError
from data_tools.fileio import atomic_outputs, check_regular
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
    item_tokens : list of str, or None
        The text name of each internal id (entry 0 is padding) when the
        training data named items by text tokens (RecBole, session-rec): then
        sessions are written, and recommendations answered, in these tokens.
    """

    model: SRIEM
    config: Config
    item_ids: np.ndarray
    meta: dict = field(default_factory=dict)
    path: str = None
    item_tokens: list = None

    def labels(self, ids):
        """How the user writes internal ids ``ids``: their tokens, else their raw ids (ints)."""
        if self.item_tokens is not None:
            return [self.item_tokens[int(i)] for i in ids]
        return [int(x) for x in self.item_ids[np.asarray(ids, dtype=np.int64)]]

    def _id_index(self):
        """The raw ids sorted, and where each sits in ``item_ids`` (made once, then kept)."""
        if getattr(self, "_index", None) is None or self._index[0] is not self.item_ids:
            order = np.argsort(self.item_ids[1:], kind="stable")
            self._index = (self.item_ids, order, self.item_ids[1:][order])
        return self._index[1:]

    def internal_ids(self, raw_ids):
        """Map raw item ids (or, for a model with ``item_tokens``, tokens) to the ids 1..n.

        Parameters
        ----------
        raw_ids : sequence of int, or of str when the model has ``item_tokens``

        Returns
        -------
        ids : int64 array of shape (m,), the known items in the order given
        unknown : list of int (or str), the raw ids the model has never seen
        """
        if self.item_tokens is not None:
            if getattr(self, "_token_index", None) is None:
                self._token_index = {t: i for i, t in enumerate(self.item_tokens) if i > 0}
            raw = [str(r) for r in raw_ids]
            ids = [self._token_index[r] for r in raw if r in self._token_index]
            return np.asarray(ids, dtype=np.int64), [r for r in raw if r not in self._token_index]
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


def save_model(path, model, config, item_ids, meta=None, item_tokens=None):
    """Save a trained model as one ``.npz`` that loads without the training data.

    Parameters
    ----------
    path : str
    model : SRIEM
    config : Config
    item_ids : int array of shape (n_items + 1,), raw id of each internal id
    meta : dict, optional, JSON-serialisable facts to keep with the model
    item_tokens : sequence of str of length n_items + 1, optional; the text
        name of each internal id, when the data named items by text (kept as
        the member ``item_tokens``, a JSON list)
    """
    item_ids = np.asarray(item_ids)
    if item_ids.shape != (model.n_items + 1,):
        raise ValueError(
            f"item_ids must have n_items + 1 = {model.n_items + 1} entries, got {item_ids.shape}"
        )
    arrays = _model_arrays(MODEL_FORMAT, model, config, item_ids)
    arrays["meta"] = _json_array(meta or {})
    if item_tokens is not None:
        tokens = [str(t) for t in item_tokens]
        if len(tokens) != model.n_items + 1:
            raise ValueError(f"item_tokens must have n_items + 1 = {model.n_items + 1} entries")
        arrays["item_tokens"] = _json_array(tokens)
    write_npz(path, arrays)


def _item_tokens(archive, n_items):
    """The optional ``item_tokens`` member: a list of n_items + 1 distinct strings, or None."""
    if "item_tokens" not in archive.members:
        return None
    tokens = archive.json("item_tokens", kind=list)
    if len(tokens) != n_items + 1 or not all(isinstance(t, str) for t in tokens):
        archive.fail("item_tokens", f"must be a list of {n_items + 1} strings")
    if len(set(tokens[1:])) != n_items:
        archive.fail("item_tokens", "has duplicate tokens: each item needs its own")
    return tokens


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


MAX_JSON_BYTES = 64 << 20
"""The most a JSON member (``config``, ``meta``, ``state``) may take."""
STATE_KEYS = {
    "epoch": int,
    "step": int,
    "global_step": int,
    "loss_sum": float,
    "loss_count": int,
    "history": list,
    "status": str,
}


class _Archive:
    """The members of one of our ``.npz`` files, read one at a time, sizes checked first.

    ``np.load`` would read any array the file holds; this reads only the
    ones asked for, after checking each one's header (shape and dtype)
    against what the format expects, so a hostile file cannot make us
    allocate more than it holds.
    """

    def __init__(self, path, what):
        self.path, self.what = path, what
        try:
            check_regular(path)
        except DataError as e:
            raise ModelFileError(str(e)) from None
        try:
            self.zip = zipfile.ZipFile(path)
            self.members = {
                info.filename[:-4]: info
                for info in self.zip.infolist()
                if info.filename.endswith(".npy")
            }
        except ZIP_ERRORS as e:
            raise ModelFileError(
                f"{path} is not a minisriem {what} file (not a NumPy .npz: {e})"
            ) from None
        size = os.path.getsize(path)
        for key, info in self.members.items():
            if info.file_size > 64 * size + (1 << 20):
                raise ModelFileError(
                    f"{path}: {key} unpacks to {info.file_size:,} bytes, far more than the "
                    f"file holds; it is not a minisriem {what} file"
                )

    def close(self):
        self.zip.close()

    def fail(self, field, problem):
        raise ModelFileError(f"{self.path}: {field} {problem}")

    def header(self, key):
        """``(shape, dtype)`` of member ``key``, or a ModelFileError when it is missing."""
        if key not in self.members:
            self.fail(key, f"is missing; this {self.what} file is incomplete or not ours")
        try:
            shape, dtype = npy_header(self.zip, self.members[key])
        except ZIP_ERRORS as e:
            self.fail(key, f"is not a readable array ({e}); the file is damaged")
        if dtype.hasobject:
            self.fail(key, "holds Python objects, which this format never does")
        return tuple(shape), dtype

    def array(self, key, shape=None, kinds=None, what="an array"):
        """Member ``key`` as an array, after checking its ``shape`` and dtype ``kinds``."""
        found, dtype = self.header(key)
        if shape is not None and found != tuple(shape):
            self.fail(key, f"has the wrong shape {found}, expected {tuple(shape)} from the config")
        if kinds is not None and dtype.kind not in kinds:
            self.fail(key, f"must be {what}, found {dtype}")
        try:
            with self.zip.open(self.members[key]) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except ZIP_ERRORS as e:
            self.fail(key, f"is truncated or damaged ({e})")

    def text(self, key):
        if key in self.members and self.members[key].file_size > MAX_JSON_BYTES:
            self.fail(key, "is too large for a JSON text")
        value = self.array(key, shape=(), kinds="U", what="a text")
        return str(value)

    def json(self, key, kind=dict):
        text = self.text(key)
        try:
            value = json.loads(text)
        except ValueError as e:
            self.fail(key, f"is not valid JSON ({e})")
        if not isinstance(value, kind):
            self.fail(
                key,
                f"must be a JSON {'object' if kind is dict else 'list'}, found "
                f"{type(value).__name__}",
            )
        return value


def _read_archive(path, expected_format):
    """Open one of our files, after checking its format marker and version."""
    what = "model" if expected_format == MODEL_FORMAT else "checkpoint"
    archive = _Archive(path, what)
    try:
        if "format" not in archive.members or "format_version" not in archive.members:
            raise ModelFileError(f"{path} is not a minisriem {what} file (no format marker)")
        found = archive.text("format")
        if found != expected_format:
            hint = (
                " (pass the run directory or its model.npz)" if found == CHECKPOINT_FORMAT else ""
            )
            raise ModelFileError(
                f"{path} is a {found[:40]} file, not a {expected_format} file{hint}"
            )
        version = archive.array("format_version", shape=(), kinds="iu", what="an integer")
        version = int(version)
        if version < 1:
            archive.fail("format_version", f"must be at least 1, found {version}")
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"{path} has {what} format version {version}, newer than this minisriem reads "
                f"({FORMAT_VERSION}): upgrade minisriem"
            )
    except BaseException:
        archive.close()
        raise
    return archive


def _build_model(archive):
    """The SRIEM, Config and item ids stored in ``archive``, every shape checked first."""
    path = archive.path
    config_dict = archive.json("config")
    n_items = config_dict.get("n_items")
    if isinstance(n_items, bool) or not isinstance(n_items, int) or not 1 <= n_items <= MAX_N_ITEMS:
        archive.fail("config", f"n_items must be an integer in 1..{MAX_N_ITEMS}, found {n_items!r}")
    try:
        config = Config.from_dict(config_dict)
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: config: {e}") from None
    archive.array("param/E", shape=(n_items + 1, config.d), kinds="f", what="floating point")
    item_ids = archive.array("item_ids", shape=(n_items + 1,), kinds="iu", what="integers")
    item_ids = item_ids.astype(np.int64)
    if len(np.unique(item_ids[1:])) != n_items:
        archive.fail("item_ids", "has duplicate raw ids: each item needs its own")
    model = SRIEM(
        n_items,
        d=config.d,
        l=config.l,
        variant=config.variant,
        importance=config.importance,
        dtype=np.float32,
        scale=config.scale,
        dropout=config.dropout,
        affinity=config.affinity,
    )
    for name, value in model.params.items():
        stored = archive.array(f"param/{name}", value.shape, "f", "floating point")
        if not np.all(np.isfinite(stored)):
            archive.fail(f"param/{name}", "holds NaN or infinite values; the model is damaged")
        value[...] = stored
    return model, config, item_ids


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
        Naming the file and the field, when the file is not a minisriem model,
        is damaged, or was written by a newer version.
    FileNotFoundError
        When there is no such file.
    """
    path = model_path(path)
    archive = _read_archive(path, MODEL_FORMAT)
    with contextlib.closing(archive):
        model, config, item_ids = _build_model(archive)
        meta = archive.json("meta")
        tokens = _item_tokens(archive, model.n_items)
    return SavedModel(model, config, item_ids, meta, path, tokens)


def load_checkpoint(path):
    """Load a checkpoint saved by :func:`save_checkpoint`, checking the optimiser and state.

    Returns
    -------
    saved : SavedModel
        The model at the checkpoint (``meta`` is empty).
    adam_state : dict of arrays, for ``Adam.load_state_dict``
    state : dict, the run's position and history

    Raises
    ------
    ModelFileError
        When a part is missing (``state``, Adam's moments), of the wrong shape
        or type; the message names the file and the field.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    archive = _read_archive(path, CHECKPOINT_FORMAT)
    with contextlib.closing(archive):
        model, config, item_ids = _build_model(archive)
        adam_state = {
            "t": archive.array("adam/t", shape=(), kinds="iu", what="an integer"),
            "lr": archive.array("adam/lr", shape=(), kinds="f", what="a number"),
        }
        if int(adam_state["t"]) < 0 or not np.isfinite(adam_state["lr"]):
            archive.fail("adam/t", "and adam/lr must be a step count and a finite rate")
        for name, value in model.params.items():
            for moment in ("m", "v"):
                key = f"adam/{moment}/{name}"
                stored = archive.array(key, value.shape, "f", "floating point")
                if not np.all(np.isfinite(stored)):
                    archive.fail(key, "holds NaN or infinite values; the checkpoint is damaged")
                adam_state[f"{moment}/{name}"] = stored
        state = archive.json("state")
    return SavedModel(model, config, item_ids, {}, path), adam_state, state


def check_run_state(state, path):
    """Refuse a training run's ``state`` (from :func:`load_checkpoint`) that lacks its position.

    Raises
    ------
    ModelFileError
        Naming the checkpoint and the field, e.g. ``state.epoch``.
    """
    for key, kind in STATE_KEYS.items():
        value = state.get(key)
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or (kind is int and value < 0):
            raise ModelFileError(
                f"{path}: state.{key} must be a{'n' if kind is int else ''} "
                f"{kind.__name__}{' >= 0' if kind is int else ''}, found {value!r}; "
                "the checkpoint is damaged: start the run again"
            )
    if state.get("phase", "select") not in ("select", "refit"):
        raise ModelFileError(f"{path}: state.phase must be select or refit")
    refit_epochs = state.get("refit_epochs")
    if state.get("phase") == "refit" and (
        isinstance(refit_epochs, bool) or not isinstance(refit_epochs, int) or refit_epochs < 1
    ):
        raise ModelFileError(f"{path}: state.refit_epochs must be an int >= 1 in the refit phase")
