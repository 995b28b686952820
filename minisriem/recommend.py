"""Recommend next items: ``python -m minisriem.recommend --model PATH --session 214,873,12``.

Answers in the dataset's raw item ids (the model file keeps the id map) and
shows the importance (beta) the model gave each session item. Items the
model never saw are skipped with a warning; a session longer than L keeps its
L most recent known items. ``--sessions FILE`` answers a file of sessions,
one per line, and writes CSV (``line,rank,item,score``) or JSON lines. A thin
wrapper over :func:`minisriem.workflow.recommend_sessions`.
"""

import json
import sys

from minisriem import cli
from minisriem.config import ServeOptions

MAX_WARNINGS = 5


def build_parser():
    p = cli.parser(
        "python -m minisriem.recommend",
        "Top-k next items for a session, in raw item ids, with each session item's importance.",
    )
    cli.add_model_option(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--session", help="one session: comma-separated raw item ids, oldest first (214,873,12)"
    )
    which.add_argument(
        "--sessions", metavar="FILE", help="a file of sessions, one comma-separated line each"
    )
    cli.add_settings(p, ServeOptions, ["k"])
    p.add_argument(
        "--output",
        metavar="FILE",
        default=None,
        help="write the recommendations here as CSV or JSON lines (default: print them)",
    )
    p.add_argument(
        "--format",
        choices=("csv", "jsonl"),
        default=None,
        help="output format (default: jsonl when --output ends in .jsonl or .json, else csv; "
        "one --session without --output is shown as a table)",
    )
    cli.add_settings(p, ServeOptions, ["batch_size"])
    cli.add_threads_option(p)
    return p


# ----------------------------------------------------------------------
# Sessions in, recommendations out

MAX_RAW_ID = 2**63 - 1


def parse_session(text, where="the session", tokens=False):
    """Raw item ids from ``"214,873,12"``, or text tokens from ``"shoe-12,sock-3"``.

    An id is written in ASCII digits only (``1_0`` or ``٣``, which Python's
    ``int`` would read as 10 and 3, are refused) and fits in 64 bits. With
    ``tokens`` (a model trained on data that named items by text) each field,
    stripped of surrounding spaces, is a token.

    Raises
    ------
    ValueError
        When a field is not an integer (or an empty token) or there is none.
    """
    fields_ = [f.strip() for f in text.strip().split(",")]
    if fields_ == [""]:
        raise ValueError(f"{where} is empty: give comma-separated item ids, e.g. 214,873,12")
    if tokens:
        if "" in fields_:
            raise ValueError(f"{where}: an empty item between two commas")
        return fields_
    ids = []
    for f in fields_:
        if not (f.isascii() and f.isdigit()):
            shown = f if len(f) <= 40 else f[:40] + "..."
            raise ValueError(
                f"{where}: {shown!r} is not an item id (expected comma-separated integers, "
                "digits 0-9 only)"
            )
        value = int(f)
        if value > MAX_RAW_ID:
            raise ValueError(
                f"{where}: item id {f[:40]}{'...' if len(f) > 40 else ''} is too large: "
                "item ids are 64-bit integers (at most 2**63-1)"
            )
        ids.append(value)
    return ids


def read_sessions(path, tokens=False):
    """The sessions of a file: one per line, comma-separated raw item ids (UTF-8 text).

    ``tokens``: the items are text tokens (see :func:`parse_session`).

    Returns
    -------
    list of list of int (of str with ``tokens``)

    Raises
    ------
    ValueError
        Naming the file and line of the first malformed or empty line, or of
        bytes that are not UTF-8 text.
    """
    from data_tools import DataError
    from data_tools.fileio import check_regular

    try:
        check_regular(path)
    except DataError as e:
        raise ValueError(str(e)) from None
    sessions = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte order mark, as some editors write
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path} line {number}: not UTF-8 text (byte {e.start + 1}); write item "
                    "ids as plain text, one session per line"
                ) from None
            sessions.append(parse_session(line, f"{path} line {number}", tokens))
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


def saved_path(model):
    """The model file a ``--model`` argument names (a run directory holds ``model.npz``)."""
    import os

    return os.path.join(model, "model.npz") if os.path.isdir(model) else model


def main(argv=None):
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)

    def body():
        from minisriem.checkpoint import load_model
        from minisriem.workflow import recommend_sessions

        cli.check_output_path(args.output, args.sessions, args.model, saved_path(args.model))
        saved = load_model(args.model)
        tokens = saved.item_tokens is not None  # the data named items by text
        if args.session is not None:
            sessions = [parse_session(args.session, tokens=tokens)]
        else:
            sessions = read_sessions(args.sessions, tokens)
        recs = recommend_sessions(saved, sessions, args.k, args.batch_size, warn=False)
        _warn_unknown(recs, single=args.session is not None)
        if args.session is not None and args.output is None and args.format is None:
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
            print(f"{len(recs)} session(s) answered, written to {args.output}")
        return 0

    return cli.run(body, args.threads)


if __name__ == "__main__":
    sys.exit(main())
