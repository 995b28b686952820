"""Table 3: the training step and test ranking of every model, timed side by side.

Each model of :data:`~minisriem.experiments.plan.TIMED_GROUPS` is built by
the trainer with its run's settings; in each round every model does the same
training steps and ranks the same test examples, so the machine's load falls
on all of them alike. A PyTorch SR-IEM runs right after, for the ratio.
"""

import json
import os
import subprocess
import time
from dataclasses import dataclass

from minisriem.experiments.plan import GROUPS, TIMED_GROUPS


@dataclass(frozen=True)
class TimingPlan:
    """How the ``timing`` group measures: ``rounds`` rounds of ``steps`` training steps
    and ``test`` ranked test examples per model; ``torch_script`` the PyTorch
    reference to run right after (None: none)."""

    steps: int = 30
    rounds: int = 3
    test: int = 8192
    torch_script: str = None

    def __post_init__(self):
        for name in ("steps", "rounds", "test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--timing-{name} must be a positive integer, got {value!r}")


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


def run_timing(run, ds, plan, threads=None, log=print):
    """Time a training step and the test ranking of every model of Table 3, side by side.

    Each model of :data:`TIMED_GROUPS` is built by the trainer with its run's
    settings (fresh parameters: a step's time does not depend on their values).
    In each of ``plan.rounds`` rounds every model does
    ``plan.steps`` training steps on the same batches and then ranks the
    same ``plan.test`` test examples, so the machine's load falls on all
    of them alike. The median round is scaled to one epoch of the fit split
    and to the whole test set. The PyTorch reference (``plan.torch_script``)
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
        torch=run_torch_reference(plan.torch_script, log) if plan.torch_script else None,
        status="finished",
    )
    return record
