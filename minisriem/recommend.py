"""Recommend next items: ``python -m minisriem.recommend --model PATH --session 214,873,12``.

Answers in the dataset's raw item ids (the model file keeps the id map) and
shows the importance (beta) the model gave each session item. Items the
model never saw are skipped with a warning; a session longer than L keeps its
L most recent known items. ``--sessions FILE`` answers a file of sessions,
one per line, and writes CSV (``line,rank,item,score``) or JSON lines. A thin
wrapper over :func:`minisriem.workflow.recommend_sessions`.
"""

import argparse
import json
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


# ----------------------------------------------------------------------
# Sessions in, recommendations out


def parse_session(text, where="the session"):
    """Raw item ids from ``"214,873,12"``.

    Raises
    ------
    ValueError
        When a field is not an integer or there is none.
    """
    fields_ = [f.strip() for f in text.strip().split(",")]
    if fields_ == [""]:
        raise ValueError(f"{where} is empty: give comma-separated item ids, e.g. 214,873,12")
    try:
        return [int(f) for f in fields_]
    except ValueError:
        bad = next(f for f in fields_ if not _is_int(f))
        raise ValueError(
            f"{where}: {bad!r} is not an item id (expected comma-separated integers)"
        ) from None


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def read_sessions(path):
    """The sessions of a file: one per line, comma-separated raw item ids.

    Returns
    -------
    list of list of int

    Raises
    ------
    ValueError
        Naming the file and line of the first malformed or empty line.
    """
    sessions = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            sessions.append(parse_session(line, f"{path} line {number}"))
    if not sessions:
        raise ValueError(f"{path} holds no session: write one per line, e.g. 214,873,12")
    return sessions


def recommendations_text(recommendations, fmt="csv"):
    """Recommendations as CSV (``line,rank,item,score``) or JSON lines.

    Parameters
    ----------
    recommendations : list of Recommendation, in the order of the input lines
    fmt : {"csv", "jsonl"}

    Returns
    -------
    str
    """
    if fmt == "csv":
        rows = ["line,rank,item,score\n"]
        for line, r in enumerate(recommendations, start=1):
            for rank, (item, score) in enumerate(zip(r.items, r.scores, strict=True), start=1):
                rows.append(f"{line},{rank},{item},{score:.6g}\n")
        return "".join(rows)
    if fmt == "jsonl":
        return "".join(
            json.dumps({"line": line, **r.to_dict()}) + "\n"
            for line, r in enumerate(recommendations, start=1)
        )
    raise ValueError(f"format must be csv or jsonl, not {fmt!r}")


def write_recommendations(path, recommendations, fmt="csv"):
    """Write :func:`recommendations_text` to ``path`` atomically."""
    from minisriem.checkpoint import write_text

    write_text(path, recommendations_text(recommendations, fmt))


# ----------------------------------------------------------------------
# The command


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
    from minisriem.workflow import recommend_sessions

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
