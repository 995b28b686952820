"""The field's file formats read by hand: RecBole, session-rec, any SR-GNN folder; bad files."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from data_tools import DataError, load_dataset
from data_tools.recbole import prepare_recbole_inter, read_recbole_split
from data_tools.sessionrec import read_sessionrec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def examples(split):
    """The examples of a split as (prefix, target) pairs of ids."""
    return [
        (split.items[a:b].tolist(), int(t))
        for a, b, t in zip(split.offsets[:-1], split.offsets[1:], split.targets, strict=True)
    ]


def test_a_recbole_pre_split_pair_made_by_hand(tmp_path):
    # columns in another order than documented, and one more column that is ignored
    train = write(
        tmp_path / "shop.train.inter",
        [
            "item_id:token\tsession_id:token\tweight:float\titem_id_list:token_seq",
            "cherry\ts1\t1.0\tapple banana",
            "banana\ts1\t1.0\tapple",
            "apple\ts2\t0.5\tcherry",
        ],
    )
    test = write(
        tmp_path / "shop.test.inter",
        [
            "item_id:token\tsession_id:token\tweight:float\titem_id_list:token_seq",
            "cherry\ts9\t1.0\tbanana apple",
            "durian\ts9\t1.0\tbanana",
        ],
    )
    ds = read_recbole_split(train, test)
    # items numbered by first appearance: each row's list, then its target; training first
    assert ds.name == "shop"
    assert ds.item_tokens.tolist() == ["", "apple", "banana", "cherry", "durian"]
    assert ds.n_items == 4
    assert examples(ds.train) == [([1, 2], 3), ([1], 2), ([3], 1)]
    assert ds.train.session.tolist() == [0, 0, 1]
    assert examples(ds.test) == [([2, 1], 3), ([2], 4)]
    assert ds.test.session.tolist() == [0, 0]
    # a session is its longest prefix plus that example's target
    assert ds.sessions_offsets.tolist() == [0, 3, 5]
    assert ds.sessions_items.tolist() == [1, 2, 3, 3, 1]


def test_a_recbole_valid_file_joins_the_training_examples(tmp_path):
    header = "session_id:token\titem_id_list:token_seq\titem_id:token"
    train = write(tmp_path / "shop.train.inter", [header, "s1\ta\tb", "s2\tb\tc"])
    test = write(tmp_path / "shop.test.inter", [header, "s9\tc\ta"])
    assert examples(read_recbole_split(train, test).train) == [([1], 2), ([2], 3)]
    write(tmp_path / "shop.valid.inter", [header, "s2\tc\td", "s5\td b\ta"])
    with pytest.warns(
        UserWarning, match=r"shop\.valid\.inter: its 2 examples are read as training"
    ):
        ds = read_recbole_split(train, test)
    assert examples(ds.train) == [([1], 2), ([2], 3), ([3], 4), ([4, 2], 1)]
    # s2 in the validation file is a session of its own, after the training file's
    assert ds.train.session.tolist() == [0, 1, 2, 3]
    assert examples(ds.test) == [([3], 1)]
    assert len(ds.provenance["source"]) == 3  # the three files, fingerprinted
    # through load_dataset: prepared once, then loaded from the cache (same fingerprint)
    folder = tmp_path / "data" / "shop"
    folder.mkdir(parents=True)
    for f in ("shop.train.inter", "shop.valid.inter", "shop.test.inter"):
        os.replace(tmp_path / f, folder / f)
    with pytest.warns(UserWarning, match="read as training"):
        first = load_dataset("shop", data_dir=str(tmp_path / "data"))
    assert (folder / "prepared").is_dir()
    again = load_dataset("shop", data_dir=str(tmp_path / "data"))  # no warning: the cache
    assert examples(again.train) == examples(first.train) == examples(ds.train)


def test_a_session_rec_pair_made_by_hand(tmp_path):
    train = write(
        tmp_path / "shop_train_full.txt",
        [
            "Time\tSessionId\tItemId\tCategory",
            "100\t7\t30\tx",
            "90\t7\t10\tx",  # earlier than the row above: clicked first
            "95.5\t7\t20\tx",
            "50\t8\t20\tx",
            "60\t8\t30\tx",
            "200\t9\t10\tx",  # a one-click session: no example, dropped
        ],
    )
    test = write(
        tmp_path / "shop_test.txt",
        ["Time\tSessionId\tItemId\tCategory", "300\t20\t10\ty", "301\t20\t40\ty", "302\t20\t30\ty"],
    )
    ds = read_sessionrec(train, test)
    # sessions by the time of their last click: 8 (60) before 7 (100); clicks by time
    # sessions 8 = [20, 30] and 7 = [10, 20, 30]; items by first appearance: 20, 30, 10, then 40
    assert ds.item_ids.tolist() == [-1, 20, 30, 10, 40]
    assert ds.item_tokens is None
    assert ds.sessions_offsets.tolist() == [0, 2, 5]
    assert ds.sessions_items.tolist() == [1, 2, 3, 1, 2]
    assert examples(ds.train) == [([1], 2), ([3, 1], 2), ([3], 1)]
    assert ds.train.session.tolist() == [0, 1, 1]
    assert examples(ds.test) == [([3, 4], 2), ([3], 4)]
    assert ds.provenance["one_click_sessions_dropped"] == {"train": 1, "test": 0}


def test_a_recbole_session_log_goes_through_the_protocol(tmp_path):
    day = 86400
    rows = ["session_id:token\ttimestamp:float\titem_id:token\tuser_id:token"]
    rows += ["s1\t10\ty\tu", "s1\t5\tx\tu", "s1\t20\tz\tu"]  # ordered by time: x y z
    for k in range(2, 6):
        t = k * day
        rows += [f"s{k}\t{t}\tz\tu", f"s{k}\t{t + 1}\tx\tu", f"s{k}\t{t + 2}\ty\tu"]
    rows += [f"s6\t{20 * day + 2}\tx\tu", f"s6\t{20 * day + 1}\ty\tu"]  # the test period
    rows += [f"s7\t{20 * day + 5}\tq\tu", f"s7\t{20 * day + 6}\tx\tu"]  # q is rare: dropped
    ds = prepare_recbole_inter(write(tmp_path / "log.inter", rows), test_days=7)
    assert ds.name == "log"
    assert ds.item_tokens.tolist() == ["", "x", "y", "z"]
    assert examples(ds.train)[:3] == [([1, 2], 3), ([1], 2), ([3, 1], 2)]
    assert len(ds.train) == 10
    assert examples(ds.test) == [([2], 1)]


def test_any_folder_of_srgnn_pickles_is_a_dataset_by_its_name(tmp_path):
    folder = tmp_path / "data" / "tmall"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sessions = [list(rng.integers(1, 40, size=rng.integers(2, 7)).tolist()) for _ in range(120)]

    def augmented(seqs):
        pairs = [(s[:j], s[j]) for s in seqs for j in range(len(s) - 1, 0, -1)]
        return [p for p, _ in pairs], [t for _, t in pairs]

    with open(folder / "train.txt", "wb") as f:
        pickle.dump(augmented(sessions[:100]), f)
    with open(folder / "test.txt", "wb") as f:
        pickle.dump(augmented(sessions[100:] + [[3, 57]]), f)  # id 57 only in test
    ds = load_dataset("tmall", data_dir=str(tmp_path / "data"))
    assert ds.name == "tmall" and ds.n_items == 57  # the largest id in either file
    assert ds.stats["train_sessions"] == 100
    assert (folder / "prepared" / "dataset.npz").exists()  # cached like the known names

    from minisriem.workflow import evaluate, train

    result = train(
        "tmall",
        data_dir=str(tmp_path / "data"),
        out=str(tmp_path / "run"),
        d=8,
        l=4,
        epochs=1,
        batch_size=32,
        progress=False,
        log=lambda s: None,
    )
    report = evaluate(result.run_dir, data_dir=str(tmp_path / "data"))
    assert report["dataset"] == "tmall" and report["examples"] == len(ds.test)
    assert 0 <= report["metrics"]["hit@20"] <= 1
    assert 0 < report["metrics"]["coverage@20"] <= 1


def test_the_commands_take_any_folder_name(tmp_path):
    folder = tmp_path / "nowplaying"
    folder.mkdir()
    sessions = [[1 + (i + j) % 9 for j in range(2 + i % 4)] for i in range(60)]
    pairs = [(s[:j], s[j]) for s in sessions for j in range(len(s) - 1, 0, -1)]
    for name, part in (("train.txt", pairs[:120]), ("test.txt", pairs[120:])):
        with open(folder / name, "wb") as f:
            pickle.dump(([p for p, _ in part], [t for _, t in part]), f)
    common = ["--data-dir", str(tmp_path), "--threads", "1"]
    for command in (
        ["minisriem.train", "--dataset", "nowplaying", "--epochs", "1", "--d", "8", "--l", "4"]
        + ["--no-progress", "--out", str(tmp_path / "run")],
        ["minisriem.evaluate", "--model", str(tmp_path / "run")],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", *command, *common], capture_output=True, text=True, cwd=ROOT
        )
        assert proc.returncode == 0, proc.stderr
    assert "nowplaying test set" in proc.stdout and "tail share" in proc.stdout


def test_an_unknown_name_without_a_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'tmall'.*SR-GNN pickles"):
        load_dataset("tmall", data_dir=str(tmp_path))
    (tmp_path / "tmall").mkdir()
    with pytest.raises(DataError, match="holds none of SR-GNN's train.txt"):
        load_dataset("tmall", data_dir=str(tmp_path))


def test_recbole_and_session_rec_files_named_after_the_folder_load_by_name(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    header = "session_id:token\titem_id_list:token_seq\titem_id:token"
    write(folder / "shop.train.inter", [header, "1\t5 6\t7", "1\t5\t6"])
    write(folder / "shop.test.inter", [header, "2\t7\t5"])
    ds = load_dataset("shop", data_dir=str(tmp_path))
    assert examples(ds.train) == [([1, 2], 3), ([1], 2)] and ds.item_ids.tolist() == [-1, 5, 6, 7]
    other = tmp_path / "clicks"
    other.mkdir()
    write(other / "clicks_train_full.txt", ["SessionId\tItemId\tTime", "1\t5\t1", "1\t6\t2"])
    write(other / "clicks_test.txt", ["SessionId\tItemId\tTime", "2\t6\t3", "2\t5\t4"])
    assert examples(load_dataset("clicks", data_dir=str(tmp_path)).test) == [([2], 1)]


RECBOLE_HEADER = "session_id:token\titem_id_list:token_seq\titem_id:token"
SESSIONREC_HEADER = "SessionId\tItemId\tTime"


@pytest.mark.parametrize(
    "kind, train_lines, message",
    [
        (
            "recbole",
            ["session:token\titem_id_list:token_seq\titem_id:token", "1\t5\t6"],
            r"x.train.inter:1: the header has no 'session_id:token' column",
        ),
        (
            "recbole",
            ["session_id:token\titem_id_list:token\titem_id:token", "1\t5\t6"],
            r"no 'item_id_list:token_seq' column",
        ),
        ("recbole", [RECBOLE_HEADER, "1\t5 6\t7", "1\t5"], r"x.train.inter:3: expected 3 tab-sep"),
        ("recbole", [RECBOLE_HEADER, "1\t\t7"], r"x.train.inter:2: item_id_list is missing"),
        ("recbole", [RECBOLE_HEADER], r"x.train.inter: no data rows"),
        (
            "session-rec",
            ["SessionID\tItemId\tTime", "1\t5\t1"],
            r"x_train_full.txt:1: the header has no 'SessionId' column",
        ),
        (
            "session-rec",
            [SESSIONREC_HEADER, "1\t5\t1", "1\t6"],
            r"x_train_full.txt:3: expected 3 fields",
        ),
        (
            "session-rec",
            [SESSIONREC_HEADER, "1\t5\t1", "1\t6\t2014-04-07"],
            r"x_train_full.txt:3: Time '2014-04-07' is not a number",
        ),
        ("session-rec", [SESSIONREC_HEADER, "1\t5\t1", "1\t6\tnan"], r":3: Time 'nan' is not a"),
        ("session-rec", [SESSIONREC_HEADER, "1\t\t1"], r"x_train_full.txt:2: ItemId is missing"),
        (
            "recbole-inter",
            ["session_id:token\titem_id:token\ttimestamp:float", "a\tb\t12:30"],
            r"x.inter:2: timestamp:float '12:30' is not a number",
        ),
        (
            "recbole-inter",
            ["session_id:token\titem_id:token\ttime:float", "a\tb\t1"],
            r"x.inter:1: the header has no 'timestamp:float' column",
        ),
    ],
)
def test_bad_files_get_one_line_errors(tmp_path, kind, train_lines, message):
    if kind == "recbole":
        train = write(tmp_path / "x.train.inter", train_lines)
        test = write(tmp_path / "x.test.inter", [RECBOLE_HEADER, "2\t5\t6"])
        call = lambda: read_recbole_split(train, test)  # noqa: E731
    elif kind == "session-rec":
        train = write(tmp_path / "x_train_full.txt", train_lines)
        test = write(tmp_path / "x_test.txt", [SESSIONREC_HEADER, "2\t5\t1", "2\t6\t2"])
        call = lambda: read_sessionrec(train, test)  # noqa: E731
    else:
        train = write(tmp_path / "x.inter", train_lines)
        call = lambda: prepare_recbole_inter(train)  # noqa: E731
    with pytest.raises(DataError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_the_convert_command_reports_a_bad_file_in_one_line(tmp_path):
    write(tmp_path / "x_train_full.txt", [SESSIONREC_HEADER, "1\t5\tsoon"])
    write(tmp_path / "x_test.txt", [SESSIONREC_HEADER, "2\t5\t1"])
    proc = subprocess.run(
        [sys.executable, "-m", "data_tools.convert", "--from", "session-rec"]
        + ["--input", str(tmp_path / "x"), "--to", "npz", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "x_train_full.txt:2: Time 'soon' is not a number" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_session_ids_that_stop_being_integers_part_way_are_read_as_tokens(tmp_path):
    from data_tools.clicklog import ordered_sessions, read_token_clicks

    path = write(
        tmp_path / "x.txt",
        [
            "SessionId\tItemId\tTime",
            "1\ta\t1",
            "1\tb\t2",
            "2\tc\t3",
            "s3\ta\t4",
            "s3\tc\t5",
            "2\tb\t6",
        ],
    )
    cols = {"session": 0, "item": 1, "time": 2}
    item_codes = {}
    clicks = read_token_clicks(path, cols, cols, 3, item_codes, block_bytes=8)  # many blocks
    assert list(item_codes) == [b"a", b"b", b"c"]  # each item once, though read twice
    offsets, items, times, dropped = ordered_sessions(clicks)
    assert offsets.tolist() == [0, 2, 4, 6] and dropped == 0
    assert items.tolist() == [0, 1, 0, 2, 2, 1]  # sessions 1, s3, 2 by their last click
    assert times.tolist() == [1, 2, 4, 5, 3, 6]
