"""Fuzz every loader with seeded random mutations of valid files (issue 13).

    python benchmarks/fuzz_loaders.py [--per-loader 10000] [--seed 0] [--loaders a,b]

For each loader a small valid input is written with the project's own
writers (or, for raw logs, as the public files look), then mutated
``--per-loader`` times: truncated, bytes flipped, fields and lines inserted,
deleted or duplicated, numbers made huge, negative or not numbers, a BOM or
bad UTF-8 put in; for ``.npz`` archives and pickles also structurally (an
array or list replaced by one of another type, shape or size, with NaN, a
huge id, a key removed). Each mutated input is loaded, and the outcome is
one of:

``clean``     it loaded, and what it gave is valid (ids in range, offsets
              rising, finite figures; for models, finite scores)
``refused``   the project's own error: DataError or ModelFileError, or a
              ValueError/OSError raised by our code, with a one-line message
``failed``    anything else: another exception (a traceback a user would
              see), a load that gave invalid data, a multi-line message, or
              more than ``--max-seconds``

Memory is capped (``RLIMIT_AS``, ``--max-memory-gb``), so an input that
would exhaust it ends in a MemoryError, counted as failed. The last line
holds the counts as ``name=value`` pairs; ``--json`` prints them as JSON
(the test suite runs a few hundred per loader this way).
"""

import argparse
import contextlib
import io
import json
import os
import pickle
import random
import resource
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import numpy as np  # noqa: E402

from data_tools import DataError  # noqa: E402
from data_tools.dataset import load_prepared  # noqa: E402
from data_tools.preprocess import prepare_custom, prepare_diginetica, prepare_yoochoose  # noqa: E402
from data_tools.recbole import export_recbole, prepare_recbole_inter, read_recbole_split  # noqa: E402
from data_tools.sessionrec import export_sessionrec, read_sessionrec  # noqa: E402
from data_tools.srgnn import export_srgnn, import_srgnn  # noqa: E402
from minisriem.checkpoint import (  # noqa: E402
    ModelFileError,
    check_run_state,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from minisriem.config import Config  # noqa: E402
from minisriem.model import SRIEM  # noqa: E402
from minisriem.optim import Adam  # noqa: E402
from minisriem.recommend import read_sessions  # noqa: E402
from minisriem.workflow import recommend_sessions  # noqa: E402

OUR_CODE = (str(ROOT / "data_tools"), str(ROOT / "minisriem"))
DAY = 86400
START = 1_400_000_000
TOKENS = [
    b",", b";", b"\t", b"\n", b"\r\n", b" ", b"-", b"-1", b"0", b"1_0", b"\xd9\xa3",
    b"99999999999999999999999", b"1180591620717411303424", b"9223372036854775808",
    b"2147483647", b"nan", b"inf", b"1e308", b"\xef\xbb\xbf", b"\xff\xfe", b"\x00", b"NA",
    b"2014-13-45T99:99:99.000Z", b"2016-02-30", b"\"", b"'", b"%", b"abc",
]  # fmt: skip


# ----------------------------------------------------------------------
# Valid inputs


def sessions(n_sessions=60, seed=0):
    """(session, item, time) rows that the SR-GNN protocol keeps: 10 items over 30 days."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        t = START + int(s * 30 * DAY / n_sessions)
        for j, item in enumerate(rng.integers(1, 11, size=3)):
            rows.append((s + 1, int(item), t + 60 * j))
    return rows


def custom_log():
    return "session_id,item_id,timestamp\n" + "".join(f"{s},{i},{t}\n" for s, i, t in sessions())


def diginetica_log():
    head = "session_id;user_id;item_id;timeframe;eventdate\n"
    rows = "".join(
        f"{s};NA;{i};{t - START};{np.datetime64(t, 's').astype('datetime64[D]')}\n"
        for s, i, t in sessions()
    )
    return head + rows


def yoochoose_log():
    return "".join(
        f"{s},{np.datetime64(t, 's')}.277Z,{214536500 + i},0\n" for s, i, t in sessions()
    )


def recbole_log():
    head = "session_id:token\titem_id:token\ttimestamp:float\n"
    return head + "".join(f"{s}\t{i}\t{t}\n" for s, i, t in sessions())


def build_inputs(work):
    """Write every loader's valid input into ``work``; returns the dataset they come from."""
    work = Path(work)
    (work / "custom.csv").write_text(custom_log())
    (work / "diginetica.csv").write_text(diginetica_log())
    (work / "yoochoose.dat").write_text(yoochoose_log())
    (work / "toy.inter").write_text(recbole_log())
    ds = prepare_custom(str(work / "custom.csv"), keep_times=True)
    ds.name = "toy"
    export_srgnn(ds, str(work / "srgnn"))
    ds.save(str(work / "prepared"))
    export_recbole(ds, str(work / "recbole"), "toy")
    export_sessionrec(ds, str(work / "sessionrec"), "toy")
    config = Config(d=4, l=2)
    model = SRIEM(ds.n_items, d=4, l=2, seed=0)
    save_model(str(work / "model.npz"), model, config, ds.item_ids, {"dataset": "toy"})
    state = {"epoch": 0, "step": 2, "global_step": 2, "loss_sum": 1.0, "loss_count": 2,
             "history": [], "status": "running", "phase": "select"}  # fmt: skip
    save_checkpoint(str(work / "checkpoint.npz"), model, config, ds.item_ids,
                    Adam(model.params), state)  # fmt: skip
    raw = ds.item_ids[1:].tolist()
    lines = [",".join(str(raw[(i * 3 + j) % len(raw)]) for j in range(1 + i % 4)) for i in range(8)]
    (work / "sessions.txt").write_text("\n".join(lines) + "\n")
    return ds


# ----------------------------------------------------------------------
# Checks of what a clean load gave


class Invalid(Exception):
    """A load that returned, but returned something invalid."""


def check_dataset(ds):
    n = ds.n_items
    if n < 1 or ds.item_ids.shape != (n + 1,):
        raise Invalid("item_ids")
    for split in (ds.train, ds.test):
        if split.offsets[0] != 0 or split.offsets[-1] != len(split.items):
            raise Invalid("offsets")
        if np.diff(split.offsets).min(initial=1) < 1 or np.diff(split.session).min(initial=0) < 0:
            raise Invalid("offsets or sessions")
        for ids in (split.items, split.targets):
            if len(ids) and (ids.min() < 1 or ids.max() > n):
                raise Invalid("ids out of range")
        split.padded(10)
    for key, value in ds.stats.items():
        if isinstance(value, float) and not np.isfinite(value):
            raise Invalid(f"stats {key}")
    if len(ds.sessions_items) and (ds.sessions_items.min() < 1 or ds.sessions_items.max() > n):
        raise Invalid("sessions_items")


def check_model(saved):
    for name, value in saved.model.params.items():
        if not np.all(np.isfinite(value)):
            raise Invalid(f"param {name}")
    scores = saved.model.scores(np.array([[1, 0]], np.int32), np.array([1], np.int32))
    if not np.all(np.isfinite(scores)):
        raise Invalid("scores")


# ----------------------------------------------------------------------
# Loaders: (files to mutate, how to load and check)


def loaders(work, model):
    w = Path(work)

    def sessions_file():
        recs = recommend_sessions(model, read_sessions(str(w / "sessions.txt")), 5, warn=False)
        for r in recs:
            if not all(np.isfinite(r.scores)):
                raise Invalid("scores")

    def checkpoint():
        saved, _, state = load_checkpoint(str(w / "checkpoint.npz"))
        check_run_state(state, str(w / "checkpoint.npz"))
        check_model(saved)

    return {
        "custom-csv": (
            ["custom.csv"],
            lambda: check_dataset(prepare_custom(str(w / "custom.csv"))),
        ),
        "diginetica-csv": (
            ["diginetica.csv"],
            lambda: check_dataset(prepare_diginetica(str(w / "diginetica.csv"))),
        ),
        "yoochoose-dat": (
            ["yoochoose.dat"],
            lambda: [
                check_dataset(d) for d in prepare_yoochoose(str(w / "yoochoose.dat")).values()
            ],
        ),
        "srgnn-pickle": (
            ["srgnn/train.txt", "srgnn/all_train_seq.txt"],
            lambda: check_dataset(import_srgnn(str(w / "srgnn"), "toy")),
        ),
        "prepared-npz": (
            ["prepared/dataset.npz", "prepared/dataset.json"],
            lambda: check_dataset(load_prepared(str(w / "prepared"))),
        ),
        "model-npz": (["model.npz"], lambda: check_model(load_model(str(w / "model.npz")))),
        "checkpoint-npz": (["checkpoint.npz"], checkpoint),
        "sessions-file": (["sessions.txt"], sessions_file),
        "recbole-inter": (
            ["toy.inter"],
            lambda: check_dataset(prepare_recbole_inter(str(w / "toy.inter"))),
        ),
        "recbole-split": (
            ["recbole/toy.train.inter", "recbole/toy.test.inter"],
            lambda: check_dataset(
                read_recbole_split(
                    str(w / "recbole/toy.train.inter"), str(w / "recbole/toy.test.inter")
                )  # fmt: skip
            ),
        ),
        "session-rec": (
            ["sessionrec/toy_train_full.txt", "sessionrec/toy_test.txt"],
            lambda: check_dataset(
                read_sessionrec(
                    str(w / "sessionrec/toy_train_full.txt"), str(w / "sessionrec/toy_test.txt")
                )  # fmt: skip
            ),
        ),
    }


# ----------------------------------------------------------------------
# Mutations


def mutate_bytes(data, rng):
    """One to three random edits of a file's bytes."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(9)
        pos = rng.randrange(len(data) + 1)
        if kind == 0:  # truncate
            del data[pos:]
        elif kind == 1 and data:  # flip bytes
            for _ in range(rng.randint(1, 5)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:  # insert a token
            data[pos:pos] = rng.choice(TOKENS)
        elif kind in (3, 4):  # a number made huge, negative, zero or not a number
            digits = [i for i in range(len(data)) if 48 <= data[i] <= 57]
            if digits:
                i = rng.choice(digits)
                j = i
                while j < len(data) and 48 <= data[j] <= 57:
                    j += 1
                data[i:j] = rng.choice(TOKENS[7:17] + [b"-5", b"0"])
        elif kind == 5:  # delete a line
            lines = data.split(b"\n")
            if len(lines) > 1:
                del lines[rng.randrange(len(lines))]
            data = bytearray(b"\n".join(lines))
        elif kind == 6:  # duplicate a line, or many
            lines = data.split(b"\n")
            k = rng.randrange(len(lines))
            lines[k:k] = [lines[k]] * rng.choice((1, 2, 50))
            data = bytearray(b"\n".join(lines))
        elif kind == 7:  # an extra field on a line
            lines = data.split(b"\n")
            k = rng.randrange(len(lines))
            lines[k] += rng.choice((b",", b";", b"\t")) + rng.choice(TOKENS)
            data = bytearray(b"\n".join(lines))
        else:  # empty the file, or leave only its first line
            data = bytearray(data.split(b"\n")[0] + b"\n" if rng.random() < 0.5 else b"")
    return bytes(data)


def odd_array(value, rng):
    """An array of another type, shape, size or content than ``value``."""
    kind = rng.randrange(10)
    if kind == 0:
        return value.astype(str)
    if kind == 1:
        return value.astype(np.float64) * np.nan if value.dtype.kind in "fiu" else np.array([])
    if kind == 2:
        return value.reshape(-1)[: max(0, value.size - rng.randint(1, 3))].copy()
    if kind == 3:
        return np.concatenate([value.reshape(-1), value.reshape(-1)[:3]]) if value.size else value
    if kind == 4 and value.dtype.kind in "iu" and value.size:
        out = value.astype(np.int64).reshape(-1)
        out[rng.randrange(out.size)] = rng.choice((2**31 - 1, -(2**40), 2**62, 0))
        return out.reshape(value.shape)
    if kind == 5:
        return np.zeros((2, 2, 2), value.dtype if value.dtype.kind != "U" else np.int64)
    if kind == 6 and value.dtype.kind == "U":
        text = str(value)
        cut = rng.randrange(len(text) + 1)
        return np.array(text[:cut] + rng.choice(["", "}", "[", "nan", '"x"', "1e999"]))
    if kind == 7 and value.dtype.kind == "f":
        out = value.copy()
        out.reshape(-1)[: rng.randint(1, 3)] = rng.choice((np.nan, np.inf, 1e38))
        return out
    if kind == 8:
        return np.array(rng.choice([0, -1, "abc", 2**40, 1.5]))
    return value.astype(np.int8) if value.dtype.kind in "fiu" else np.array(7)


def mutate_npz(data, rng):
    """Remove, add or replace one or two arrays of an ``.npz`` (a valid archive)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for _ in range(rng.randint(1, 2)):
        key = rng.choice(sorted(arrays))
        kind = rng.randrange(4)
        if kind == 0:
            del arrays[key]
        elif kind == 1:
            arrays[key + rng.choice(("", "_x", "/0"))] = odd_array(arrays[key], rng)
        else:
            arrays[key] = odd_array(arrays[key], rng)
        if not arrays:
            break
    out = io.BytesIO()
    if rng.random() < 0.2:
        np.savez_compressed(out, **arrays)
    else:
        np.savez(out, **arrays)
    return out.getvalue()


def odd_value(value, rng, depth=0):
    """A Python object like a pickle's content, one part of it changed."""
    if isinstance(value, (list, tuple)) and value and depth < 3 and rng.random() < 0.7:
        items = list(value)
        i = rng.randrange(len(items))
        items[i] = odd_value(items[i], rng, depth + 1)
        return type(value)(items)
    return rng.choice(
        [[], (), 0, -3, 2**31, 2**70, 1.5, "7", None, True, [[]], [1] * 3, {"a": 1}, b"x"]
    )


def mutate_pickle(data, rng):
    obj = pickle.loads(data)
    obj = odd_value(obj, rng)
    if rng.random() < 0.1 and isinstance(obj, (list, tuple)) and obj:
        shared = [1, 2, 3] * 100
        obj = ([shared] * 2000, [1] * 2000)  # one list over and over: a memory bomb
    return pickle.dumps(obj, protocol=rng.choice((2, 4)))


def mutate(name, data, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casting NaN to int and the like, on purpose
        return _mutate(name, data, rng)


def _mutate(name, data, rng):
    if name.endswith(".npz") and rng.random() < 0.6:
        return mutate_npz(data, rng)
    if name.startswith("srgnn/") and rng.random() < 0.6:
        return mutate_pickle(data, rng)
    return mutate_bytes(data, rng)


# ----------------------------------------------------------------------
# Running


def where(e):
    """The last frame of our code in an exception's traceback, as ``file:line``."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith(OUR_CODE)]
    f = frames[-1] if frames else traceback.extract_tb(e.__traceback__)[-1]
    return f"at {os.path.relpath(f.filename, ROOT)}:{f.lineno}"


def outcome(load, max_seconds):
    """``("clean" | "refused" | "failed", detail)`` of one load."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            load()
        result = ("clean", "")
    except Invalid as e:
        result = ("failed", f"loaded invalid data: {e}")
    except (DataError, ModelFileError) as e:
        result = ("refused", str(e))
    except (ValueError, OSError) as e:
        ours = traceback.extract_tb(e.__traceback__)[-1].filename.startswith(OUR_CODE)
        result = ("refused", str(e)) if ours else ("failed", f"{type(e).__name__} {where(e)}: {e}")
    except Exception as e:  # noqa: BLE001 - anything else is what we count
        result = ("failed", f"{type(e).__name__} {where(e)}: {e}")
    seconds = time.perf_counter() - start
    if result[0] == "refused" and "\n" in result[1]:
        result = ("failed", f"multi-line message: {result[1]!r}")
    if seconds > max_seconds:
        result = ("failed", f"took {seconds:.1f} s")
    return result


def fuzz(per_loader, seed=0, names=None, max_seconds=10.0, log=None):
    """Run the mutations; returns ``{loader: {"tried", "clean", "refused", "failed", ...}}``."""
    report = {}
    with tempfile.TemporaryDirectory(prefix="fuzz-") as work:
        with contextlib.redirect_stderr(io.StringIO()):
            build_inputs(work)
        from minisriem.checkpoint import load_model as _load

        model = _load(os.path.join(work, "model.npz"))
        table = loaders(work, model)
        for index, (name, (files, load)) in enumerate(table.items()):
            if names and name not in names:
                continue
            originals = {f: (Path(work) / f).read_bytes() for f in files}
            rng = random.Random(seed * 1000 + index)
            counts = {"tried": 0, "clean": 0, "refused": 0, "failed": 0, "examples": []}
            t0 = time.perf_counter()
            for _ in range(per_loader):
                target = rng.choice(files)
                for f, data in originals.items():  # every other file stays valid
                    (Path(work) / f).write_bytes(data)
                (Path(work) / target).write_bytes(mutate(target, originals[target], rng))
                kind, detail = outcome(load, max_seconds)
                counts["tried"] += 1
                counts[kind] += 1
                if kind == "failed" and len(counts["examples"]) < 5:
                    counts["examples"].append(f"{target}: {detail}"[:300])
            for f, data in originals.items():
                (Path(work) / f).write_bytes(data)
            counts["seconds"] = round(time.perf_counter() - t0, 1)
            report[name] = counts
            if log:
                log(f"{name}: {counts['tried']} tried, {counts['clean']} clean, "
                    f"{counts['refused']} refused, {counts['failed']} failed "
                    f"({counts['seconds']} s)")  # fmt: skip
                for example in counts["examples"]:
                    log(f"  failed: {example}")
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-loader", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loaders", default=None, help="comma-separated names (default: all)")
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--max-memory-gb", type=float, default=4.0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(argv)
    limit = int(args.max_memory_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    names = set(args.loaders.split(",")) if args.loaders else None
    started = time.perf_counter()
    log = None if args.json else print
    report = fuzz(args.per_loader, args.seed, names, args.max_seconds, log)
    if args.json:
        print(json.dumps(report))
        return 0
    tried = sum(r["tried"] for r in report.values())
    failed = sum(r["failed"] for r in report.values())
    clean = sum(r["clean"] for r in report.values())
    print(f"loaders={len(report)} tried={tried} clean={clean} "
          f"refused={tried - clean - failed} failed={failed} "
          f"seconds={time.perf_counter() - started:.0f}")  # fmt: skip
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
