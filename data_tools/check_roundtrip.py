"""Check that a folder of SR-GNN pickles survives a round trip through another format.

Usage::

    python -m data_tools.check_roundtrip FOLDER [--via recbole|session-rec|npz|srgnn] [--keep-ids]

The published ``train.txt`` and ``test.txt`` (and ``all_train_seq.txt``) of
``FOLDER`` are imported, written in the ``--via`` format (RecBole's
pre-split form by default) in a temporary folder, read back, written as
SR-GNN pickles again and loaded with the restricted unpickler. The script
prints the counts and digests at each step and whether the pickles written
at the end hold exactly the published examples (same prefixes, targets and
order, item for item). Exit status 0 when they do, 1 otherwise.
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time

from .cliopts import run
from .convert import describe, read_input, write_output
from .srgnn import ALL_TRAIN, TEST, TRAIN, read_pickle


def content_digest(obj):
    """sha256 of a pickle's content (its lists of ints), independent of how it was pickled."""
    h = hashlib.sha256()
    for part in obj if isinstance(obj, tuple) else (obj,):
        for entry in part:
            h.update(
                (",".join(map(str, entry)) if isinstance(entry, list) else str(entry)).encode()
            )
            h.update(b";")
        h.update(b"|")
    return h.hexdigest()


def compare_sessions(published, back):
    """How two lists of sessions differ: (same length?, number of sessions that differ, first)."""
    differ = [i for i, (a, b) in enumerate(zip(published, back, strict=False)) if a != b]
    return len(published) == len(back), differ


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m data_tools.check_roundtrip", description=__doc__.split("\n")[0]
    )
    p.add_argument("folder", help="a folder holding SR-GNN's train.txt and test.txt")
    p.add_argument("--via", default="recbole", choices=("recbole", "session-rec", "npz", "srgnn"))
    p.add_argument("--keep-ids", action="store_true", help="read the --via files keeping item ids")
    args = p.parse_args(argv)
    return run(lambda: _roundtrip(args))


def _roundtrip(args):
    name = os.path.basename(os.path.abspath(args.folder))
    published = {f: read_pickle(os.path.join(args.folder, f)) for f in (TRAIN, TEST)}
    if os.path.isfile(os.path.join(args.folder, ALL_TRAIN)):
        published[ALL_TRAIN] = read_pickle(os.path.join(args.folder, ALL_TRAIN))
    for f, obj in published.items():
        sessions = f == ALL_TRAIN
        count, what = (len(obj), "sessions") if sessions else (len(obj[0]), "examples")
        digest = content_digest(obj if sessions else tuple(obj))
        print(f"published {f}: {count:,} {what}, content sha256 {digest[:16]}")
    ds = read_input("srgnn", args.folder, name)
    print(f"imported  {describe(ds)}")
    with tempfile.TemporaryDirectory(prefix="roundtrip-") as work:
        start = time.perf_counter()
        paths = write_output(ds, args.via, os.path.join(work, args.via), name)
        wrote = time.perf_counter() - start
        sizes = ", ".join(f"{os.path.basename(x)} {os.path.getsize(x) / 1e6:.1f} MB" for x in paths)
        print(f"wrote {args.via} in {wrote:.1f} s: {sizes}")
        start = time.perf_counter()
        back = read_input(args.via, os.path.join(work, args.via), name, args.keep_ids)
        print(f"read back in {time.perf_counter() - start:.1f} s: {describe(back)}")
        write_output(back, "srgnn", os.path.join(work, "srgnn"))
        again = {f: read_pickle(os.path.join(work, "srgnn", f)) for f in published}
    same = True
    for f in (TRAIN, TEST):
        a, b = tuple(published[f]), tuple(again[f])
        identical = list(a[0]) == list(b[0]) and list(a[1]) == list(b[1])
        same &= identical
        print(f"round-tripped {f}: {len(b[0]):,} examples, content sha256 "
              f"{content_digest(b)[:16]}: {'identical' if identical else 'DIFFERENT'} "
              "to the published examples")  # fmt: skip
    if ALL_TRAIN in published:
        same_count, differ = compare_sessions(published[ALL_TRAIN], again[ALL_TRAIN])
        if same_count and not differ:
            print(f"round-tripped {ALL_TRAIN}: identical to the published sessions")
        else:
            first = differ[0] if differ else None
            detail = (
                f"; session {first}: published {len(published[ALL_TRAIN][first])} clicks, "
                f"now {len(again[ALL_TRAIN][first])} (the clicks train.txt uses)"
                if first is not None
                else ""
            )
            print(f"round-tripped {ALL_TRAIN}: {len(again[ALL_TRAIN]):,} sessions, "
                  f"{len(differ)} differ from the published ones{detail}")  # fmt: skip
    print("examples reproduced exactly" if same else "examples NOT reproduced")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
