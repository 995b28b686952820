"""Issue 13, data: empty or inconsistent data, huge ids, damaged caches, time units, inputs
that are not plain files, stale temporary files, Ctrl-C in preprocess.

Each test uses the issue's example and at least one variation of our own.
"""

import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from data_tools import DataError, Dataset, load_dataset
from data_tools import preprocess as preprocess_cmd
from data_tools.dataset import MAX_N_ITEMS, load_prepared
from data_tools.fileio import atomic_outputs, fingerprint, remove_stale_temps
from data_tools.preprocess import prepare_custom
from data_tools.split import augment
from data_tools.srgnn import import_srgnn
from minisriem.workflow import evaluate, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400
START = 1_400_000_000


def click_log(n_sessions=120, unit=1, seed=0):
    """A custom click log (CSV text) that the protocol keeps: 10 items, 30 days."""
    rng = np.random.default_rng(seed)
    rows = ["session_id,item_id,timestamp"]
    for s in range(n_sessions):
        t = START + int(s * 30 * DAY / n_sessions)
        for j, item in enumerate(rng.integers(1, 11, size=3)):
            rows.append(f"{s + 1},{item},{(t + 60 * j) * unit}")
    return "\n".join(rows) + "\n"


def write_pickles(folder, train_pairs, test_pairs):
    folder.mkdir(parents=True, exist_ok=True)
    for name, pairs in (("train.txt", train_pairs), ("test.txt", test_pairs)):
        with open(folder / name, "wb") as f:
            pickle.dump(([list(p) for p, _ in pairs], [t for _, t in pairs]), f)


def pairs_of(sessions):
    return [(s[:j], s[j]) for s in sessions for j in range(len(s) - 1, 0, -1)]


SESSIONS = [[1 + (i + j) % 9 for j in range(2 + i % 4)] for i in range(60)]


# --- data that is empty or inconsistent -----------------------------------------------


def test_an_empty_test_set_is_refused_not_trained_into_nan(tmp_path):
    write_pickles(tmp_path / "toy", pairs_of(SESSIONS), [])  # the empty test.txt
    with pytest.raises(ValueError, match="the test set has no examples"):
        train("toy", data_dir=str(tmp_path), out=str(tmp_path / "run"), d=4, l=2, epochs=1)
    assert not (tmp_path / "run").exists()  # nothing written, no metrics.jsonl of nan
    ds = load_dataset("toy", str(tmp_path))  # variation: evaluating on it
    from minisriem.checkpoint import SavedModel
    from minisriem.config import Config
    from minisriem.model import SRIEM

    saved = SavedModel(SRIEM(ds.n_items, d=4, l=2), Config(d=4, l=2), ds.item_ids)
    with pytest.raises(ValueError, match="test set has no examples; nothing to evaluate"):
        evaluate(saved, ds)


def test_ids_of_2_70_are_a_data_error_not_overflow(tmp_path):
    write_pickles(tmp_path / "big", [([1, 2**70], 3)], [([1], 2)])
    with pytest.raises(DataError, match=r"train.txt: prefixes has item ids outside 1..2\*\*31-1"):
        import_srgnn(str(tmp_path / "big"), "big")
    log = tmp_path / "clicks.csv"  # variation: in a raw click log
    log.write_text(f"session_id,item_id,timestamp\n1,{2**70},{START}\n")
    with pytest.raises(
        DataError, match=r"clicks.csv:2: item_id '1180591620717411303424' is longer"
    ):
        prepare_custom(str(log))


def test_a_one_off_huge_item_id_is_refused_before_allocating(tmp_path):
    pairs = pairs_of(SESSIONS)
    write_pickles(tmp_path / "huge", pairs + [([1], 2**31 - 1)], pairs[:5])
    with pytest.raises(
        DataError, match=f"largest item id is 2,147,483,647, more than the {MAX_N_ITEMS:,}"
    ):
        import_srgnn(str(tmp_path / "huge"), "huge")


def test_sparse_ids_warn_but_yoochoose_like_ids_do_not(tmp_path):
    sessions = [[s[0], s[1] + 20_000] + s[2:] for s in SESSIONS]  # 9 items, ids to 20,009
    write_pickles(tmp_path / "sparse", pairs_of(sessions[:50]), pairs_of(sessions[50:]))
    with pytest.warns(UserWarning, match="largest item id is 20,009 but only 18 items are used"):
        train("sparse", data_dir=str(tmp_path), out=str(tmp_path / "r1"), d=4, l=2,
              epochs=1, progress=False, log=lambda s: None)  # fmt: skip
    # YOOCHOOSE 1/64 has ids to 37,483 with 17,376 in use: 2.2 times, no warning
    ds = load_dataset("sparse", str(tmp_path))
    ids = np.arange(37_484, dtype=np.int64)
    ids[0] = -1
    ds.item_ids = ids
    ds.stats["items"] = 17_376
    import warnings

    from minisriem.memory import check_item_ids

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_item_ids(ds)


def test_memory_a_setting_implies_is_refused_before_allocating(tmp_path):
    n = 2_000_000
    ids = np.arange(n + 1, dtype=np.int64)
    ids[0] = -1
    split = augment(np.array([0, 3, 6]), np.array([1, 2, 3, 4, 5, n], dtype=np.int32))
    ds = Dataset("wide", ids, split, split, np.array([0, 3, 6]), np.array([1, 2, 3, 4, 5, n]))
    sparse_ids = "the largest item id is 2,000,000 but only 6"  # the warning of every train()
    with (
        pytest.warns(UserWarning, match=sparse_ids),
        pytest.raises(ValueError, match=r"needs about [\d,.]+ GB, more than the limit") as e,
    ):
        train(ds, out=str(tmp_path / "r"), d=4096, l=8, epochs=1, valid_fraction=0)
    assert "--max-memory-gb" in str(e.value) and not (tmp_path / "r").exists()
    # variation: a low limit refuses even small settings; raising it lets the run start
    with (
        pytest.warns(UserWarning, match=sparse_ids),
        pytest.raises(ValueError, match="more than the limit of 0.0 GB"),
    ):
        train(ds, out=str(tmp_path / "r"), d=8, l=4, epochs=1, valid_fraction=0,
              max_memory_gb=0.01)  # fmt: skip


# --- caches: damaged ones are rebuilt, changed sources are seen -------------------------


def custom_dir(tmp_path, text):
    folder = tmp_path / "custom"
    folder.mkdir(exist_ok=True)
    (folder / "clicks.csv").write_text(text)
    return folder


def test_a_truncated_or_incomplete_prepared_npz_is_rebuilt(tmp_path):
    folder = custom_dir(tmp_path, click_log())
    first = load_dataset("custom", str(tmp_path))
    npz = folder / "prepared" / "dataset.npz"
    data = npz.read_bytes()
    npz.write_bytes(data[: len(data) // 2])  # the truncated file
    with pytest.warns(UserWarning, match="rebuilding it"):
        again = load_dataset("custom", str(tmp_path))
    assert np.array_equal(again.train.items, first.train.items)
    with np.load(npz) as z:  # variation: a file missing an array (incomplete)
        arrays = {k: z[k] for k in z.files if k != "test_targets"}
    np.savez(npz, **arrays)
    with pytest.raises(DataError, match="incomplete, no test_targets"):
        load_prepared(str(folder / "prepared"))
    with pytest.warns(UserWarning, match="rebuilding it"):
        load_dataset("custom", str(tmp_path))
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["test_targets"] = arrays["test_targets"] + 10_000  # ids beyond n
    np.savez(npz, **arrays)
    with pytest.raises(DataError, match=r"test examples: targets hold ids outside 1..10"):
        load_prepared(str(npz))


def test_a_source_changed_with_the_same_size_and_mtime_is_seen(tmp_path):
    text = click_log()
    folder = custom_dir(tmp_path, text)
    log = folder / "clicks.csv"
    before = load_dataset("custom", str(tmp_path))
    st = os.stat(log)
    log.write_text(text.replace(",3,", ",4,"))  # same size
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    assert os.stat(log).st_size == st.st_size and os.stat(log).st_mtime_ns == st.st_mtime_ns
    after = load_dataset("custom", str(tmp_path))
    assert not np.array_equal(before.item_ids, after.item_ids) or not np.array_equal(
        before.train.items, after.train.items
    )
    # variation: the fingerprint is the content's sha256, streamed in blocks
    import hashlib

    assert fingerprint([str(log)])[0]["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest()


# --- time units -------------------------------------------------------------------------


def test_millisecond_timestamps_under_auto_are_detected_and_said(tmp_path, capfd):
    seconds = tmp_path / "s.csv"
    millis = tmp_path / "ms.csv"
    seconds.write_text(click_log())
    millis.write_text(click_log(unit=1000))
    a = prepare_custom(str(seconds))
    b = prepare_custom(str(millis))  # the example: read as seconds before
    err = capfd.readouterr().err
    assert "read as Unix milliseconds" in err and "read as Unix seconds" in err
    assert len(a.test) == len(b.test) and np.array_equal(a.train.items, b.train.items)
    # variations: milliseconds named as seconds, and microseconds, are refused
    with pytest.raises(DataError, match=r"ms.csv:2: timestamp \d+ is not a Unix time in seconds"):
        prepare_custom(str(millis), time_format="unix")
    micro = tmp_path / "us.csv"
    micro.write_text(click_log(unit=10**6))
    with pytest.raises(DataError, match="us.csv:2: time value .* has 16 digits"):
        prepare_custom(str(micro))


# --- inputs that are not plain files ----------------------------------------------------


def test_a_fifo_input_is_read_once_by_preprocess(tmp_path, capsys):
    fifo = tmp_path / "clicks.fifo"
    os.mkfifo(fifo)
    text = click_log()

    def feed():
        with open(fifo, "w") as f:
            f.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    status = preprocess_cmd.main(
        ["--dataset", "custom", "--input", str(fifo), "--out", str(tmp_path / "out")]
    )
    writer.join(timeout=10)
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "dataset.npz").is_file()
    # variation: the library refuses a FIFO at once instead of hanging on it
    start = time.monotonic()
    with pytest.raises(DataError, match="not a regular file"):
        prepare_custom(str(fifo))
    assert time.monotonic() - start < 5


def test_stale_temporary_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".dataset.npz.{dead.pid}.abc123xy.tmp"
    live = tmp_path / f".dataset.npz.{os.getpid()}.zzz999qq.tmp"
    other = tmp_path / ".notes.tmp"  # not our naming: never touched
    for p in (stale, live, other):
        p.write_bytes(b"x" * 100)
    with atomic_outputs([str(tmp_path / "out.txt")]) as (tmp,):
        assert f".out.txt.{os.getpid()}." in os.path.basename(tmp)
        with open(tmp, "w") as f:
            f.write("done")
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temps(str(tmp_path)) == []  # variation: nothing left to remove


def test_ctrl_c_in_preprocess_is_one_line_and_130(tmp_path):
    fifo = tmp_path / "slow.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_tools.preprocess", "--dataset", "custom",
         "--input", str(fifo), "--out", str(tmp_path / "out")],
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    with open(fifo, "w") as f:  # opens once preprocess reads; keep writing slowly
        f.write("session_id,item_id,timestamp\n")
        f.flush()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip() == "interrupted"
    assert not (tmp_path / "out").exists()
