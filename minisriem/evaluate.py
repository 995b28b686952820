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

import json
import sys

from minisriem import cli
from minisriem.config import Limits, TrainOptions


def build_parser():
    p = cli.parser(
        "python -m minisriem.evaluate",
        "Hit rate, recall, MRR, NDCG, item coverage, average popularity and "
        "tail share at 5, 10, 20 on a test set, and hit, MRR, NDCG by session length.",
    )
    cli.add_model_option(p)
    cli.add_data_options(
        p,
        dataset_help="dataset name or prepared dataset path (default: the one the model was "
        "trained on, as its run directory's config.json records it)",
    )
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    cli.add_settings(
        p,
        TrainOptions,
        ["eval_batch_size"],
        flags={"eval_batch_size": ("--batch-size",)},
    )
    cli.add_settings(p, Limits)
    cli.add_threads_option(p)
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

    def body():
        from minisriem.checkpoint import write_text
        from minisriem.recommend import saved_path
        from minisriem.workflow import evaluate

        cli.check_output_path(args.out, args.model, saved_path(args.model))
        result = evaluate(
            args.model,
            args.dataset,
            data_dir=args.data_dir,
            batch_size=args.eval_batch_size,
            max_memory_gb=args.max_memory_gb,
        )
        print(format_report(result))
        if args.out:
            write_text(args.out, json.dumps(result, indent=2, allow_nan=False) + "\n")
            print(f"written to {args.out}")
        return 0

    return cli.run(body, args.threads)


if __name__ == "__main__":
    sys.exit(main())
