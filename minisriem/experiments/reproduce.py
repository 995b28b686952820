"""Reproduce the paper's Table 2, Fig. 2, Fig. 3 and Table 3 with one command.

    python -m minisriem.experiments.reproduce --dataset diginetica --data-dir DATA_DIR

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
probe-whole-sessions, probe-released-loader
                probes, only when named: SR-IEM (paper) reading L = 69 items,
                or with batch 256 and no shuffling
probe-ties      a probe, only when named: the refit seed-0 model's scores
                ranked under three tie rules (no training)
sriem-plus      only when named: SR-IEM+ (issue #12; ``train --preset
                sriem-plus``), once per seed, a Table 2 row "SR-IEM+"
plus-no-norm, plus-no-dropout, plus-paper-importance
                only when named (DIGINETICA, one seed): SR-IEM+ with one
                addition switched off, for the page's ablation table
==============  ==============================================================

Each seed of a model group is two runs, the refit protocol's two phases:
``GROUP-seedN`` selects the epoch count E* on the validation split, and
``GROUP-seedN-refit`` trains on every training session for E* epochs (see
:func:`minisriem.experiments.plan.plan_runs`).

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
import os
import platform
import shlex
import sys
import time

from minisriem import cli
from minisriem.config import Config, TimingOptions, TrainOptions
from minisriem.experiments.plan import GROUPS, ONLY, plan_runs
from minisriem.experiments.state import (
    STATE_FILE,
    STATE_FORMAT,
    file_lock,
    is_done,
    load_state,
    update_state,
)
from minisriem.experiments.timing import default_torch_python, default_torch_script

DEFAULT_OUT = os.path.join("runs", "reproduce")
DEFAULT_STATE = os.path.join("docs", "reproduction")  # small, committed: survives the runs
DEFAULT_REPORT = os.path.join("docs", "REPRODUCTION.md")
# The PyTorch reference's figures, as written by ../shared/bench/run_torch_reference.sh
# into $BENCH_DIR/bench.json; a copy is kept beside the results so the page can be
# rewritten later (copy a new bench.json there after running the reference again).
DEFAULT_BENCH = os.path.join(DEFAULT_STATE, "torch-bench.json")


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
        formatter_class=cli.HelpFormatter,
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
    p.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds of SR-IEM (paper) and SR-IEM+"
    )
    cli.add_settings(
        p, TrainOptions, ["epochs", "patience"], defaults={"epochs": None, "patience": None}
    )
    cli.add_settings(
        p,
        Config,
        ["d", "l", "batch_size"],
        defaults={"d": None, "l": None, "batch_size": None},
        flags={"d": ("--d",), "l": ("--l",)},
    )
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
    p.add_argument(
        "--no-refit",
        action="store_true",
        help="phase 1 of each model run only, no refit (settings compared on validation)",
    )
    p.add_argument("--report-only", action="store_true", help="only rewrite the page")
    p.add_argument(
        "--refresh",
        action="store_true",
        help="record finished model runs again from their run directories (no training), and "
        "fit the baselines again (for results recorded by an older version)",
    )
    cli.add_threads_option(p)
    cli.add_settings(p, TimingOptions)
    p.add_argument(
        "--torch-python",
        default=default_torch_python(),
        help="the Python with torch that runs benchmarks/torch_sriem.py in the timing group "
        "(default: $MINISRIEM_TORCH_PYTHON, or this one if it has torch; '' to skip)",
    )
    p.add_argument(
        "--torch-script",
        default=default_torch_script(),
        help="a second PyTorch reference (../shared/bench/run_torch_reference.sh), run after "
        "the project's own when present ('' to skip)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)
    return p


def _parse_ints(text, what, low=0, high=2**32 - 1):
    values = []
    for x in text.split(","):
        x = x.strip()
        if not x:
            continue
        if not (x.isascii() and x.isdigit()) or not low <= int(x) <= high:
            raise ValueError(
                f"{what} must be comma-separated integers in [{low}, {high}], got {text!r}"
            )
        values.append(int(x))
    if not values:
        raise ValueError(f"give at least one value for {what}")
    return values


def _folder_key(dataset, ds_name):
    """The dataset's folder name under OUT_DIR and STATE_DIR: the name given, or (for a
    prepared path) the dataset's own name; never a path that leaves those folders."""
    key = dataset if os.sep not in dataset and "/" not in dataset else ds_name
    if not key or key in (".", "..") or os.sep in key or "/" in key:
        raise ValueError(
            f"dataset name {key!r} cannot name a folder under --out-dir and --state-dir"
        )
    return key


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

    def body():
        groups = _groups(args)
        seeds = _parse_ints(args.seeds, "--seeds")
        try:
            return _reproduce(args, argv, groups, seeds)
        except KeyboardInterrupt:
            print("interrupted; run the same command again to continue", file=sys.stderr)
            return 130

    return cli.run(body, args.threads)


def _reproduce(args, argv, groups, seeds):
    from data_tools import load_dataset
    from minisriem.experiments import page
    from minisriem.experiments.timing import TimingPlan
    from minisriem.workflow import default_epochs

    if not args.report_only:
        timing = TimingPlan(
            args.timing_steps,
            args.timing_rounds,
            args.timing_test,
            args.torch_script or None,
            args.torch_python or None,
        )
        ds = load_dataset(args.dataset, args.data_dir)
        key = _folder_key(args.dataset, ds.name)
        epochs = args.epochs if args.epochs is not None else default_epochs(args.dataset)
        overrides = {
            k: getattr(args, k)
            for k in ("d", "l", "batch_size", "patience")
            if getattr(args, k) is not None
        }
        job = Reproduction(
            ds,
            out=os.path.join(args.out_dir, key),
            state_dir=os.path.join(args.state_dir, key),
            data_dir=args.data_dir,
            threads=args.threads,
            progress=not args.no_progress,
            refresh=args.refresh,
            stop_after_steps=args.stop_after_steps,
            timing=timing,
            command=shlex.join(
                ["python", "-m", "minisriem.experiments.reproduce", *(argv or sys.argv[1:])]
            ),
        )
        runs = plan_runs(
            groups, seeds, epochs, overrides, job.finished_names(), refit=not args.no_refit
        )
        status = job.execute(runs)
        if status != 0:
            return status
    path = page.write_page(args.report, args.state_dir, bench_json=args.bench_json)
    print(f"wrote {path}")
    return 0


class Reproduction:
    """One command's work on one dataset: do the planned runs, record each in the state.

    Parameters
    ----------
    ds : data_tools Dataset
    out : str, folder of this dataset's run directories (``OUT_DIR/DATASET``)
    state_dir : str, folder of this dataset's ``state.json`` (``STATE_DIR/DATASET``)
    data_dir : str or None, as given (recorded, and passed to the trainer)
    threads : int or None; progress : bool; refresh : bool (re-record finished
        model runs from their directories); stop_after_steps : int or None (tests)
    timing : :class:`~minisriem.experiments.timing.TimingPlan`
    command : str, this command line (recorded)
    log : callable taking one str
    """

    def __init__(
        self,
        ds,
        *,
        out,
        state_dir,
        data_dir=None,
        threads=None,
        progress=True,
        refresh=False,
        stop_after_steps=None,
        timing=None,
        command="",
        log=print,
    ):
        from minisriem.provenance import source_commit

        self.ds, self.out, self.state_dir, self.data_dir = ds, out, state_dir, data_dir
        self.threads, self.progress, self.refresh = threads, progress, refresh
        self.stop_after_steps, self.timing = stop_after_steps, timing
        self.command, self.log = command, log
        self.invocation = {
            "command": command,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "commit": source_commit(),
            "machine": machine_info(threads),
        }

    def new_state(self):
        return {
            "format": STATE_FORMAT,
            "dataset": self.ds.name,
            "data_dir": self.data_dir,
            "stats": self.ds.stats,
            "invocations": [],
            "runs": {},
        }

    def records(self):
        return (load_state(self.state_dir) or self.new_state())["runs"]

    def finished_names(self):
        return {name for name, r in self.records().items() if is_done(r)}

    def put(self, name, record):
        def set_record(state):
            state["runs"][name] = record

        update_state(self.state_dir, set_record, self.new_state)

    def execute(self, runs):
        """Do every planned run not finished yet; 0 when all are done, 130 when interrupted.

        A run another command is doing right now (its lock is held) is skipped.
        """
        os.makedirs(self.out, exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)

        def start(state):
            if state["dataset"] != self.ds.name:
                raise ValueError(
                    f"{self.state_dir} holds runs of {state['dataset']}, not {self.ds.name}"
                )
            state["invocations"].append(self.invocation)

        update_state(self.state_dir, start, self.new_state)
        for run in runs:
            with file_lock(os.path.join(self.out, run["name"] + ".lock"), wait=False) as held:
                if not held:
                    self.log(f"{run['name']}: another command is running it, skipped")
                    continue
                if not self.do(run):
                    self.log(
                        f"interrupted during {run['name']}; its checkpoint is saved. "
                        f"Run the same command again to continue: {self.command}"
                    )
                    return 130
        return 0

    def _check_settings(self, run, record):
        """A recorded run made with other settings is an error, unless nothing of it exists."""
        if record is None or record.get("settings") == run["settings"]:
            return
        run_dir = os.path.join(self.out, run["name"])
        if not is_done(record) and not os.path.isdir(run_dir):
            return  # a record left by a command that failed before training: replace it
        raise ValueError(
            f"{run['name']} in {self.state_dir} was made with {record['settings']}, not "
            f"{run['settings']}: use another --out-dir and --state-dir, or delete "
            f"{run_dir} and its entry in {os.path.join(self.state_dir, STATE_FILE)}"
        )

    def do(self, run):
        """Do one run unless it is finished; False when it was interrupted."""
        from minisriem.experiments.runners import run_baseline, run_model, run_tie_probe
        from minisriem.experiments.state import save_ranks
        from minisriem.experiments.timing import run_timing

        name = run["name"]
        records = self.records()
        record = records.get(name)
        if run["kind"] == "refit":
            of = records.get(run["of"])
            if not is_done(of):
                self.log(f"{name}: its phase 1 ({run['of']}) is not finished yet, skipped")
                return True
            run = {**run, "settings": {**run["settings"], "epochs": of["selected_epoch"]}}
        if run["kind"] == "ties" and not is_done(records.get(run["of"])):
            self.log(f"{name}: needs {run['of']} finished first, skipped")
            return True
        if run["kind"] not in ("baseline", "ties"):
            self._check_settings(run, record)
        # Baselines are cheap: a refresh fits them again (recording what newer code records).
        refresh = self.refresh and run["kind"] in ("model", "refit", "baseline")
        if is_done(record) and not refresh:
            self.log(f"{name}: finished before, skipped")
            return True
        if (
            refresh
            and run["kind"] != "baseline"
            and not os.path.isdir(os.path.join(self.out, name))
        ):
            self.log(f"{name}: no run directory to refresh from, kept as recorded")
            return True
        self.log(f"== {name}: {run['label']} {run.get('settings', '')}")
        started = time.perf_counter()
        finished = True
        if run["kind"] == "baseline":
            record = run_baseline(
                run, self.ds, self.log, lambda ranks: save_ranks(self.state_dir, name, ranks)
            )
            record["protocol"] = "all-train"
            record["wall_seconds"] = time.perf_counter() - started
        elif run["kind"] == "ties":
            record = run_tie_probe(run, self.ds, self.out, self.log)
            record["wall_seconds"] = time.perf_counter() - started
        elif run["kind"] == "timing":
            record = run_timing(run, self.ds, self.timing, self.threads, self.log)
            record["settings"] = run["settings"]
            record["wall_seconds"] = time.perf_counter() - started
        else:
            record = record or {"status": "running", "label": run["label"]}
            record["settings"] = run["settings"]
            record["group"] = run["group"]
            if run["kind"] == "refit":
                record["selection_from"] = run["of"]
            self.put(name, record)
            finished = run_model(
                run,
                self.ds,
                record,
                out=self.out,
                state_dir=self.state_dir,
                data_dir=self.data_dir,
                threads=self.threads,
                progress=self.progress,
                stop_after_steps=self.stop_after_steps,
                log=self.log,
            )
        record["group"] = run["group"]
        record["machine"] = self.invocation["machine"]
        commits = record.get("commits", [])
        if self.invocation["commit"] not in commits:
            commits.append(self.invocation["commit"])
        record["commits"] = commits
        record["commit"] = "+".join(str(c) for c in commits)
        self.put(name, record)
        return finished


if __name__ == "__main__":
    sys.exit(main())
