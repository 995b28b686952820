"""Reproduce the paper's Table 2, Fig. 2, Fig. 3 and Table 3 with one command.

    python -m minisriem.experiments.reproduce --dataset diginetica --data-dir /work/shared/data

runs what the page needs, then writes ``docs/REPRODUCTION.md`` and its
figures from the recorded results. The work comes in groups (``--runs``
picks some, ``--only baselines`` or ``--only models`` a whole kind):

==============  ==============================================================
group           what
==============  ==============================================================
spop            S-POP (:class:`minisriem.baselines.SPop`) on whole sessions
itemknn         Item-KNN (:class:`minisriem.baselines.ItemKNN`), cosine
sriem-paper     SR-IEM, the paper's equations, once per seed (the headline row)
sriem-official  SR-IEM as in the authors' released code, first seed
sr-stamp        SR-STAMP (importance "stamp"), first seed
sr-sat          SR-SAT (importance "sat"), first seed
sriem-all-train a probe, only when named: SR-IEM (paper) trained on every
                training session (no validation split), its last epoch
timing          Table 3: a training step and the test ranking of every model,
                timed side by side in one process (and the PyTorch reference
                right after, when ``../shared/bench`` is there); run it alone
                on a quiet machine
==============  ==============================================================

Every model run is an ordinary trainer run directory
``OUT_DIR/DATASET/NAME/`` (``python -m minisriem.train --resume`` continues
it by hand too). The results of finished runs are kept in
``STATE_DIR/DATASET/state.json`` (default ``docs/reproduction/``, committed
with the page, so the page can be rewritten without the run directories).
Stop it at any time with Ctrl-C: the running run saves a checkpoint, and
the same command started again skips finished runs, resumes the interrupted
one and goes on. Asking for a finished run with other settings (say, other
``--epochs``) is an error: choose another ``--out-dir`` and ``--state-dir``.

Two commands may run at once (say, ``--runs sr-stamp --threads 1`` and
``--runs sr-sat --threads 1`` on two cores): each run is locked while it
trains (a second command skips it), and the state file is re-read and
written under a lock, so each command adds its own records and keeps the
other's. Their epoch times are then not comparable, which is why Table 3
comes from the ``timing`` group, not from the runs.

Exit status: 0 when every planned run is finished and the page is written,
2 on bad input, 130 when interrupted (rerun the same command to continue).
"""

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shlex
import subprocess
import sys
import time

from minisriem.cli import HelpFormatter, limit_threads

GROUPS = {
    "spop": {"kind": "baseline", "label": "S-POP"},
    "itemknn": {"kind": "baseline", "label": "Item-KNN"},
    "sriem-paper": {"kind": "model", "label": "SR-IEM (paper)", "variant": "paper"},
    "sriem-official": {
        "kind": "model",
        "label": "SR-IEM (official code)",
        "variant": "official",
    },
    "sr-stamp": {"kind": "model", "label": "SR-STAMP", "variant": "paper", "importance": "stamp"},
    "sr-sat": {"kind": "model", "label": "SR-SAT", "variant": "paper", "importance": "sat"},
    "timing": {"kind": "timing", "label": "Table 3 timing"},
    # Probes: only when named in --runs, never in the default plan.
    "sriem-all-train": {
        "kind": "model",
        "label": "SR-IEM (paper), all training sessions, last epoch",
        "variant": "paper",
        "valid_fraction": 0.0,
        "optional": True,
    },
}
TIMED_GROUPS = ("sriem-paper", "sriem-official", "sr-stamp", "sr-sat")
"""The models Table 3 times, with the settings of their runs."""
ONLY = {
    "baselines": [g for g, v in GROUPS.items() if v["kind"] == "baseline"],
    "models": [g for g, v in GROUPS.items() if v["kind"] == "model" and not v.get("optional")],
}
STATE_FILE = "state.json"
STATE_FORMAT = "minisriem-reproduce"
DEFAULT_OUT = os.path.join("runs", "reproduce")
DEFAULT_STATE = os.path.join("docs", "reproduction")  # small, committed: survives the runs
DEFAULT_REPORT = os.path.join("docs", "REPRODUCTION.md")
# The PyTorch reference's figures, as written by ../shared/bench/run_torch_reference.sh
# into $BENCH_DIR/bench.json; a copy is kept beside the results so the page can be
# rewritten later (copy a new bench.json there after running the reference again).
DEFAULT_BENCH = os.path.join(DEFAULT_STATE, "torch-bench.json")


# ----------------------------------------------------------------------
# The plan: which runs, with which settings
# ----------------------------------------------------------------------
def plan_runs(groups, seeds, epochs, overrides, recorded=None):
    """The runs of the chosen groups, in the order they are done.

    Parameters
    ----------
    groups : list of str, keys of :data:`GROUPS`
    seeds : list of int; "sriem-paper" runs once per seed, other models once
        with the first seed
    epochs : int, the most epochs of every model run
    overrides : dict, further trainer settings (``d``, ``l``, ``batch_size``,
        ``patience``), recorded with each run
    recorded : set of str, optional; names of finished runs in the state

    Returns
    -------
    list of dict, each with ``name``, ``group``, ``kind`` ("baseline", "model",
    "refit" or "timing"), ``label`` and, for models and timing, ``settings``
    (the trainer's keyword settings; timing: the seed and ``overrides``).

    A model group's seed gets two runs (the refit protocol, as
    ``python -m minisriem.train`` does in one run, here in two so that phase 1
    can be reused): ``GROUP-seedN`` trains without the validation sessions and
    selects the epoch E* on them (phase 1), ``GROUP-seedN-refit`` trains a
    fresh model with the same seed on every training session for E* epochs
    (phase 2; ``"of"`` names the phase-1 run whose E* it takes, its epochs are
    filled in when that run is done). Seeds after the first take the first
    seed's E* (``"of"`` is the first seed's phase-1 run) unless their own
    phase-1 run is already recorded; probes without a validation split get no
    refit run.
    """
    runs = []
    for group in groups:
        spec = GROUPS[group]
        if spec["kind"] == "baseline":
            runs.append({"name": group, "group": group, "kind": "baseline", "label": spec["label"]})
            continue
        if spec["kind"] == "timing":
            settings = {"seed": int(seeds[0]), **overrides}
            runs.append(
                {
                    "name": group,
                    "group": group,
                    "kind": "timing",
                    "label": spec["label"],
                    "settings": settings,
                }
            )
            continue
        for seed in seeds if group == "sriem-paper" else seeds[:1]:
            settings = {
                "variant": spec["variant"],
                "importance": spec.get("importance", "iem"),
                "seed": int(seed),
                "epochs": int(epochs),
                **overrides,
            }
            if "valid_fraction" in spec:
                settings["valid_fraction"] = spec["valid_fraction"]
            name = f"{group}-seed{seed}"
            first = f"{group}-seed{seeds[0]}"
            own = seed == seeds[0] or name in (recorded or ())
            if own:
                runs.append(
                    {
                        "name": name,
                        "group": group,
                        "kind": "model",
                        "label": spec["label"],
                        "settings": settings,
                    }
                )
            if settings.get("valid_fraction", 0.1) > 0:
                refit = {k: v for k, v in settings.items() if k != "epochs"}
                runs.append(
                    {
                        "name": f"{name}-refit",
                        "group": group,
                        "kind": "refit",
                        "label": spec["label"],
                        "of": name if own else first,
                        "settings": {**refit, "valid_fraction": 0.0},
                    }
                )
    return runs


def train_command(dataset, data_dir, settings, run_dir):
    """The ``python -m minisriem.train`` command that makes the same run."""
    parts = ["python", "-m", "minisriem.train", "--dataset", dataset]
    if data_dir:
        parts += ["--data-dir", data_dir]
    for key, value in settings.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            parts += [f"--{flag}", str(value)]
    parts += ["--out", run_dir]
    return shlex.join(parts)


RANKS_DIR = "ranks"
"""Per-example test ranks of each run, ``STATE_DIR/DATASET/ranks/NAME.npz`` (compressed)."""


def save_ranks(state_folder, name, ranks):
    """Keep a run's per-example test ranks (int32), for the paired significance tests."""
    import numpy as np

    from data_tools.fileio import atomic_outputs

    folder = os.path.join(state_folder, RANKS_DIR)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + ".npz")
    with atomic_outputs([path]) as (tmp,):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, ranks=np.asarray(ranks, dtype=np.int32))
    return path


def protocol_of(run):
    """The protocol label of a run's figure (the keys of ``summary.json``)."""
    if run["kind"] == "refit":
        return "refit"
    if run["settings"].get("valid_fraction", 0.1) == 0:
        return "fixed-epochs-all-train"
    return "validation-selected"


def machine_info(threads):
    """The machine and software every number was measured with."""
    import numpy as np

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        pass
    return info


# ----------------------------------------------------------------------
# The state file: what is finished, with its results
# ----------------------------------------------------------------------
def load_state(folder):
    """The state of one dataset's runs, or None when there is none yet.

    Returns
    -------
    dict or None
        ``format``, ``dataset``, ``data_dir``, ``stats`` (Table 1's figures),
        ``invocations`` (command, time, machine of every start) and ``runs``
        (name -> record; ``record["status"]`` is "running" until it is done).
    """
    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        state = json.load(f)
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a {STATE_FORMAT} state file")
    return state


def save_state(folder, state):
    """Write the state atomically (a half-written file never replaces a good one)."""
    from minisriem.checkpoint import write_text

    write_text(os.path.join(folder, STATE_FILE), json.dumps(state, indent=1) + "\n")


@contextlib.contextmanager
def file_lock(path, wait=True):
    """Hold an exclusive ``flock`` on ``path`` (created if missing) inside the block.

    Yields True when the lock is held; with ``wait=False`` yields False at once
    when another process holds it. The lock goes with the process, so a killed
    command never leaves a stale one behind.
    """
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def update_state(folder, change, new):
    """Apply ``change(state)`` to the state on disk and write it, under a lock.

    Another command may have written the file since this one read it, so the
    file is read again inside the lock; ``change`` sets only this command's
    own entries. ``new()`` makes the state of a first run. Returns the state
    as written.
    """
    with file_lock(os.path.join(folder, STATE_FILE + ".lock")):
        state = load_state(folder) or new()
        change(state)
        save_state(folder, state)
    return state


def is_done(record):
    return record is not None and record.get("status") in ("finished", "early-stopped")


# ----------------------------------------------------------------------
# Running one baseline or one model
# ----------------------------------------------------------------------
def _at20(metrics):
    return {k: metrics[k] for k in ("Recall@20", "MRR@20", "Recall@10", "MRR@10") if k in metrics}


def _by_length(ranks, lengths):
    from minisriem.metrics import metrics_by_length

    return {
        g: {"count": m["count"], **_at20(m)}
        for g, m in metrics_by_length(ranks, lengths, ks=(20,)).items()
    }


def run_baseline(run, ds, log, keep_ranks=None):
    """Fit a baseline on the training sessions and rank the test examples.

    S-POP is given whole sessions (padded to the longest test prefix), as
    GRU4Rec's S-POP counts the whole session so far; Item-KNN reads only the
    last item. Item-KNN is also scored without its popularity fallback, as
    GRU4Rec's code does, and with GRU4Rec's regularisation ``lmbd = 20`` and
    100 neighbours (see :class:`~minisriem.baselines.ItemKNN`); these extra
    rows are labelled on the page.

    Returns
    -------
    dict, the run's record
    """
    from minisriem.baselines import ItemKNN, SPop
    from minisriem.metrics import model_ranks, rank_metrics

    record = {"status": "running", "label": run["label"], "extras": {}}
    L = int(ds.test.lengths.max()) if run["group"] == "spop" else 10
    item_seq, item_seq_len, targets = ds.test.padded(L)
    if run["group"] == "spop":
        recommenders = {"main": ("S-POP", SPop())}
    else:
        recommenders = {
            "main": ("Item-KNN", ItemKNN()),
            "no_fallback": (
                "Item-KNN, no popularity fallback (zero scores tie; GRU4Rec's scoring)",
                ItemKNN(fallback=None),
            ),
            "gru4rec_settings": (
                "Item-KNN, GRU4Rec's regularisation (lmbd = 20, 100 neighbours)",
                ItemKNN(k=100, lmbd=20.0),
            ),
        }
    for key, (label, rec) in recommenders.items():
        t0 = time.perf_counter()
        rec.fit(ds.train, ds.n_items)
        t1 = time.perf_counter()
        ranks = model_ranks(rec, item_seq, item_seq_len, targets, batch_size=256)
        t2 = time.perf_counter()
        out = {
            "test": _at20(rank_metrics(ranks)),
            "fit_seconds": t1 - t0,
            "test_seconds": t2 - t1,
            "L": L,
        }
        if key == "main":
            out["by_length"] = _by_length(ranks, ds.test.lengths)
            if keep_ranks is not None:
                keep_ranks(ranks)
            record.update(out)
        else:
            record["extras"][key] = {"label": label, **out}
        log(
            f"{label}: "
            f"R@20 {100 * out['test']['Recall@20']:.2f} MRR@20 {100 * out['test']['MRR@20']:.2f} "
            f"(fit {t1 - t0:.1f}s, test {t2 - t1:.1f}s)"
        )
    record["settings"] = {"L": L}
    record["status"] = "finished"
    return record


def run_model(run, ds, ctx, record):
    """Train (or resume) one model run, then time a test pass on its selected epoch.

    Parameters
    ----------
    run : dict, from :func:`plan_runs`
    ds : data_tools Dataset
    ctx : argparse.Namespace with ``out``, ``data_dir``, ``progress``,
        ``threads``, ``stop_after_steps``, ``log``
    record : dict, this run's record so far (updated in place)

    Returns
    -------
    bool, True when the run is finished (False: interrupted)
    """
    from minisriem.checkpoint import load_model
    from minisriem.metrics import model_ranks, rank_metrics
    from minisriem.workflow import CONFIG_FILE, read_run_config, train

    run_dir = os.path.join(ctx.out, run["name"])
    common = dict(
        data_dir=ctx.data_dir,
        progress=ctx.progress,
        log=ctx.log,
        threads=ctx.threads,
        stop_after_steps=ctx.stop_after_steps,
    )
    if os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        result = train(ds, resume=run_dir, **common)
    else:
        # Phase 1 of the refit protocol is its own run here (the refit is the "-refit" run).
        result = train(ds, out=run_dir, refit=False, **run["settings"], **common)
    if result.status == "interrupted":
        return False

    saved = load_model(run_dir)
    item_seq, item_seq_len, targets = ds.test.padded(saved.config.L)
    t0 = time.perf_counter()
    ranks = model_ranks(saved.model, item_seq, item_seq_len, targets, batch_size=512)
    test_seconds = time.perf_counter() - t0
    summary, history = result.summary, result.history
    train_seconds = [r["train_seconds"] for r in history]
    eval_seconds = [r["eval_seconds"] for r in history]
    save_ranks(ctx.state, run["name"], ranks)
    settings = run["settings"]
    if run["kind"] == "model" and settings.get("valid_fraction", 0.1) > 0:
        settings = {**settings, "refit": False}
    record.update(
        status=result.status,
        protocol=protocol_of(run),
        run_dir=run_dir,
        command=train_command(ds.name, ctx.data_dir, settings, run_dir),
        epochs_run=len(history),
        selected_epoch=summary["selected"]["epoch"],
        selected_by=summary["selected_by"],
        valid=_at20(summary["selected"]["valid"]) if summary["selected"]["valid"] else None,
        test=_at20(summary["selected"]["test"]),
        best_test={k: [float(v), int(e)] for k, (v, e) in summary["best_test"].items()},
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        # From the run's own records: the run may have been trained by other commands.
        wall_seconds=sum(train_seconds) + sum(eval_seconds) + test_seconds,
        threads=read_run_config(run_dir).get("threads"),
        examples_per_epoch=history[0]["examples"],
        curve=[
            {
                "epoch": r["epoch"],
                "lr": r["lr"],
                "loss": r["loss"],
                "valid": _at20(r["valid"]) if r["valid"] else None,
                "test": _at20(r["test"]),
            }
            for r in history
        ],
        test_seconds=test_seconds,
        test_examples=int(len(targets)),
        test_pass=_at20(rank_metrics(ranks)),
        by_length=_by_length(ranks, ds.test.lengths),
    )
    return True


def default_torch_script():
    """``../shared/bench/run_torch_reference.sh`` beside the repository (or under
    ``$MINISRIEM_SHARED``), or None when it is not there."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shared = os.environ.get("MINISRIEM_SHARED") or os.path.join(repo, "..", "shared")
    path = os.path.join(shared, "bench", "run_torch_reference.sh")
    return path if os.path.exists(path) else None


def run_torch_reference(script, log):
    """Run the PyTorch reference's script; its ``bench.json`` figures, or None.

    The script installs torch into its own venv on first use (never into ours)
    and writes ``$BENCH_DIR/bench.json``.
    """
    bench_dir = os.environ.get("BENCH_DIR", "/tmp/sriem-torch-ref")
    log(f"PyTorch reference: bash {script}")
    done = subprocess.run(
        ["bash", script],
        env={**os.environ, "BENCH_DIR": bench_dir},
        capture_output=True,
        text=True,
    )
    path = os.path.join(bench_dir, "bench.json")
    if done.returncode != 0 or not os.path.exists(path):
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        log(f"PyTorch reference failed (exit {done.returncode}): {tail[0]}; its row is left out")
        return None
    with open(path) as f:
        return json.load(f)


def run_timing(run, ds, ctx):
    """Time a training step and the test ranking of every model of Table 3, side by side.

    Each model of :data:`TIMED_GROUPS` is built by the trainer with its run's
    settings (fresh parameters: a step's time does not depend on their values).
    In each of ``ctx.timing_rounds`` rounds every model does
    ``ctx.timing_steps`` training steps on the same batches and then ranks the
    same ``ctx.timing_test`` test examples, so the machine's load falls on all
    of them alike. The median round is scaled to one epoch of the fit split
    and to the whole test set. The PyTorch reference (``ctx.torch_script``)
    then runs once, right after, on synthetic data of DIGINETICA's shape.

    Returns
    -------
    dict, the record: per model ``step_seconds`` and ``test_example_seconds``
    (every round), ``train_epoch_seconds`` and ``test_seconds`` (scaled
    medians); ``torch`` (the reference's ``bench.json``) or None
    """
    import numpy as np

    from data_tools import split_validation
    from minisriem.metrics import model_ranks
    from minisriem.trainer import Trainer, epoch_batches
    from minisriem.workflow import split_settings

    settings = dict(run["settings"])
    steps, rounds, n_test = ctx.timing_steps, ctx.timing_rounds, ctx.timing_test
    fit, valid = split_validation(ds.train, split_settings(settings)[1].valid_fraction)
    trainers = {}
    for group in TIMED_GROUPS:
        spec = GROUPS[group]
        config, options = split_settings(
            {**settings, "variant": spec["variant"], "importance": spec.get("importance", "iem")}
        )
        trainers[group] = Trainer(
            config,
            options,
            None,
            ds.item_ids,
            fit,
            valid,
            ds.test,
            ds.name,
            False,
            ctx.log,
            train_all=ds.train,
        )
    first = trainers[TIMED_GROUPS[0]]
    n_fit, batch_size = len(first.fit), first.config.batch_size
    batches = epoch_batches(n_fit, batch_size, settings["seed"], 0)[: steps + 1]
    test = first.test
    n_test = min(n_test, len(test))
    test_rows = (test.item_seq[:n_test], test.item_seq_len[:n_test], test.targets[:n_test])

    record = {"status": "running", "label": run["label"], "models": {}}
    for group, trainer in trainers.items():  # warm up: compile, allocate the buffers
        trainer.train_step(batches[-1])
        model_ranks(trainer.model, *(a[:512] for a in test_rows), batch_size=512)
        record["models"][group] = {"step_seconds": [], "test_example_seconds": []}
    for r in range(rounds):
        for group, trainer in trainers.items():
            t0 = time.perf_counter()
            for idx in batches[:steps]:
                trainer.train_step(idx)
            t1 = time.perf_counter()
            model_ranks(trainer.model, *test_rows, batch_size=512)
            t2 = time.perf_counter()
            times = record["models"][group]
            times["step_seconds"].append((t1 - t0) / steps)
            times["test_example_seconds"].append((t2 - t1) / n_test)
        ctx.log(
            f"timing round {r + 1}/{rounds}: "
            + ", ".join(
                f"{g} {1e3 * t['step_seconds'][-1]:.1f} ms/step"
                for g, t in record["models"].items()
            )
        )
    n_batches = -(-n_fit // batch_size)
    for times in record["models"].values():
        times["train_epoch_seconds"] = float(np.median(times["step_seconds"])) * n_batches
        times["test_seconds"] = float(np.median(times["test_example_seconds"])) * len(test)
    record.update(
        steps=steps,
        rounds=rounds,
        timed_test_examples=n_test,
        batches_per_epoch=n_batches,
        examples_per_epoch=n_fit,
        test_examples=len(test),
        threads=ctx.threads,
        torch=run_torch_reference(ctx.torch_script, ctx.log) if ctx.torch_script else None,
        status="finished",
    )
    return record


# ----------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minisriem.experiments.reproduce",
        description=(
            "Run the baselines and models of the paper's Table 2, Fig. 2, Fig. 3 and "
            "Table 3, resumably, and write docs/REPRODUCTION.md from the results. "
            "Interrupt at any time; the same command continues."
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--dataset",
        default="diginetica",
        help="diginetica, yoochoose1_64, synthetic (for tests), ...",
    )
    p.add_argument(
        "--data-dir", default=None, help="folder holding DATASET/ (default: $MINISRIEM_DATA)"
    )
    p.add_argument(
        "--runs",
        default=None,
        help=f"comma-separated groups to run (default: all): {', '.join(GROUPS)}",
    )
    p.add_argument(
        "--only", choices=sorted(ONLY), default=None, help="run only the baselines or the models"
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of SR-IEM (paper)")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="most epochs of every model run (default: the trainer's, 10 on real data)",
    )
    p.add_argument("--d", type=int, default=None, help="embedding size (default: 200)")
    p.add_argument("--l", type=int, default=None, help="query/key size (default: 100)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch (default: 128)")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience")
    p.add_argument("--out-dir", default=DEFAULT_OUT, help="runs go to OUT_DIR/DATASET/")
    p.add_argument(
        "--state-dir",
        default=DEFAULT_STATE,
        help="results of finished runs go to STATE_DIR/DATASET/state.json",
    )
    p.add_argument("--report", default=DEFAULT_REPORT, help="the page to write")
    p.add_argument(
        "--bench-json",
        default=DEFAULT_BENCH,
        help="the PyTorch reference's bench.json, for Table 3 (read if present)",
    )
    p.add_argument("--report-only", action="store_true", help="only rewrite the page")
    p.add_argument(
        "--refresh",
        action="store_true",
        help="record finished model runs again from their run directories (no training: "
        "for results recorded by an older version)",
    )
    p.add_argument("--threads", type=int, default=None, help="threads for BLAS and Numba")
    p.add_argument(
        "--timing-steps", type=int, default=30, help="training steps per model and timing round"
    )
    p.add_argument("--timing-rounds", type=int, default=3, help="timing rounds; medians are kept")
    p.add_argument(
        "--timing-test", type=int, default=8192, help="test examples ranked per timing round"
    )
    p.add_argument(
        "--torch-script",
        default=default_torch_script(),
        help="the PyTorch reference's script, run by the timing group ('' to skip)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)
    return p


def _parse_ints(text, what):
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise ValueError(f"give at least one value for {what}")
    return values


def _groups(args):
    if args.runs and args.only:
        raise ValueError("give --runs or --only, not both")
    if args.only:
        return ONLY[args.only]
    if not args.runs:
        return [g for g, v in GROUPS.items() if not v.get("optional")]
    groups = [g.strip() for g in args.runs.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown run group(s) {', '.join(unknown)}; use {', '.join(GROUPS)}")
    return [g for g in GROUPS if g in groups]  # the page's order


def main(argv=None):
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None:
            limit_threads(args.threads)
        groups = _groups(args)
        seeds = _parse_ints(args.seeds, "--seeds")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from data_tools import DataError, load_dataset  # noqa: I001 (after limit_threads)
    from minisriem.experiments import page
    from minisriem.workflow import default_epochs

    log = print
    out = os.path.join(args.out_dir, args.dataset)
    state_folder = os.path.join(args.state_dir, args.dataset)
    try:
        if not args.report_only:
            ds = load_dataset(args.dataset, args.data_dir)
            epochs = args.epochs if args.epochs is not None else default_epochs(args.dataset)
            overrides = {
                k: getattr(args, k)
                for k in ("d", "l", "batch_size", "patience")
                if getattr(args, k) is not None
            }
            recorded = {
                n
                for n, r in ((load_state(state_folder) or {}).get("runs") or {}).items()
                if is_done(r)
            }
            runs = plan_runs(groups, seeds, epochs, overrides, recorded)
            ctx = argparse.Namespace(
                out=out,
                state=state_folder,
                data_dir=args.data_dir,
                progress=not args.no_progress,
                threads=args.threads,
                stop_after_steps=args.stop_after_steps,
                refresh=args.refresh,
                timing_steps=args.timing_steps,
                timing_rounds=args.timing_rounds,
                timing_test=args.timing_test,
                torch_script=args.torch_script or None,
                log=log,
            )
            status = execute(runs, ds, ctx, args, argv)
            if status != 0:
                return status
        path = page.write_page(args.report, args.state_dir, bench_json=args.bench_json)
        log(f"wrote {path}")
    except (DataError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def execute(runs, ds, ctx, args, argv):
    """Do every planned run not finished yet; 0 when all are done, 130 when interrupted.

    A run another command is doing right now (its lock is held) is skipped.
    """
    os.makedirs(ctx.out, exist_ok=True)
    os.makedirs(ctx.state, exist_ok=True)
    command = shlex.join(
        ["python", "-m", "minisriem.experiments.reproduce", *(argv or sys.argv[1:])]
    )
    from minisriem.provenance import source_commit

    invocation = {
        "command": command,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "commit": source_commit(),
        "machine": machine_info(args.threads),
    }

    def new_state():
        return {
            "format": STATE_FORMAT,
            "dataset": ds.name,
            "data_dir": args.data_dir,
            "stats": ds.stats,
            "invocations": [],
            "runs": {},
        }

    def start(state):
        if state["dataset"] != ds.name:
            raise ValueError(f"{ctx.state} holds runs of {state['dataset']}, not {ds.name}")
        state["invocations"].append(invocation)

    def put(name, record):
        def set_record(state):
            state["runs"][name] = record

        update_state(ctx.state, set_record, new_state)

    update_state(ctx.state, start, new_state)
    for run in runs:
        name = run["name"]
        with file_lock(os.path.join(ctx.out, name + ".lock"), wait=False) as held:
            if not held:
                ctx.log(f"{name}: another command is running it, skipped")
                continue
            record = (load_state(ctx.state) or new_state())["runs"].get(name)
            if run["kind"] in ("model", "timing") and record is not None:
                if record["settings"] != run["settings"]:
                    raise ValueError(
                        f"{name} in {ctx.state} was made with {record['settings']}, not "
                        f"{run['settings']}: use another --out-dir and --state-dir, or delete "
                        f"{os.path.join(ctx.out, name)} and its entry in "
                        f"{os.path.join(ctx.state, STATE_FILE)}"
                    )
            refresh = ctx.refresh and run["kind"] in ("model", "refit")
            if is_done(record) and not refresh:
                ctx.log(f"{name}: finished before, skipped")
                continue
            if refresh and not os.path.isdir(os.path.join(ctx.out, name)):
                ctx.log(f"{name}: no run directory to refresh from, kept as recorded")
                continue
            if run["kind"] == "refit":
                of = (load_state(ctx.state) or new_state())["runs"].get(run["of"])
                if not is_done(of):
                    ctx.log(f"{name}: its phase 1 ({run['of']}) is not finished yet, skipped")
                    continue
                run = {**run, "settings": {**run["settings"], "epochs": of["selected_epoch"]}}
                if record is not None and record["settings"] != run["settings"]:
                    raise ValueError(
                        f"{name} in {ctx.state} was made with {record['settings']}, not "
                        f"{run['settings']}: delete {os.path.join(ctx.out, name)} and its entry"
                    )
            ctx.log(f"== {name}: {run['label']} {run.get('settings', '')}")
            started = time.perf_counter()
            finished = True
            if run["kind"] == "baseline":
                record = run_baseline(
                    run, ds, ctx.log, lambda ranks, n=name: save_ranks(ctx.state, n, ranks)
                )
                record["protocol"] = "all-train"
                record["wall_seconds"] = time.perf_counter() - started
            elif run["kind"] == "timing":
                record = run_timing(run, ds, ctx)
                record["settings"] = run["settings"]
                record["wall_seconds"] = time.perf_counter() - started
            else:
                record = record or {"status": "running", "label": run["label"]}
                record["settings"] = run["settings"]
                record["group"] = run["group"]
                if run["kind"] == "refit":
                    record["selection_from"] = run["of"]
                put(name, record)
                finished = run_model(run, ds, ctx, record)
            record["group"] = run["group"]
            record["machine"] = invocation["machine"]
            commits = record.get("commits", [])
            if invocation["commit"] not in commits:
                commits.append(invocation["commit"])
            record["commits"] = commits
            record["commit"] = commits[0] if len(commits) == 1 else "+".join(commits)
            put(name, record)
        if not finished:
            ctx.log(
                f"interrupted during {name}; its checkpoint is saved. "
                f"Run the same command again to continue: {command}"
            )
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
