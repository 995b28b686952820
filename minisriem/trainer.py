"""The training loop: Adam steps, per-epoch evaluation, model selection, checkpoints.

One run, in a run directory::

    for each epoch e = 0, 1, ...:
        lr = lr0 * lr_decay ** (e // lr_step)
        for each batch of the epoch's order:           # a tqdm bar
            loss, grads = model.loss_and_grads(batch)  # stop if loss is NaN/inf
            adam.step(params, grads)
        rank the validation and test examples          # Recall/MRR/NDCG @ 5, 10, 20
        if best on validation so far: write model.npz  # honest model selection
        write metrics.jsonl and checkpoint.npz
        stop early after `patience` epochs without a better validation score
    draw curve.png

The epoch's order is a permutation drawn from ``default_rng([seed, epoch])``,
so it depends only on the seed and the epoch: resuming mid-epoch recomputes
it and skips the batches already done. With the parameters, Adam's state and
the position (epoch, step, running loss) in the checkpoint, a resumed run
ends with exactly the parameters of one never interrupted (bitwise with one
thread).

Ctrl-C (SIGINT) or SIGTERM asks the loop to stop: it finishes the current
step, saves a checkpoint at that position and returns; a second Ctrl-C stops
at once (the last checkpoint stays).
"""

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from minisriem import checkpoint, report
from minisriem.metrics import KS, model_ranks, popularity_ranks, ranking_metrics, record_names
from minisriem.model import SRIEM
from minisriem.optim import Adam, step_lr

SELECTED_BY = "best validation Recall@20, ties by MRR@20"
LAST_EPOCH = "last epoch, no validation split"
REFIT = "refit: every training session, the epoch count chosen on validation, last epoch"
SELECTED_MODEL_FILE = "selected-model.npz"
"""Phase 1's validation-selected model, in a run that refits."""


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the message names the step."""


@dataclass
class Examples:
    """One split in the model's layout (see ``Split.padded``)."""

    item_seq: np.ndarray  # N,L int32
    item_seq_len: np.ndarray  # N int32
    targets: np.ndarray  # N int32

    @classmethod
    def of(cls, split, L):
        return None if split is None else cls(*split.padded(L))

    def __len__(self):
        return len(self.targets)


def model_name(config):
    """The paper's name for a model: "SR-IEM", or "SR-STAMP" / "SR-SAT" for the variants;
    "SR-IEM+" (issue #12) when an addition of SR-IEM+ is on."""
    plus = config.scale > 0 or config.dropout > 0 or config.affinity != "variant"
    return f"SR-{config.importance.upper()}" + ("+" if plus else "")


def epoch_batches(n_examples, batch_size, seed, epoch, shuffle=True):
    """The batches of one epoch, as index arrays into the training examples.

    Parameters
    ----------
    n_examples, batch_size, seed, epoch : int
    shuffle : bool
        False keeps the data order (the authors' code).

    Returns
    -------
    list of int64 arrays; all of ``batch_size`` entries but the last
    """
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(n_examples)
    else:
        order = np.arange(n_examples)
    return [order[i : i + batch_size] for i in range(0, n_examples, batch_size)]


def peak_rss_mb():
    """The most memory this process has held so far (peak resident set), in MiB."""
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return round(kib / 1024, 1)


def select_epoch(history):
    """Index into ``history`` of the selected epoch.

    The best validation Recall@20, ties broken by MRR@20, then by the
    earlier epoch; without validation, the last epoch.
    """
    if not history or history[0]["valid"] is None:
        return len(history) - 1
    keys = [(r["valid"]["Recall@20"], r["valid"]["MRR@20"]) for r in history]
    return max(range(len(keys)), key=lambda i: (keys[i], -i))


def best_test_over_epochs(history):
    """The authors' report: the best test R@20 and the best test MRR@20 over epochs.

    Returns
    -------
    dict ``{"Recall@20": (value, epoch), "MRR@20": (value, epoch)}``; the two
    may come from different epochs, and looking at the test set to choose is
    what makes these figures optimistic.
    """
    out = {}
    for name in ("Recall@20", "MRR@20"):
        best = max(history, key=lambda r: r["test"][name])
        out[name] = (best["test"][name], best["epoch"])
    return out


class _StopRequest:
    """Signal handler that records a request to stop; a second signal stops at once."""

    def __init__(self):
        self.signum = None

    def __call__(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __bool__(self):
        return self.signum is not None


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGINT and SIGTERM into a polite request while the block runs.

    Yields
    ------
    _StopRequest, true once a signal arrived; ``.signum`` says which
    """
    request = _StopRequest()
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, request)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Trainer:
    """One training run of SR-IEM, written to a run directory.

    Parameters
    ----------
    config : Config
    options : TrainOptions
    run_dir : str, the run directory (it must exist when :meth:`run` starts)
    item_ids : int array of shape (n_items + 1,), raw id of each item id
    fit, valid, test : data_tools Split; ``valid`` may be None
    dataset_name : str, for titles and the model's metadata
    progress : bool, show a tqdm bar per epoch
    log : callable taking one str, for the epoch lines and the final table
    train_all : data_tools Split, every training session (``fit`` and
        ``valid`` together); needed to refit, i.e. when ``valid`` is given and
        ``options.refit`` is true
    item_tokens : sequence of str, optional; the text name of each item id,
        when the dataset named items by text (kept in the saved model)
    """

    def __init__(
        self,
        config,
        options,
        run_dir,
        item_ids,
        fit,
        valid,
        test,
        dataset_name="",
        progress=True,
        log=print,
        train_all=None,
        item_tokens=None,
    ):
        self.config, self.options, self.run_dir = config, options, run_dir
        self.item_ids = np.asarray(item_ids)
        self.item_tokens = None if item_tokens is None else [str(t) for t in item_tokens]
        self.dataset_name = dataset_name
        self.progress, self.log = progress, log
        n_items = len(self.item_ids) - 1
        self.refits = bool(options.refit) and valid is not None
        if self.refits and train_all is None:
            raise ValueError("refitting needs every training session (train_all)")
        self.phase_examples = {
            "select": (Examples.of(fit, config.L), Examples.of(valid, config.L)),
            "refit": (Examples.of(train_all, config.L) if self.refits else None, None),
        }
        self.fit, self.valid = self.phase_examples["select"]
        self.test = Examples.of(test, config.L)
        # The popularity baseline counts every training target, validation included:
        # it has nothing to select, so it may use all the training data.
        train_targets = (
            self.fit.targets
            if valid is None
            else np.concatenate([self.fit.targets, self.valid.targets])
        )
        self.popularity = record_names(  # the records' names (metrics.jsonl)
            ranking_metrics(popularity_ranks(train_targets, self.test.targets, n_items), KS)
        )
        self.model = self.new_model()
        self.adam = Adam(self.model.params, lr=config.lr, l2=config.l2)
        # The position: the epoch under way, the batches of it done so far,
        # the running loss of those batches, and one record per finished epoch.
        self.state = {
            "epoch": 0,
            "step": 0,
            "global_step": 0,
            "loss_sum": 0.0,
            "loss_count": 0,
            "history": [],
            "status": "running",
            "phase": "select",
        }

    def new_model(self):
        """A freshly initialised SR-IEM of this run's settings (the same for the same seed)."""
        c = self.config
        return SRIEM(
            len(self.item_ids) - 1,
            d=c.d,
            l=c.l,
            variant=c.variant,
            seed=self.options.seed,
            dtype=np.float32,
            importance=c.importance,
            scale=c.scale,
            dropout=c.dropout,
            affinity=c.affinity,
        )

    # ------------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.run_dir, name)

    @property
    def phase(self):
        """ "select" (train without the validation split, choose the epoch) or "refit"."""
        return self.state.get("phase", "select")

    def epoch_limit(self):
        """The epochs of the current phase: the options' most, or the refit's E*."""
        return self.state["refit_epochs"] if self.phase == "refit" else self.options.epochs

    def _enter_phase(self):
        self.fit, self.valid = self.phase_examples[self.phase]

    def _start_refit(self):
        """Phase 2: a fresh model and optimiser, every training session, E* epochs."""
        s = self.state
        selected = s["history"][select_epoch(s["history"])]
        self.state = {
            "epoch": 0,
            "step": 0,
            "global_step": s["global_step"],
            "loss_sum": 0.0,
            "loss_count": 0,
            "history": [],
            "status": "running",
            "phase": "refit",
            "selection": s["history"],
            "selection_status": s["status"],
            "refit_epochs": selected["epoch"],
        }
        fresh = self.new_model()
        for name, value in self.model.params.items():
            value[...] = fresh.params[name]
        self.adam = Adam(self.model.params, lr=self.config.lr, l2=self.config.l2)
        self._enter_phase()
        self.save_history()
        self.save_checkpoint()
        self.log(
            f"refit: epoch {selected['epoch']} was best on validation; training a fresh "
            f"model on all {len(self.fit)} training examples for {selected['epoch']} epochs"
        )

    def resume_from(self, path):
        """Continue from a checkpoint written by this class."""
        saved, adam_state, state = checkpoint.load_checkpoint(path)
        checkpoint.check_run_state(state, path)
        if not np.array_equal(saved.item_ids, self.item_ids):
            raise ValueError(
                f"the dataset's items changed since {self.run_dir} started: start a new run"
            )
        for name, value in self.model.params.items():
            value[...] = saved.model.params[name]
        self.adam.load_state_dict(adam_state)
        state.setdefault("phase", "select")
        self.state = state
        self._enter_phase()

    def save_checkpoint(self):
        checkpoint.save_checkpoint(
            self.path(checkpoint.CHECKPOINT_FILE),
            self.model,
            self.config,
            self.item_ids,
            self.adam,
            self.state,
        )

    def all_records(self):
        """Every finished epoch of the run: phase 1's, then the refit's (each says its phase)."""
        return self.state.get("selection", []) + self.state["history"]

    def save_history(self):
        """Rewrite ``metrics.jsonl``, one line per finished epoch of either phase."""
        lines = "".join(json.dumps(r) + "\n" for r in self.all_records())
        checkpoint.write_text(self.path("metrics.jsonl"), lines)

    def save_curve(self):
        """Draw ``curve.png`` (at the end of the run: matplotlib takes a second)."""
        if self.all_records():
            title = f"{model_name(self.config)} on {self.dataset_name}"
            report.plot_curve(self.path("curve.png"), self.all_records(), title)

    def summary(self):
        """The selected epoch, the authors' best-over-epochs figures, and popularity."""
        s = self.state
        selection = s["selection"] if self.phase == "refit" else s["history"]
        if not selection:
            return None
        out = {
            "model": model_name(self.config),
            "selected": selection[select_epoch(selection)],
            "selected_by": SELECTED_BY if selection[0]["valid"] is not None else LAST_EPOCH,
            "best_test": best_test_over_epochs(selection),
            "popularity": self.popularity,
        }
        if self.phase == "refit" and len(s["history"]) == s["refit_epochs"]:
            out["refit"] = s["history"][-1]
            out["best_test"] = best_test_over_epochs(s["history"])
        return out

    # ------------------------------------------------------------------
    def run(self, stop_after_steps=None):
        """Train until the last epoch, early stopping, or a request to stop.

        Parameters
        ----------
        stop_after_steps : int or None
            Behave as on Ctrl-C once this many steps are done in total (for tests).

        Returns
        -------
        str, the run's status: "finished", "early-stopped", or "interrupted"
            (then ``self.stop_signal`` holds the signal number)

        Raises
        ------
        TrainingDiverged
            When a loss is NaN or infinite; the checkpoint on disk is the last good one.
        """
        self.stop_signal = None
        with stop_on_signals() as stop:
            while True:
                while self.state["status"] == "running":
                    if self.state["epoch"] >= self.epoch_limit():
                        self.state["status"] = "finished"
                        break
                    if not self._train_epoch(stop, stop_after_steps):
                        return self._interrupted(stop)
                    record = self._evaluate_epoch(stop)
                    if record is None:
                        return self._interrupted(stop)
                    self._end_epoch(record)
                if self.phase == "select" and self.refits:
                    self._start_refit()
                    continue
                break
            self.save_checkpoint()
            self.save_curve()
        return self.state["status"]

    def _interrupted(self, stop):
        self.stop_signal = stop.signum or signal.SIGINT
        self.save_checkpoint()
        self.save_curve()
        return "interrupted"

    def _train_epoch(self, stop, stop_after_steps):
        """Run the rest of the current epoch's steps; False when asked to stop."""
        s, cfg = self.state, self.config
        epoch = s["epoch"]
        self.adam.lr = step_lr(cfg.lr, epoch, cfg.lr_step, cfg.lr_decay)
        batches = epoch_batches(
            len(self.fit), cfg.batch_size, self.options.seed, epoch, self.options.shuffle
        )
        bar = tqdm(
            total=len(batches),
            initial=s["step"],
            desc=f"{'refit ' if self.phase == 'refit' else ''}epoch {epoch + 1}/"
            f"{self.epoch_limit()}",
            unit="batch",
            leave=False,
            disable=not self.progress,
        )
        started, seen = time.perf_counter(), 0
        try:
            for b in range(s["step"], len(batches)):
                idx = batches[b]
                loss = self.train_step(idx)
                if not math.isfinite(loss):
                    raise TrainingDiverged(self._diverged_message(loss, b))
                s["step"] = b + 1
                s["global_step"] += 1
                s["loss_sum"] += float(loss) * len(idx)
                s["loss_count"] += len(idx)
                seen += len(idx)
                elapsed = time.perf_counter() - started
                bar.update(1)
                bar.set_postfix(
                    loss=f"{s['loss_sum'] / s['loss_count']:.4f}",
                    ex_per_s=f"{seen / max(elapsed, 1e-9):.0f}",
                    refresh=False,
                )
                if stop or s["global_step"] == stop_after_steps:
                    return False
        finally:
            bar.close()
            s["train_seconds"] = s.get("train_seconds", 0.0) + time.perf_counter() - started
        return True

    def train_step(self, idx):
        """One Adam step on the fit examples ``idx`` (B,); returns the batch's mean loss.

        A NaN or infinite loss is returned without touching the parameters.
        Dropout masks (SR-IEM+) are drawn from the seed and the position
        ``(epoch, step)`` of the phase, not the run's global step, so that a
        refit equals a fresh run on every training session for E* epochs.
        """
        position = (self.state["epoch"], self.state["step"])
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            loss, grads = self.model.loss_and_grads(
                self.fit.item_seq[idx],
                self.fit.item_seq_len[idx],
                self.fit.targets[idx],
                position,
            )
        if math.isfinite(loss):
            self.adam.step(self.model.params, grads)
        return loss

    def _diverged_message(self, loss, b):
        s = self.state
        finished = len(s["history"])
        kept = (
            f"the checkpoint from the end of epoch {finished} is kept"
            if finished
            else "no checkpoint was written (it failed in the first epoch)"
        )
        return (
            f"the training loss became {loss} at epoch {s['epoch'] + 1}, step {b + 1} "
            f"(step {s['global_step'] + 1} of the run), so training stopped before applying it; "
            f"{kept} in {self.run_dir}; try a smaller --lr"
        )

    def _evaluate_epoch(self, stop):
        """Rank validation and test examples; the epoch's record, or None if asked to stop."""
        s, opts = self.state, self.options
        started = time.perf_counter()
        metrics = {}
        for part, examples in (("valid", self.valid), ("test", self.test)):
            if examples is None:
                metrics[part] = None
                continue
            ranks = model_ranks(
                self.model,
                examples.item_seq,
                examples.item_seq_len,
                examples.targets,
                opts.eval_batch_size,
                stop=lambda: bool(stop),
            )
            if ranks is None:
                return None
            metrics[part] = record_names(ranking_metrics(ranks, KS))  # as metrics.jsonl keeps
        return {
            "phase": self.phase,
            "epoch": s["epoch"] + 1,
            "lr": self.adam.lr,
            "loss": s["loss_sum"] / max(s["loss_count"], 1),
            "examples": s["loss_count"],
            "steps": s["global_step"],
            "train_seconds": s.pop("train_seconds", 0.0),
            "eval_seconds": time.perf_counter() - started,
            "peak_rss_mb": peak_rss_mb(),
            "valid": metrics["valid"],
            "test": metrics["test"],
        }

    def _end_epoch(self, record):
        """Keep the record, save the selected model, decide whether to go on."""
        s = self.state
        s["history"].append(record)
        s.update(epoch=s["epoch"] + 1, step=0, loss_sum=0.0, loss_count=0)
        if self.phase == "refit":
            if len(s["history"]) == s["refit_epochs"]:
                self.save_model(record)  # the result: the refit's last epoch
        else:
            selected = select_epoch(s["history"])
            if selected == len(s["history"]) - 1:
                self.save_model(record)
            if self.valid is not None and len(s["history"]) - 1 - selected >= self.options.patience:
                s["status"] = "early-stopped"
        self.save_history()
        self.save_checkpoint()
        self.log(report.epoch_line(record, self.epoch_limit()))

    def save_model(self, record):
        """Write ``model.npz`` (or, in phase 1 of a refitting run, ``selected-model.npz``)."""
        if self.phase == "refit":
            selected_by, name = REFIT, checkpoint.MODEL_FILE
        elif self.refits:
            selected_by, name = SELECTED_BY, SELECTED_MODEL_FILE
        else:
            selected_by = SELECTED_BY if self.valid is not None else LAST_EPOCH
            name = checkpoint.MODEL_FILE
        meta = {
            "dataset": self.dataset_name,
            "epoch": record["epoch"],
            "selected_by": selected_by,
            "valid": record["valid"],
            "test": record["test"],
        }
        checkpoint.save_model(
            self.path(name), self.model, self.config, self.item_ids, meta, self.item_tokens
        )
