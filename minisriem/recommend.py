"""Recommend next items: ``python -m minisriem.recommend --model PATH --session 214,873,12``.

Answers in the dataset's raw item ids (the model file keeps the id map) and
shows the importance (beta) the model gave each session item. Items the
model never saw are skipped with a warning; a session longer than L keeps its
L most recent known items. ``--sessions FILE`` answers a file of sessions,
one per line, and writes CSV (``line,rank,item,score``) or JSON lines. A thin
wrapper over :func:`minisriem.workflow.recommend_sessions`.
"""

import argparse
import sys

from minisriem.cli import HelpFormatter, fail

MAX_WARNINGS = 5


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minisriem.recommend",
        description="Top-k next items for a session, in raw item ids, with each session "
        "item's importance.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="a model.npz or the run directory holding it")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--session", help="one session: comma-separated raw item ids, oldest first (214,873,12)"
    )
    which.add_argument(
        "--sessions", metavar="FILE", help="a file of sessions, one comma-separated line each"
    )
    p.add_argument("-k", type=int, default=20, help="number of items to recommend")
    p.add_argument(
        "--output",
        metavar="FILE",
        default=None,
        help="with --sessions: write here (default: print to the terminal)",
    )
    p.add_argument(
        "--format",
        choices=("csv", "jsonl"),
        default=None,
        help="with --sessions: output format (default: jsonl when --output ends in .jsonl or "
        ".json, else csv)",
    )
    p.add_argument("--batch-size", type=int, default=256, help="sessions scored at once")
    return p


def format_recommendation(rec):
    """One session's answer as text: the session with its weights, then the items."""
    lines = ["session (oldest first) and the importance the model gave each item:"]
    lines += [
        f"  {item:>12}  beta {beta:.4f}"
        for item, beta in zip(rec.session, rec.importance, strict=True)
    ]
    lines.append(f"top {len(rec.items)} next items:")
    lines.append(f"  {'rank':>4}  {'item':>12}  {'score':>10}")
    lines += [
        f"  {rank:>4}  {item:>12}  {score:10.4f}"
        for rank, (item, score) in enumerate(zip(rec.items, rec.scores, strict=True), start=1)
    ]
    return "\n".join(lines)


def _warn_unknown(recs, single):
    noisy = [(i, r) for i, r in enumerate(recs, start=1) if r.unknown]
    for i, r in noisy[:MAX_WARNINGS]:
        where = "" if single else f"line {i}: "
        ids = ", ".join(str(u) for u in r.unknown)
        print(f"warning: {where}skipped items unknown to the model: {ids}", file=sys.stderr)
    if len(noisy) > MAX_WARNINGS:
        print(
            f"warning: {len(noisy) - MAX_WARNINGS} more lines had unknown items "
            "(listed under 'unknown' with --format jsonl)",
            file=sys.stderr,
        )


def main(argv=None):
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    from minisriem.checkpoint import load_model
    from minisriem.workflow import (
        parse_session,
        read_sessions,
        recommend_sessions,
        recommendations_text,
        write_recommendations,
    )

    try:
        saved = load_model(args.model)
        if args.session is not None:
            sessions = [parse_session(args.session)]
        else:
            sessions = read_sessions(args.sessions)
        recs = recommend_sessions(saved, sessions, args.k, args.batch_size, warn=False)
        _warn_unknown(recs, single=args.session is not None)
        if args.session is not None:
            print(format_recommendation(recs[0]))
            return 0
        fmt = args.format
        if fmt is None:
            is_json = args.output is not None and args.output.endswith((".jsonl", ".json"))
            fmt = "jsonl" if is_json else "csv"
        if args.output is None:
            sys.stdout.write(recommendations_text(recs, fmt))
        else:
            write_recommendations(args.output, recs, fmt)
            print(f"{len(recs)} sessions answered, written to {args.output}")
    except (ValueError, OSError) as e:
        return fail(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
