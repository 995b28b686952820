"""Table 3: the training step and test ranking of every model, timed side by side, and its table.

Each model of :data:`~minisriem.experiments.plan.TIMED_GROUPS` is built by
the trainer with its run's settings; in each round every model does the same
training steps and ranks the same test examples, so the machine's load falls
on all of them alike. The project's PyTorch SR-IEM (``benchmarks/torch_sriem.py``,
torch from the ``bench`` extra or ``--torch-python``) runs right after on the
same examples, for the ratio; ``../shared/bench``'s reference, when present,
runs after it as a second opinion.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from minisriem.experiments.plan import GROUPS, TIMED_GROUPS
from minisriem.experiments.records import finished_records
from minisriem.experiments.state import is_done

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TORCH_SCRIPT = os.path.join("benchmarks", "torch_sriem.py")
"""The project's own PyTorch SR-IEM, relative to the repository (torch: the ``bench`` extra)."""


@dataclass(frozen=True)
class TimingPlan:
    """How the ``timing`` group measures: ``rounds`` rounds of ``steps`` training steps
    and ``test`` ranked test examples per model; ``torch_python`` the Python that runs
    the project's PyTorch reference right after (None: none), ``torch_script`` an
    optional second opinion (``../shared/bench``'s script; None: none)."""

    steps: int = 30
    rounds: int = 3
    test: int = 8192
    torch_script: str = None
    torch_python: str = None

    def __post_init__(self):
        for name in ("steps", "rounds", "test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--timing-{name} must be a positive integer, got {value!r}")


def default_torch_python():
    """The Python for :data:`TORCH_SCRIPT`: ``$MINISRIEM_TORCH_PYTHON``, else this one when
    it can import torch (``pip install -e ".[bench]"``), else None."""
    if os.environ.get("MINISRIEM_TORCH_PYTHON"):
        return os.environ["MINISRIEM_TORCH_PYTHON"]
    return sys.executable if importlib.util.find_spec("torch") is not None else None


def default_torch_script():
    """``../shared/bench/run_torch_reference.sh`` beside the repository (or under
    ``$MINISRIEM_SHARED``), a second opinion, or None when it is not there."""
    shared = os.environ.get("MINISRIEM_SHARED") or os.path.join(REPO, "..", "shared")
    path = os.path.join(shared, "bench", "run_torch_reference.sh")
    return path if os.path.exists(path) else None


def write_reference_data(path, n_items, train_rows, test_rows):
    """The examples the models are timed on, in the layout :data:`TORCH_SCRIPT` reads.

    ``train_rows`` and ``test_rows`` are ``(item_seq, item_seq_len, targets)``;
    written to a temporary name, then renamed.
    """
    import numpy as np

    arrays = {"n_items": np.array(n_items)}
    for split, (seq, lens, targets) in (("train", train_rows), ("test", test_rows)):
        arrays.update(
            {f"{split}_sessions": seq, f"{split}_lengths": lens, f"{split}_targets": targets}
        )
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def last_line_figures(text):
    """The ``name=value`` pairs of the last non-empty line, numbers as floats (the figures
    line the scripts of ``benchmarks/`` end with)."""
    lines = [line for line in text.splitlines() if line.strip()]
    figures = {}
    for pair in lines[-1].split() if lines else []:
        name, _, value = pair.partition("=")
        try:
            figures[name] = float(value)
        except ValueError:
            figures[name] = value
    return figures


def run_own_torch_reference(python, data, batch_size, steps, eval_batches, threads, log):
    """Run the project's PyTorch SR-IEM (:data:`TORCH_SCRIPT`) on ``data``.

    Returns
    -------
    dict or None
        The figures as Table 3 reads them (``torch_step_ms`` and
        ``torch_step_ms_fusedadam``: the median training step with torch's
        default and fused Adam; ``torch_eval_ex_per_s``; ``torch``, the
        version; ``torch_threads``), with ``script`` and the script's own
        ``figures``; None when it failed (the reason is logged)
    """
    cmd = [python, os.path.join(REPO, TORCH_SCRIPT), "--data", data, "--steps", str(steps)]
    cmd += ["--eval-batches", str(eval_batches), "--threads", str(threads)]
    cmd += ["--batch-size", str(batch_size), "--eval-batch-size", "512"]
    log(f"PyTorch reference: {TORCH_SCRIPT} in {python}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    figures = last_line_figures(done.stdout) if done.returncode == 0 else {}
    needed = ("torch_train_ex_per_s", "torch_train_ex_per_s_fused", "torch_eval_ex_per_s")
    if not all(isinstance(figures.get(k), float) for k in needed):
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        log(f"PyTorch reference failed (exit {done.returncode}): {tail[0]}; its row is left out")
        return None
    return {
        "script": TORCH_SCRIPT,
        "torch": figures.get("torch"),
        "torch_threads": int(figures.get("threads", threads)),
        "torch_step_ms": 1e3 * batch_size / figures["torch_train_ex_per_s"],
        "torch_step_ms_fusedadam": 1e3 * batch_size / figures["torch_train_ex_per_s_fused"],
        "torch_eval_ex_per_s": figures["torch_eval_ex_per_s"],
        "figures": figures,
    }


def run_torch_reference(script, log):
    """Run ``../shared/bench``'s PyTorch reference (a second opinion); its ``bench.json``, or None.

    The script installs torch into its own venv on first use (never into ours)
    and writes ``$BENCH_DIR/bench.json``.
    """
    bench_dir = os.environ.get("BENCH_DIR", "/tmp/sriem-torch-ref")
    log(f"PyTorch reference (second opinion): bash {script}")
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


def run_timing(run, ds, plan, threads=None, log=print):
    """Time a training step and the test ranking of every model of Table 3, side by side.

    Each model of :data:`TIMED_GROUPS` is built by the trainer with its run's
    settings (fresh parameters: a step's time does not depend on their values).
    In each of ``plan.rounds`` rounds every model does
    ``plan.steps`` training steps on the same batches and then ranks the
    same ``plan.test`` test examples, so the machine's load falls on all
    of them alike. The median round is scaled to one epoch of the fit split
    and to the whole test set. The project's PyTorch reference
    (:data:`TORCH_SCRIPT`, in ``plan.torch_python``) then runs once, right
    after, on the same training and test examples; ``plan.torch_script``
    (``../shared/bench``), when given, after it.

    Returns
    -------
    dict, the record: per model ``step_seconds`` and ``test_example_seconds``
    (every round), ``train_epoch_seconds`` and ``test_seconds`` (scaled
    medians); ``torch`` (:func:`run_own_torch_reference`) or None;
    ``torch_second_opinion`` (the shared reference's ``bench.json``) or None
    """
    import numpy as np

    from data_tools import split_validation
    from minisriem.metrics import model_ranks
    from minisriem.trainer import Trainer, epoch_batches
    from minisriem.workflow import split_settings

    settings = dict(run["settings"])
    steps, rounds, n_test = plan.steps, plan.rounds, plan.test
    fit, valid = split_validation(ds.train, split_settings(settings)[1].valid_fraction)
    trainers = {}
    for group in TIMED_GROUPS:
        spec = GROUPS[group]
        config, options = split_settings(
            {
                **settings,
                "variant": spec["variant"],
                "importance": spec.get("importance", "iem"),
                **spec.get("settings", {}),
            }
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
            log,
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
        log(
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
        threads=threads,
        torch=_time_torch(plan, first, test_rows, ds.n_items, steps * rounds, threads, log),
        torch_second_opinion=(
            run_torch_reference(plan.torch_script, log) if plan.torch_script else None
        ),
        status="finished",
    )
    return record


def _time_torch(plan, trainer, test_rows, n_items, steps, threads, log):
    """The project's PyTorch reference on the trainer's fit examples and ``test_rows``."""
    if plan.torch_python is None:
        log("PyTorch reference: no Python with torch (pip install -e '.[bench]' or --torch-python)")
        return None
    fit = trainer.fit
    eval_batches = max(1, min(30, len(test_rows[0]) // 512 - 2))
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "timing-examples.npz")
        write_reference_data(
            data, n_items, (fit.item_seq, fit.item_seq_len, fit.targets), test_rows
        )
        return run_own_torch_reference(
            plan.torch_python,
            data,
            trainer.config.batch_size,
            steps,
            eval_batches,
            threads or os.cpu_count(),
            log,
        )


# ----------------------------------------------------------------------
# Table 3 on the page
# ----------------------------------------------------------------------
PAPER_TABLE3 = {"CSRM": (4.91, 18.62, 4.63, 19.32), "SR-GNN": (3.12, 2.89, 2.56, 2.75)}
"""The paper's Table 3: training and test time relative to SR-IEM (YOOCHOOSE, then DIGINETICA)."""


TABLE3_HEADER = [
    "| method | training s / epoch | relative | test s (whole test set) | relative |",
    "|---|---|---|---|---|",
]


def table3(dataset, state, bench):
    timing = state["runs"].get("timing")
    if is_done(timing):
        return _table3_side_by_side(timing)
    return _table3_from_runs(dataset, state, bench)


def _paper_table3_note():
    c, g = PAPER_TABLE3["CSRM"], PAPER_TABLE3["SR-GNN"]
    return (
        "The paper's Table 3 gives only CSRM and SR-GNN relative to SR-IEM (DIGINETICA: "
        f"training {c[2]:.2f} and {g[2]:.2f}, test {c[3]:.2f} and {g[3]:.2f}); we have "
        "neither model."
    )


def _table3_side_by_side(timing):
    """Table 3 from the ``timing`` group: every model timed in one process, in rounds."""
    models = timing["models"]
    base = models["sriem-paper"]
    b_train, b_test = base["train_epoch_seconds"], base["test_seconds"]
    lines = list(TABLE3_HEADER)
    for group, t in models.items():
        tr, te = t["train_epoch_seconds"], t["test_seconds"]
        lines.append(
            f"| {GROUPS[group]['label']} | {tr:.1f} | {tr / b_train:.2f} | "
            f"{te:.1f} | {te / b_test:.2f} |"
        )
    torch = timing.get("torch")
    second = timing.get("torch_second_opinion")
    for name, ref in (("PyTorch reference", torch), ("PyTorch second opinion", second)):
        if not (ref and ref.get("torch_step_ms")):
            continue
        te = timing["test_examples"] / ref["torch_eval_ex_per_s"]
        for key, adam in (("torch_step_ms", "Adam"), ("torch_step_ms_fusedadam", "fused Adam")):
            if ref.get(key):
                tr = ref[key] / 1e3 * timing["batches_per_epoch"]
                lines.append(
                    f"| {name} ({adam}; torch {ref.get('torch', '?')}, "
                    f"{ref.get('torch_threads', '?')} threads) | {tr:.1f} | "
                    f"{tr / b_train:.2f} | {te:.1f} | {te / b_test:.2f} |"
                )
    if torch and torch.get("torch_step_ms") and torch.get("script"):
        torch_note = (
            f" The PyTorch reference, the project's own SR-IEM (`{torch['script']}`), ran in the "
            "same command right after our rounds, on the same training and test examples; its "
            "median step time and evaluation speed are scaled the same way."
        )
        if second and second.get("torch_step_ms"):
            torch_note += (
                " The second opinion (`../shared/bench/run_torch_reference.sh`) ran after it, "
                "on synthetic batches of DIGINETICA's shape."
            )
    elif torch and torch.get("torch_step_ms"):  # a record of the shared reference only
        torch_note = (
            " The PyTorch reference (`../shared/bench/run_torch_reference.sh`) ran in the same "
            "command right after our rounds, on synthetic batches of DIGINETICA's shape; its "
            "median step time and evaluation speed are scaled the same way."
        )
    else:
        torch_note = " The PyTorch reference was not run (no Python with torch, or it failed)."
    threads = timing.get("threads") or "all"
    return (
        "\n".join(lines)
        + f"\n\nMeasured side by side by the `timing` group in one process ({threads} "
        f"threads): in each of {timing['rounds']} rounds, every model does "
        f"{timing['steps']} training steps on the same batches and ranks the same "
        f"{timing['timed_test_examples']} test examples; the median round is scaled to one "
        f"epoch ({timing['batches_per_epoch']} steps) and to the {timing['test_examples']} test "
        "examples. Relative to SR-IEM (paper). The model runs above were made one or two at a "
        "time with different thread counts, so their own epoch times (in the runs table) are "
        "not comparable." + torch_note + " " + _paper_table3_note()
    )


def _table3_from_runs(dataset, state, bench):
    """Table 3 from the runs' own epoch times, until the ``timing`` group has run."""
    import numpy as np

    base = finished_records(state, "sriem-paper")
    if not base:
        return "_Not measured: needs a finished SR-IEM (paper) run._"
    base_name, base = base[0]
    b_train = float(np.mean(base["train_seconds"]))
    b_test = float(base["test_seconds"])
    lines = list(TABLE3_HEADER)
    for group in ("sriem-paper", "sriem-official", "sr-stamp", "sr-sat"):
        recs = finished_records(state, group)
        if not recs:
            continue
        name, r = recs[0]
        tr, te = float(np.mean(r["train_seconds"])), float(r["test_seconds"])
        lines.append(
            f"| {GROUPS[group]['label']} (`{name}`) | {tr:.1f} | {tr / b_train:.2f} | "
            f"{te:.1f} | {te / b_test:.2f} |"
        )
    note = ""
    if bench and dataset == "diginetica" and bench.get("torch_train_ex_per_s"):
        tr = base["examples_per_epoch"] / bench["torch_train_ex_per_s"]
        te = base["test_examples"] / bench["torch_eval_ex_per_s"]
        lines.append(
            f"| PyTorch reference (torch {bench.get('torch', '?')}, "
            f"{bench.get('torch_threads', '?')} threads) | {tr:.1f} | {tr / b_train:.2f} | "
            f"{te:.1f} | {te / b_test:.2f} |"
        )
        note = (
            "\nThe PyTorch row is computed from the `bench.json` of `../shared/bench` "
            "(kept as `docs/reproduction/torch-bench.json`), measured in another run than "
            "ours, so its ratio is indicative only."
        )
    return (
        "\n".join(lines)
        + "\n\nTimes are means over the epochs of each run (training only) and one timed "
        f"pass over the {base['test_examples']} test examples with the selected model, "
        f"relative to `{base_name}`; comparable only when the runs used the same threads on "
        "a quiet machine. `--runs timing` measures them side by side instead. "
        + _paper_table3_note()
        + note
    )
