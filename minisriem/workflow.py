"""The workflow as Python calls: train, evaluate, recommend.

The command-line tools (``python -m minisriem.train``, ``.evaluate``,
``.recommend``) are thin wrappers over these functions, so a notebook can do
exactly what they do::

    from minisriem.workflow import train, evaluate, recommend
    result = train("synthetic", epochs=3)          # writes runs/synthetic-<time>/
    report = evaluate(result.run_dir)              # Recall/MRR/NDCG @ 5, 10, 20
    rec = recommend(result.run_dir, [12, 40, 7])   # top-20 items, in raw ids
    rec.items, rec.scores, rec.importance

A model argument is a ``model.npz``, the run directory holding it, or a
:class:`~minisriem.checkpoint.SavedModel` already loaded. What a run directory
holds is :mod:`minisriem.runs`; the memory checks made before anything is
allocated are :mod:`minisriem.memory`.
"""

import json
import os
import time
import warnings
from dataclasses import dataclass, field, fields

import numpy as np

import minisriem
from data_tools import load_dataset, split_validation
from minisriem import checkpoint
from minisriem.checkpoint import SavedModel, load_model
from minisriem.config import Config, TrainOptions
from minisriem.memory import (
    check_item_ids,
    check_memory,
    memory_limit,
    scoring_bytes,
    training_bytes,
)
from minisriem.metrics import (
    KS,
    MAX_LENGTH,
    metrics_by_length,
    popularity_ranks,
)
from minisriem.provenance import source_commit
from minisriem.report import final_table
from minisriem.runs import (
    CONFIG_FILE,
    RUN_FORMAT,
    TrainResult,
    choose_run_dir,
    dataset_record,
    read_run_config,
    settings_from,
)
from minisriem.threads import limit_threads
from minisriem.trainer import Trainer, model_name

__all__ = [
    "train",
    "evaluate",
    "recommend",
    "recommend_sessions",
    "Recommendation",
    "load_model",
    "default_epochs",
]

SYNTHETIC_EPOCHS = 3
"""Epochs of the default synthetic run, sized to take about a minute on 2 cores."""
REAL_EPOCHS = 10

TIE_RULE = "rank = 1 + number of items scored strictly higher than the target"
LENGTH_RULE = (
    "length = the true number of items before the target; lengths of "
    f"{MAX_LENGTH} and more form the group '{MAX_LENGTH}+', which is also the "
    "capped length the model reads (it keeps the L = 10 most recent items)"
)


def default_epochs(dataset):
    """Default number of epochs: a minute's worth on synthetic data, the paper's 10 otherwise."""
    return SYNTHETIC_EPOCHS if dataset == "synthetic" else REAL_EPOCHS


# ----------------------------------------------------------------------
# Training


def split_settings(settings):
    """Sort keyword settings into a Config and TrainOptions; the dataclasses check the values."""
    config_names = {f.name for f in fields(Config)}
    option_names = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(settings) - config_names - option_names)
    if unknown:
        known = ", ".join(sorted(config_names | option_names))
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; known: {known}")
    config = Config(**{k: v for k, v in settings.items() if k in config_names})
    options = TrainOptions(**{k: v for k, v in settings.items() if k in option_names})
    return config, options


def train(
    dataset="synthetic",
    *,
    data_dir=None,
    out=None,
    resume=None,
    threads=None,
    progress=True,
    log=print,
    stop_after_steps=None,
    max_memory_gb=0.0,
    **settings,
):
    """Train SR-IEM with honest model selection; everything lands in a run directory.

    Parameters
    ----------
    dataset : str or data_tools Dataset
        A name for :func:`data_tools.load_dataset` ("synthetic", "diginetica",
        "yoochoose1_64", "yoochoose1_4", "custom") or a dataset already loaded.
    data_dir : str, optional
        Where datasets live (see :func:`data_tools.resolve_data_dir`).
    out : str, optional
        The run directory; default ``runs/<dataset>-<time>/``.
    resume : str, optional
        A run directory to continue; its ``config.json`` supplies every
        setting (``dataset`` must then be given only if it is an object).
    threads : int, optional
        Threads for Numba (and for BLAS only if NumPy was not imported yet:
        set ``OPENBLAS_NUM_THREADS`` before starting Python for that);
        recorded in ``config.json``.
    progress : bool
        Show a tqdm bar per epoch.
    log : callable
        Receives the epoch lines and the final table (default ``print``).
    stop_after_steps : int, optional
        Stop as on Ctrl-C once this many steps are done (for tests).
    max_memory_gb : float
        Refuse settings whose model, Adam state and score batches would need
        more than this (0: the machine's physical memory), before allocating.
    **settings
        Any field of :class:`~minisriem.config.Config` (``d``, ``l``, ``L``,
        ``variant``, ``importance``, ``lr``, ``lr_decay``, ``lr_step``,
        ``l2``, ``batch_size``) or of :class:`~minisriem.config.TrainOptions`
        (``epochs``, ``patience``, ``seed``, ``shuffle``, ``valid_fraction``,
        ``eval_batch_size``). Unset ones take the paper's defaults; ``epochs``
        defaults to :func:`default_epochs`.

    Returns
    -------
    TrainResult

    Raises
    ------
    DataError, ValueError, OSError
        With one-line messages, for missing data, bad settings or paths.
    minisriem.trainer.TrainingDiverged
        When the loss becomes NaN or infinite (a ValueError).
    """
    if threads is not None:
        limit_threads(threads)
    if resume is not None:
        if settings:
            raise TypeError("settings come from the run's config.json when resuming")
        info = read_run_config(resume)
        run_dir = resume
        config_path = os.path.join(resume, CONFIG_FILE)
        config = settings_from(config_path, Config, info["config"])
        # Runs made before refitting existed did not refit: resuming one must not start it.
        options = settings_from(config_path, TrainOptions, {"refit": False, **info["options"]})
        if isinstance(dataset, str):
            dataset = info["dataset"]
            data_dir = data_dir or info.get("data_dir")
    else:
        dataset_arg = dataset if isinstance(dataset, str) else None
        settings.setdefault("epochs", default_epochs(dataset_arg or ""))
        config, options = split_settings(settings)

    ds = load_dataset(dataset, data_dir) if isinstance(dataset, str) else dataset
    check_item_ids(ds)
    check_memory(
        training_bytes(ds.n_items, config, options.eval_batch_size),
        memory_limit(max_memory_gb),
        f"training with d={config.d}, batch {config.batch_size} on {ds.n_items:,} items",
        "use a smaller --d or --batch-size",
    )
    if len(ds.test) == 0:
        raise ValueError(
            f"{ds.name}: the test set has no examples; nothing to measure the model on"
        )
    if len(ds.train) == 0:
        raise ValueError(f"{ds.name}: the training set has no examples")
    fit, valid = split_validation(ds.train, options.valid_fraction)
    if len(fit) == 0:
        raise ValueError(
            f"{ds.name}: no training example is left after holding out {options.valid_fraction:g} "
            "for validation; use a smaller --valid-fraction"
        )

    if resume is None:
        run_dir = choose_run_dir(out, ds.name)
    trainer = Trainer(  # builds the model: bad settings fail here, before any file is written
        config,
        options,
        run_dir,
        ds.item_ids,
        fit,
        valid,
        ds.test,
        ds.name,
        progress,
        log,
        train_all=ds.train,
        item_tokens=ds.item_tokens,
    )
    if resume is None:
        os.makedirs(run_dir, exist_ok=True)
        info = {
            "format": RUN_FORMAT,
            "version": 1,
            "dataset": dataset_record(dataset_arg)
            if dataset_arg is not None
            else getattr(ds, "loaded_from", None) or ds.name,
            "data_dir": data_dir and os.path.abspath(data_dir),
            "config": config.to_dict(),
            "options": options.to_dict(),
            "threads": threads,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "minisriem": minisriem.__version__,
            "commit": source_commit(),
            "numpy": np.__version__,
        }
        checkpoint.write_text(os.path.join(run_dir, CONFIG_FILE), json.dumps(info, indent=2) + "\n")
    ckpt = os.path.join(run_dir, checkpoint.CHECKPOINT_FILE)
    if resume is not None and os.path.exists(ckpt):
        trainer.resume_from(ckpt)
        s = trainer.state
        log(f"resuming {run_dir} at epoch {s['epoch'] + 1}, step {s['step']} ({s['status']})")

    n_valid = 0 if valid is None else len(valid)
    log(
        f"{ds.name}: {len(fit)} training, {n_valid} validation, {len(ds.test)} test examples, "
        f"{ds.n_items} items; {model_name(config)}, {config.variant} variant, "
        f"d={config.d}, batch {config.batch_size}, up to {options.epochs} epochs -> {run_dir}"
    )
    if valid is None:
        log(
            "no validation split (valid_fraction 0): training on all training sessions, "
            "no early stopping; the last epoch is the selected one"
        )
    elif trainer.refits:
        log(
            "phase 1 chooses the number of epochs on the validation split; phase 2 (refit) "
            "then trains a fresh model on all training sessions for that many epochs"
        )
    status = trainer.run(stop_after_steps=stop_after_steps)
    summary = trainer.summary()
    if summary is not None and status != "interrupted":
        log(final_table(summary))
    return TrainResult(run_dir, status, trainer.all_records(), summary, trainer.stop_signal)


# ----------------------------------------------------------------------
# Evaluating


def _as_saved_model(model):
    return model if isinstance(model, SavedModel) else load_model(model)


def _trained_on(saved):
    """``(dataset, data_dir)`` a model was trained on: its run's config.json, else its meta."""
    if saved.path is not None:
        run_dir = os.path.dirname(os.path.abspath(saved.path))
        if os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
            try:
                info = read_run_config(run_dir)
            except (OSError, ValueError):
                info = None
            if info is not None:
                return info["dataset"], info.get("data_dir")
    dataset = saved.meta.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise ValueError("the model does not say which dataset it was trained on: name one")
    return dataset, None


def evaluate(model, dataset=None, *, data_dir=None, ks=KS, batch_size=512, max_memory_gb=0.0):
    """The field's metrics on a dataset's test set, overall and by session length.

    hit@K, recall@K, mrr@K, ndcg@K, coverage@K, avg_popularity@K and
    tail_share@K (see :mod:`minisriem.metrics`), beside the popularity baseline.

    Parameters
    ----------
    model : str or SavedModel
        A ``model.npz``, its run directory, or a loaded model.
    dataset : str or data_tools Dataset, optional
        Default: the dataset the model was trained on (its ``meta``).
    data_dir : str, optional
    ks : sequence of int
    batch_size : int

    Returns
    -------
    dict
        ``metrics`` (all examples; keys ``hit@K``, ``recall@K``, ``mrr@K``,
        ``ndcg@K``, ``coverage@K``, ``avg_popularity@K``, ``tail_share@K``),
        ``by_length`` (``"1"`` .. ``"10+"``, each with ``count`` and the
        hit, recall, mrr and ndcg keys), ``popularity`` (the baseline of the
        most frequent training targets, same keys as ``metrics``), and
        ``model``, ``dataset``, ``examples``, ``tie_rule``, ``length_rule``,
        ``popularity_rule``. Metrics are fractions in [0, 1] except
        ``avg_popularity@K``, a mean count.
    """
    from minisriem import metrics as m

    saved = _as_saved_model(model)
    batch_size = _checked_int(batch_size, "batch_size", 1, 65_536)
    if dataset is None:
        dataset, recorded_dir = _trained_on(saved)
        data_dir = data_dir or recorded_dir
    ds = load_dataset(dataset, data_dir) if isinstance(dataset, str) else dataset
    if len(ds.test) == 0:
        raise ValueError(f"{ds.name}: the test set has no examples; nothing to evaluate")
    check_memory(
        scoring_bytes(ds.n_items, saved.config.d, batch_size),
        memory_limit(max_memory_gb),
        f"scoring batches of {batch_size} over {ds.n_items:,} items",
        "use a smaller --batch-size",
    )
    if not np.array_equal(saved.item_ids, ds.item_ids):
        raise ValueError(
            f"the model knows {len(saved.item_ids) - 1} items and {ds.name} has {ds.n_items} "
            "with other ids: evaluate it on the dataset it was trained on"
        )
    item_seq, item_seq_len, targets = ds.test.padded(saved.config.L)
    k_max = min(max(ks), ds.n_items)
    ranks, topk = m.model_topk(saved.model, item_seq, item_seq_len, targets, k_max, batch_size)
    pop = popularity_ranks(ds.train.targets, targets, ds.n_items)
    pop_topk = m.popularity_topk(ds.train.targets, ds.n_items, len(targets), k_max)
    popularity = m.item_popularity(ds.train.targets, ds.n_items)
    catalogue = m.catalogue_mask(ds.train.items, ds.train.targets, ds.n_items)
    return {
        "model": saved.path,
        "dataset": ds.name,
        "split": "test",
        "examples": int(len(targets)),
        "tie_rule": TIE_RULE,
        "length_rule": LENGTH_RULE,
        "model_name": model_name(saved.config),
        "popularity_rule": m.POPULARITY_RULE,
        "metrics": m.evaluation_metrics(ranks, topk, popularity, catalogue, ks),
        "by_length": metrics_by_length(ranks, ds.test.lengths, ks),
        "popularity": m.evaluation_metrics(pop, pop_topk, popularity, catalogue, ks),
    }


# ----------------------------------------------------------------------
# Recommending


@dataclass
class Recommendation:
    """The top-k items for one session, and why.

    Attributes
    ----------
    items : list of int, raw item ids, best first (str tokens for a model
        trained on data that named items by text, see ``SavedModel.item_tokens``)
    scores : list of float, their scores (eq. 8)
    session : list of int (or str), the raw ids the model read (known, at most L,
        oldest first)
    importance : list of float, the weight beta (eq. 5) of each item of ``session``
    unknown : list of int (or str), raw ids skipped because the model never saw them
    """

    items: list
    scores: list
    session: list
    importance: list
    unknown: list = field(default_factory=list)

    def to_dict(self):
        return {
            "session": self.session,
            "importance": self.importance,
            "unknown": self.unknown,
            "items": self.items,
            "scores": self.scores,
        }


def _checked_int(value, name, low, high):
    """``value`` as an int in [low, high], or a ValueError naming it (bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return int(value)


def _session_ids(saved, raw_session, where):
    """Internal ids of a session's known items (the L most recent) and the unknown raw ids."""
    if isinstance(raw_session, (str, bytes)):
        raise ValueError(f"{where} must be a sequence of item ids, not a string")
    try:
        raw_session = list(raw_session)
    except TypeError:
        raise ValueError(f"{where} must be a sequence of item ids, got {raw_session!r}") from None
    if not raw_session:
        raise ValueError(f"{where} is empty: give at least one item id")
    for item in raw_session:
        if saved.item_tokens is not None:  # the model names items by text tokens
            if not isinstance(item, str):
                raise ValueError(
                    f"{where}: this model names items by text tokens, got {item!r}; "
                    "pass the tokens as strings"
                )
        elif isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise ValueError(
                f"{where}: item ids must be integers, got {item!r} "
                "(convert them yourself if you mean to round)"
            )
        elif not -(2**63) <= item < 2**63:
            raise ValueError(f"{where}: item id {item} is beyond 64-bit integers")
    ids, unknown = saved.internal_ids(raw_session)
    if len(ids) == 0:
        shown = ", ".join(str(r) for r in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise ValueError(f"{where} has no item the model knows (unknown: {shown})")
    return ids[-saved.config.L :], unknown


def _floats(values):
    """Python floats with the shortest decimals that round-trip in the array's dtype."""
    return [float(str(v)) for v in values]


def recommend_sessions(model, sessions, k=20, batch_size=256, warn=True):
    """Recommend for many sessions at once, in batches.

    Parameters
    ----------
    model : str or SavedModel
    sessions : list of sequences of raw item ids, oldest click first
    k : int, items per session (at most the number of items)
    batch_size : int
    warn : bool
        Warn about unknown items (they are also listed in each result).

    Returns
    -------
    list of Recommendation, one per session

    Raises
    ------
    ValueError
        When a session is empty or has no known item (the message says which).
    """
    saved = _as_saved_model(model)
    n_items, L = saved.model.n_items, saved.config.L
    k = min(_checked_int(k, "k", 1, 100_000), n_items)
    batch_size = _checked_int(batch_size, "batch_size", 1, 65_536)
    if isinstance(sessions, (str, bytes)):
        raise ValueError("sessions must be a list of sessions (lists of item ids)")
    sessions = list(sessions)
    if not sessions:
        raise ValueError("no session given: pass a list of sessions (lists of item ids)")
    check_memory(
        scoring_bytes(n_items, saved.config.d, min(batch_size, len(sessions))),
        memory_limit(),
        f"scoring batches of {batch_size} sessions over {n_items:,} items",
        "use a smaller --batch-size",
    )
    prepared = [
        _session_ids(saved, s, f"session {i + 1}" if len(sessions) > 1 else "the session")
        for i, s in enumerate(sessions)
    ]
    results = []
    for start in range(0, len(prepared), batch_size):
        chunk = prepared[start : start + batch_size]
        item_seq = np.zeros((len(chunk), L), dtype=np.int32)  # B,L
        item_seq_len = np.array([len(ids) for ids, _ in chunk], dtype=np.int32)  # B
        for b, (ids, _) in enumerate(chunk):
            item_seq[b, : len(ids)] = ids
        top, top_scores = saved.model.topk(item_seq, item_seq_len, k, return_scores=True)  # B,k
        beta = saved.model.item_weights(item_seq, item_seq_len)  # B,L
        for b, (ids, unknown) in enumerate(chunk):
            results.append(
                Recommendation(
                    items=saved.labels(top[b]),
                    scores=_floats(top_scores[b]),
                    session=saved.labels(ids),
                    importance=_floats(beta[b, : len(ids)]),
                    unknown=unknown,
                )
            )
    if warn:
        for i, r in enumerate(results):
            if r.unknown:
                where = f"session {i + 1}" if len(results) > 1 else "the session"
                warnings.warn(
                    f"{where}: skipped items unknown to the model: "
                    + ", ".join(str(u) for u in r.unknown),
                    stacklevel=2,
                )
    return results


def recommend(model, session, k=20):
    """The top-k next items for one session, in the dataset's raw item ids.

    Unknown items are skipped with a warning; only the ``L`` most recent
    known items are read.

    Parameters
    ----------
    model : str or SavedModel
    session : sequence of int, raw item ids, oldest click first
    k : int

    Returns
    -------
    Recommendation
    """
    (result,) = recommend_sessions(model, [session], k, warn=False)
    if result.unknown:
        warnings.warn(
            "skipped items unknown to the model: " + ", ".join(str(u) for u in result.unknown),
            stacklevel=2,
        )
    return result
