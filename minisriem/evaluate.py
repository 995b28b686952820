"""Evaluate a trained model: ``python -m minisriem.evaluate --model PATH [--dataset NAME]``.

Prints, for K = 5, 10, 20 over the full item set, the metrics the field's
frameworks print (hit@K, recall@K, mrr@K, ndcg@K, coverage@K,
avg_popularity@K, tail_share@K; see :mod:`minisriem.metrics`) beside the
popularity baseline, then hit, MRR and NDCG by session length (the data of
the paper's Fig. 2), and writes them as JSON with ``--out FILE`` under those
keys. A thin wrapper over :func:`minisriem.workflow.evaluate`;
:func:`read_evaluation` also reads files written before these keys.

Tie rule: rank = 1 + the number of items scored strictly higher than the
target. Session length: the true number of items before the target; 10 and
more form one group "10+", which is also the capped length the model reads.
"""

import argparse
import json
import sys

from minisriem.cli import HelpFormatter, fail, limit_threads


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minisriem.evaluate",
        description="Hit rate, recall, MRR, NDCG, item coverage, average popularity and "
        "tail share at 5, 10, 20 on a test set, and hit, MRR, NDCG by session length.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="a model.npz or the run directory holding it")
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset name or prepared dataset path (default: the one the model was trained on)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder holding DATASET/ (default: $MINISRIEM_DATA, else ./data)",
    )
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    p.add_argument("--batch-size", type=int, default=512, help="test examples scored at once")
    p.add_argument(
        "--threads", type=int, default=None, help="threads for BLAS and Numba (default: all)"
    )
    return p


def format_report(result):
    """The evaluation as text: an overall table and a by-length table, in percent."""
    from minisriem.metrics import format_metrics_table
    from minisriem.report import evaluation_table

    ks = sorted({int(key.partition("@")[2]) for key in result["metrics"] if "@" in key})
    overall = evaluation_table(
        [(result["model_name"], result["metrics"]), ("popularity baseline", result["popularity"])],
        ks,
    )
    by_length = format_metrics_table(
        [(f"length {k}", v) for k, v in result["by_length"].items()],
        ks,
        names=("hit", "mrr", "ndcg"),
    )
    return (
        f"{result['dataset']} test set, {result['examples']} examples; "
        f"model {result['model']}\n"
        f"{overall}\n\n"
        "by session length (items before the target; '10+' is 10 or more, "
        f"the most the model reads):\n{by_length}\n"
        f"ties: {result['tie_rule']}"
        + (f"\n{result['popularity_rule']}" if "popularity_rule" in result else "")
    )


def read_evaluation(path):
    """An evaluation JSON file, with the keys of today's :func:`~minisriem.workflow.evaluate`.

    Files written before the list metrics (keys ``Recall@K``, ``MRR@K``,
    ``NDCG@K``) load too: their keys are renamed (``Recall@K`` to ``hit@K``
    and ``recall@K``); the list metrics they lack stay absent.

    Parameters
    ----------
    path : str

    Returns
    -------
    dict
    """
    from minisriem.metrics import upgrade_metric_names

    with open(path) as f:
        try:
            result = json.load(f)
        except ValueError as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(result, dict) or "metrics" not in result:
        raise ValueError(f"{path} is not an evaluation file (no 'metrics')")
    for part in ("metrics", "popularity"):
        if isinstance(result.get(part), dict):
            result[part] = upgrade_metric_names(result[part])
    if isinstance(result.get("by_length"), dict):
        result["by_length"] = {
            group: upgrade_metric_names(values) for group, values in result["by_length"].items()
        }
    return result


def main(argv=None):
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None:
            limit_threads(args.threads)
        from data_tools import DataError  # NumPy loads here, after limit_threads
        from minisriem.checkpoint import write_text
        from minisriem.workflow import evaluate
    except ValueError as e:
        return fail(e)
    try:
        result = evaluate(
            args.model, args.dataset, data_dir=args.data_dir, batch_size=args.batch_size
        )
        print(format_report(result))
        if args.out:
            write_text(args.out, json.dumps(result, indent=2) + "\n")
            print(f"written to {args.out}")
    except (DataError, ValueError, OSError) as e:
        return fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
