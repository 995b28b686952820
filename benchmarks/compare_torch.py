"""minisriem against the PyTorch reference, side by side in one run, on the same data.

    python benchmarks/compare_torch.py                 # 3 rounds, 100 training steps each

Each round runs the PyTorch reference (``shared/bench/run_torch_reference.sh``:
torch in its own venv, float32, 2 threads, default and fused Adam), then
``bench_train.py`` and ``bench_eval.py`` on the reference's data file, so both
sides see the same machine load as nearly as possible. Ratios are computed
per round and their medians reported. The OpenBLAS variables
``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are removed from the
environment of every timed command, on both sides (a user's machine does not
set them). ``shared/`` is found at ``../shared`` next to the repository, or
where ``MINISRIEM_SHARED`` points.

The last line holds the figures as ``name=value`` pairs.
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    p.add_argument("--steps", type=int, default=100, help="timed training steps per side")
    p.add_argument("--eval-batches", type=int, default=30, help="timed evaluation batches")
    p.add_argument("--shared", default=os.environ.get("MINISRIEM_SHARED", ROOT.parent / "shared"))
    p.add_argument("--bench-dir", default=os.environ.get("BENCH_DIR", "/tmp/sriem-torch-ref"))
    return p.parse_args(argv)


def run(cmd, env):
    """Run ``cmd``, echo its output, and return the ``name=value`` pairs of its last line."""
    print("$ " + " ".join(str(c) for c in cmd), flush=True)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
        raise SystemExit(f"failed: {cmd}")
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    for line in lines[-14:]:
        print("    " + line)
    figures = {}
    for pair in lines[-1].split():
        name, _, value = pair.partition("=")
        try:
            figures[name] = float(value)
        except ValueError:
            figures[name] = value
    return figures


def main(argv=None):
    args = parse_args(argv)
    bench = Path(args.shared) / "bench" / "run_torch_reference.sh"
    if not bench.exists():
        raise SystemExit(f"{bench} not found: pass --shared or set MINISRIEM_SHARED")
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env["BENCH_DIR"] = str(args.bench_dir)
    data = Path(args.bench_dir) / "synth.npz"
    py = sys.executable
    torch_cmd = ["bash", str(bench), "--skip-numpy", "--warmup", "10", "--iters", str(args.steps)]
    torch_cmd += ["--eval-iters", str(args.eval_batches)]
    ours_train = [py, str(HERE / "bench_train.py"), "--steps", str(args.steps), "--repeats", "1"]
    ours_train += ["--breakdown-steps", "0", "--data", str(data)]
    ours_eval = [py, str(HERE / "bench_eval.py"), "--batches", str(args.eval_batches)]
    ours_eval += ["--repeats", "1", "--data", str(data)]

    rows = []
    for r in range(args.rounds):
        print(f"\n=== round {r + 1} of {args.rounds} ===", flush=True)
        torch = run(torch_cmd, env)  # first: it writes the data file on its first run
        train = run(ours_train, env)
        evaluation = run(ours_eval, env)
        rows.append(
            {
                "torch_train": torch["torch_train_ex_per_s"],
                "torch_train_fused": torch["torch_train_ex_per_s_fusedadam"],
                "torch_eval": torch["torch_eval_ex_per_s"],
                "ours_train": train["train_examples_per_s"],
                "ours_eval": evaluation["eval_examples_per_s"],
                "peak_rss_mib": train["peak_rss_mib"],
            }
        )
        row = rows[-1]
        row["train_vs_fused"] = row["ours_train"] / row["torch_train_fused"]
        row["train_vs_default"] = row["ours_train"] / row["torch_train"]
        row["eval_ratio"] = row["ours_eval"] / row["torch_eval"]

    print("\nexamples/s per round (float32, 2 threads; torch batch 128 / eval batch 512):")
    names = list(rows[0])
    print("  " + " ".join(f"{name:>17s}" for name in names))
    for row in rows:
        print("  " + " ".join(f"{row[name]:17.2f}" for name in names))
    med = {name: statistics.median(row[name] for row in rows) for name in names}
    print("  " + " ".join(f"{med[name]:17.2f}" for name in names) + "   <- medians")
    n_train = 719_470
    epoch_s, torch_epoch_s = n_train / med["ours_train"], n_train / med["torch_train_fused"]
    print(
        f"\nminisriem trains {med['train_vs_fused']:.2f}x as fast as torch with fused Adam"
        f" ({med['train_vs_default']:.2f}x its default Adam) and evaluates"
        f" {med['eval_ratio']:.2f}x as fast; one DIGINETICA epoch: {epoch_s:.0f} s"
        f" (torch fused: {torch_epoch_s:.0f} s)"
    )
    figures = {
        "rounds": args.rounds,
        "train_examples_per_s": round(med["ours_train"], 1),
        "torch_fused_train_examples_per_s": round(med["torch_train_fused"], 1),
        "torch_train_examples_per_s": round(med["torch_train"], 1),
        "train_ratio_vs_fused": round(med["train_vs_fused"], 2),
        "train_ratio_vs_default": round(med["train_vs_default"], 2),
        "eval_examples_per_s": round(med["ours_eval"], 1),
        "torch_eval_examples_per_s": round(med["torch_eval"], 1),
        "eval_ratio": round(med["eval_ratio"], 2),
        "epoch_s": round(epoch_s, 1),
        "peak_rss_mib": round(med["peak_rss_mib"]),
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    main()
