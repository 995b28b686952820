"""minisriem against PyTorch, side by side in one run, on the same data.

    pip install -e ".[bench]"                       # torch==2.13.0, the CPU build
    python benchmarks/compare_torch.py              # 3 rounds, 100 training steps each

Each round times, one after the other so that all see the same machine load
as nearly as possible: the project's own PyTorch SR-IEM
(``benchmarks/torch_sriem.py``: float32, 2 threads, torch's default and fused
Adam), then minisriem's ``bench_train.py`` and ``bench_eval.py``, on one
data file of DIGINETICA's shape that this script writes first. Ratios are
computed per round and their medians reported. ``--baseline DIR`` times
another checkout's ``bench_train.py`` and ``bench_eval.py`` in the same
rounds (before/after figures measured side by side).

A second opinion, when it is there: a ``shared/bench`` directory next to the
repository (or where ``--shared`` / ``MINISRIEM_SHARED`` points) holding
``run_torch_reference.sh``, an independent PyTorch reference; it is timed in
the same rounds and the ratios against it are reported as well. Without it
the script compares with the project's own reference only.

The OpenBLAS variables ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are
removed from the environment of every timed command, on both sides (a
user's machine does not set them). torch runs in the Python given by
``--torch-python`` (default: this one). The last line holds the figures as
``name=value`` pairs.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _common import N_ITEMS, synthetic_split  # noqa: E402

from minisriem.experiments.timing import last_line_figures  # noqa: E402

UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
N_TRAIN, N_TEST = 100_000, 20_000  # enough distinct batches; speed depends on shapes only


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    p.add_argument("--steps", type=int, default=100, help="timed training steps per side")
    p.add_argument("--eval-batches", type=int, default=30, help="timed evaluation batches")
    p.add_argument(
        "--torch-python",
        default=os.environ.get("MINISRIEM_TORCH_PYTHON", sys.executable),
        help="the Python that has torch (default: this one; env MINISRIEM_TORCH_PYTHON)",
    )
    p.add_argument(
        "--shared",
        default=os.environ.get("MINISRIEM_SHARED", ROOT.parent / "shared"),
        help="where the optional second reference lives (its bench/run_torch_reference.sh)",
    )
    p.add_argument("--no-shared", action="store_true", help="skip the second reference")
    p.add_argument(
        "--baseline",
        default=None,
        help="another checkout of minisriem (e.g. an older commit) to time in the same rounds",
    )
    p.add_argument(
        "--bench-dir",
        default=os.environ.get("BENCH_DIR", Path(tempfile.gettempdir()) / "minisriem-bench"),
        help="where the data file (and the second reference's files) go",
    )
    return p.parse_args(argv)


def write_data(path):
    """DIGINETICA-shaped synthetic sessions in the layout both sides read."""
    train = synthetic_split(N_TRAIN, seed=0)
    test = synthetic_split(N_TEST, seed=1)
    arrays = {"n_items": np.array(N_ITEMS)}
    for split, (seq, lens, targets) in (("train", train), ("test", test)):
        arrays.update(
            {f"{split}_sessions": seq, f"{split}_lengths": lens, f"{split}_targets": targets}
        )
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def run(cmd, env):
    """Run ``cmd``, echo its output, and return the ``name=value`` pairs of its last line."""
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    out = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
        raise SystemExit(f"error: failed: {' '.join(str(c) for c in cmd)}")
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    for line in lines[-14:]:
        print("    " + line)
    return last_line_figures(out.stdout)


def has_torch(python):
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def main(argv=None):
    args = parse_args(argv)
    if not has_torch(args.torch_python):
        raise SystemExit(
            f"error: {args.torch_python} cannot import torch: pip install -e '.[bench]'"
            " (torch==2.13.0, CPU), or pass --torch-python"
        )
    shared = Path(args.shared) / "bench" / "run_torch_reference.sh"
    second = not args.no_shared and shared.exists()
    print(f"second reference: {shared if second else 'none (not found or --no-shared)'}")
    bench_dir = Path(args.bench_dir)
    bench_dir.mkdir(parents=True, exist_ok=True)
    data = bench_dir / "minisriem-synth.npz"
    if not data.exists():
        write_data(data)
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["BENCH_DIR"] = str(bench_dir)
    py = sys.executable
    own_torch = [args.torch_python, HERE / "torch_sriem.py", "--data", data]
    own_torch += ["--steps", args.steps, "--eval-batches", args.eval_batches]
    shared_torch = ["bash", shared, "--skip-numpy", "--warmup", "10", "--iters", args.steps]
    shared_torch += ["--eval-iters", args.eval_batches]
    ours_train = [py, HERE / "bench_train.py", "--steps", args.steps, "--repeats", "1"]
    ours_train += ["--breakdown-steps", "0", "--data", data]
    ours_eval = [py, HERE / "bench_eval.py", "--batches", args.eval_batches]
    ours_eval += ["--repeats", "1", "--data", data]

    if args.baseline:
        base = Path(args.baseline) / "benchmarks"
        base_train = [py, base / "bench_train.py"] + ours_train[2:]
        base_eval = [py, base / "bench_eval.py"] + ours_eval[2:]

    rows = []
    for r in range(args.rounds):
        print(f"\n=== round {r + 1} of {args.rounds} ===", flush=True)
        row = {"load_1min": os.getloadavg()[0]}
        if second:
            ref = run(shared_torch, env)
            row["shared_train"] = ref["torch_train_ex_per_s"]
            row["shared_train_fused"] = ref["torch_train_ex_per_s_fusedadam"]
            row["shared_eval"] = ref["torch_eval_ex_per_s"]
        ref = run(own_torch, env)
        row["torch_train"] = ref["torch_train_ex_per_s"]
        row["torch_train_fused"] = ref["torch_train_ex_per_s_fused"]
        row["torch_eval"] = ref["torch_eval_ex_per_s"]
        if args.baseline:
            row["baseline_train"] = run(base_train, env)["train_examples_per_s"]
            row["baseline_eval"] = run(base_eval, env)["eval_examples_per_s"]
        train = run(ours_train, env)
        evaluation = run(ours_eval, env)
        row["ours_train"] = train["train_examples_per_s"]
        row["ours_eval"] = evaluation["eval_examples_per_s"]
        row["peak_rss_mib"] = max(train["peak_rss_mib"], evaluation["peak_rss_mib"])
        row["train_vs_fused"] = row["ours_train"] / row["torch_train_fused"]
        row["train_vs_default"] = row["ours_train"] / row["torch_train"]
        row["eval_ratio"] = row["ours_eval"] / row["torch_eval"]
        if args.baseline:
            row["baseline_train_vs_fused"] = row["baseline_train"] / row["torch_train_fused"]
            row["baseline_eval_ratio"] = row["baseline_eval"] / row["torch_eval"]
            row["speedup_train"] = row["ours_train"] / row["baseline_train"]
            row["speedup_eval"] = row["ours_eval"] / row["baseline_eval"]
        if second:
            row["shared_train_vs_fused"] = row["ours_train"] / row["shared_train_fused"]
            row["shared_train_vs_default"] = row["ours_train"] / row["shared_train"]
            row["shared_eval_ratio"] = row["ours_eval"] / row["shared_eval"]
            if args.baseline:
                row["baseline_shared_train_vs_fused"] = (
                    row["baseline_train"] / row["shared_train_fused"]
                )
                row["baseline_shared_eval_ratio"] = row["baseline_eval"] / row["shared_eval"]
        rows.append(row)

    print("\nexamples/s and ratios per round (float32, 2 threads; batch 128, eval batch 512):")
    names = list(rows[0])
    width = max(len(name) for name in names) + 2
    for name in names:
        values = [row[name] for row in rows]
        cells = " ".join(f"{v:10.2f}" for v in values)
        print(f"  {name:{width}s} {cells}   median {statistics.median(values):10.2f}")
    med = {name: statistics.median(row[name] for row in rows) for name in names}
    n_train = 719_470
    epoch_s, torch_epoch_s = n_train / med["ours_train"], n_train / med["torch_train_fused"]
    print(
        f"\nminisriem trains {med['train_vs_fused']:.2f}x as fast as the project's PyTorch SR-IEM"
        f" with fused Adam ({med['train_vs_default']:.2f}x its default Adam) and evaluates"
        f" {med['eval_ratio']:.2f}x as fast; one DIGINETICA epoch: {epoch_s:.0f} s"
        f" (torch fused: {torch_epoch_s:.0f} s)"
    )
    if second:
        print(
            f"against the second reference: training {med['shared_train_vs_fused']:.2f}x"
            f" (fused Adam), {med['shared_train_vs_default']:.2f}x (default Adam),"
            f" evaluation {med['shared_eval_ratio']:.2f}x"
        )
    if args.baseline:
        print(
            f"the baseline ({args.baseline}): training {med['baseline_train_vs_fused']:.2f}x"
            f" torch's fused Adam, evaluation {med['baseline_eval_ratio']:.2f}x; this checkout"
            f" trains {med['speedup_train']:.2f}x and evaluates {med['speedup_eval']:.2f}x as fast"
        )
    figures = {"rounds": args.rounds, "load_1min": round(med["load_1min"], 2)}
    figures.update({name: round(value, 2) for name, value in med.items() if name != "load_1min"})
    figures["epoch_s"] = round(epoch_s, 1)
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    main()
