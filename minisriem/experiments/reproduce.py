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

Exit status: 0 when every planned run is finished and the page is written,
2 on bad input, 130 when interrupted (rerun the same command to continue).
"""

import argparse
import json
import os
import platform
import shlex
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
}
ONLY = {
    "baselines": [g for g, v in GROUPS.items() if v["kind"] == "baseline"],
    "models": [g for g, v in GROUPS.items() if v["kind"] == "model"],
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
def plan_runs(groups, seeds, epochs, overrides):
    """The runs of the chosen groups, in the order they are done.

    Parameters
    ----------
    groups : list of str, keys of :data:`GROUPS`
    seeds : list of int; "sriem-paper" runs once per seed, other models once
        with the first seed
    epochs : int, the most epochs of every model run
    overrides : dict, further trainer settings (``d``, ``l``, ``batch_size``,
        ``patience``), recorded with each run

    Returns
    -------
    list of dict, each with ``name``, ``group``, ``kind``, ``label`` and
    ``settings`` (the trainer's keyword settings for a model run)
    """
    runs = []
    for group in groups:
        spec = GROUPS[group]
        if spec["kind"] == "baseline":
            runs.append({"name": group, "group": group, "kind": "baseline", "label": spec["label"]})
            continue
        for seed in seeds if group == "sriem-paper" else seeds[:1]:
            settings = {
                "variant": spec["variant"],
                "importance": spec.get("importance", "iem"),
                "seed": int(seed),
                "epochs": int(epochs),
                **overrides,
            }
            runs.append(
                {
                    "name": f"{group}-seed{seed}",
                    "group": group,
                    "kind": "model",
                    "label": spec["label"],
                    "settings": settings,
                }
            )
    return runs


def train_command(dataset, data_dir, settings, run_dir):
    """The ``python -m minisriem.train`` command that makes the same run."""
    parts = ["python", "-m", "minisriem.train", "--dataset", dataset]
    if data_dir:
        parts += ["--data-dir", data_dir]
    for key, value in settings.items():
        parts += [f"--{key.replace('_', '-')}", str(value)]
    parts += ["--out", run_dir]
    return shlex.join(parts)


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


def run_baseline(run, ds, log):
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
    from minisriem.workflow import CONFIG_FILE, train

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
        result = train(ds, out=run_dir, **run["settings"], **common)
    if result.status == "interrupted":
        return False

    saved = load_model(run_dir)
    item_seq, item_seq_len, targets = ds.test.padded(saved.config.L)
    t0 = time.perf_counter()
    ranks = model_ranks(saved.model, item_seq, item_seq_len, targets, batch_size=512)
    test_seconds = time.perf_counter() - t0
    summary, history = result.summary, result.history
    record.update(
        status=result.status,
        run_dir=run_dir,
        command=train_command(ds.name, ctx.data_dir, run["settings"], run_dir),
        epochs_run=len(history),
        selected_epoch=summary["selected"]["epoch"],
        selected_by=summary["selected_by"],
        valid=_at20(summary["selected"]["valid"]) if summary["selected"]["valid"] else None,
        test=_at20(summary["selected"]["test"]),
        best_test={k: [float(v), int(e)] for k, (v, e) in summary["best_test"].items()},
        train_seconds=[r["train_seconds"] for r in history],
        eval_seconds=[r["eval_seconds"] for r in history],
        examples_per_epoch=history[0]["examples"],
        test_seconds=test_seconds,
        test_examples=int(len(targets)),
        test_pass=_at20(rank_metrics(ranks)),
        by_length=_by_length(ranks, ds.test.lengths),
    )
    return True


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
    p.add_argument("--threads", type=int, default=None, help="threads for BLAS and Numba")
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
        return list(GROUPS)
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
            runs = plan_runs(groups, seeds, epochs, overrides)
            ctx = argparse.Namespace(
                out=out,
                state=state_folder,
                data_dir=args.data_dir,
                progress=not args.no_progress,
                threads=args.threads,
                stop_after_steps=args.stop_after_steps,
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
    """Do every planned run not finished yet; 0 when all are done, 130 when interrupted."""
    os.makedirs(ctx.out, exist_ok=True)
    os.makedirs(ctx.state, exist_ok=True)
    state = load_state(ctx.state) or {
        "format": STATE_FORMAT,
        "dataset": ds.name,
        "data_dir": args.data_dir,
        "stats": ds.stats,
        "invocations": [],
        "runs": {},
    }
    if state["dataset"] != ds.name:
        raise ValueError(f"{ctx.state} holds runs of {state['dataset']}, not {ds.name}")
    command = shlex.join(
        ["python", "-m", "minisriem.experiments.reproduce", *(argv or sys.argv[1:])]
    )
    state["invocations"].append(
        {
            "command": command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": machine_info(args.threads),
        }
    )
    save_state(ctx.state, state)
    for run in runs:
        record = state["runs"].get(run["name"])
        if run["kind"] == "model" and record is not None and record["settings"] != run["settings"]:
            raise ValueError(
                f"{run['name']} in {ctx.state} was started with {record['settings']}, not "
                f"{run['settings']}: use another --out-dir, or delete "
                f"{os.path.join(ctx.out, run['name'])} and its entry in "
                f"{os.path.join(ctx.state, STATE_FILE)}"
            )
        if is_done(record):
            ctx.log(f"{run['name']}: finished before, skipped")
            continue
        ctx.log(f"== {run['name']}: {run['label']} {run.get('settings', '')}")
        started = time.perf_counter()
        if run["kind"] == "baseline":
            record = run_baseline(run, ds, ctx.log)
            finished = True
        else:
            if record is None:
                record = {"status": "running", "label": run["label"], "wall_seconds": 0.0}
            record["settings"] = run["settings"]
            record["group"] = run["group"]
            state["runs"][run["name"]] = record
            save_state(ctx.state, state)
            finished = run_model(run, ds, ctx, record)
        record["group"] = run["group"]
        record["wall_seconds"] = record.get("wall_seconds", 0.0) + time.perf_counter() - started
        record["machine"] = state["invocations"][-1]["machine"]
        state["runs"][run["name"]] = record
        save_state(ctx.state, state)
        if not finished:
            ctx.log(
                f"interrupted during {run['name']}; its checkpoint is saved. "
                f"Run the same command again to continue: {command}"
            )
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
