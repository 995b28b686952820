"""Our format, the Split API, and bad input."""

import os

import numpy as np
import pytest

from data_tools import DataError, load_dataset, split_validation
from data_tools.dataset import Dataset, load_prepared
from data_tools.preprocess import main, prepare_diginetica
from data_tools.readers import read_custom, read_diginetica, read_yoochoose
from data_tools.split import Split, augment, sessions_of

HEADER = "sessionId;userId;itemId;timeframe;eventdate\n"


SESSIONS = [[1, 2, 3, 4, 5, 6, 7], [8, 9], [3, 2, 1, 5]]
OFFSETS = np.array([0, 7, 9, 13])
ITEMS = np.concatenate(SESSIONS).astype(np.int32)


def make_split():
    return augment(OFFSETS, ITEMS), OFFSETS


def test_augment_order_and_sessions():
    split, _ = make_split()
    first = split.items[split.offsets[0] : split.offsets[1]].tolist()
    assert first == [1, 2, 3, 4, 5, 6] and split.targets[0] == 7  # longest prefix first
    assert split.session.tolist() == [0] * 6 + [1] + [2] * 3
    session, clicks = sessions_of(split)
    assert np.array_equal(session, split.session) and clicks.tolist() == [7, 2, 4]
    # processing sessions in small blocks (as for large data) changes nothing
    small_blocks = augment(OFFSETS, ITEMS, block_items=3)
    assert np.array_equal(small_blocks.items, split.items)
    assert np.array_equal(small_blocks.offsets, split.offsets)


def test_padded_keeps_the_most_recent_items_left_aligned():
    split, _ = make_split()
    item_seq, item_seq_len, targets = split.padded(L=4)
    assert item_seq.dtype == item_seq_len.dtype == targets.dtype == np.int32
    assert item_seq[0].tolist() == [3, 4, 5, 6] and item_seq_len[0] == 4  # last 4 of 6
    assert item_seq[5].tolist() == [1, 0, 0, 0] and item_seq_len[5] == 1
    assert item_seq[6].tolist() == [8, 0, 0, 0] and targets[6] == 9
    assert item_seq[7].tolist() == [3, 2, 1, 0] and item_seq_len[7] == 3


def test_subset_and_split_validation():
    split, _ = make_split()
    sub = split.subset(np.array([7, 0]))
    assert sub.items[sub.offsets[0] : sub.offsets[1]].tolist() == [3, 2, 1]
    assert sub.targets.tolist() == [5, 7] and sub.session.tolist() == [2, 0]
    train, valid = split_validation(split, fraction=0.34)  # 1 of 3 sessions
    assert set(valid.session.tolist()) == {2} and set(train.session.tolist()) == {0, 1}
    assert len(train) + len(valid) == len(split)
    train, valid = split_validation(split, fraction=0.5)  # round(1.5) = 2 sessions
    assert set(valid.session.tolist()) == {1, 2}
    assert split_validation(split, 0.0) == (split, None)


def test_split_validation_never_cuts_a_session():
    ds = load_dataset("synthetic", n_sessions=600)
    train, valid = split_validation(ds.train, fraction=0.1)
    assert train.session.max() < valid.session.min()
    assert len(np.unique(valid.session)) == round(0.1 * len(np.unique(ds.train.session)))


def test_our_format_round_trip(tmp_path):
    split, offsets = make_split()
    noisy = Split(
        split.offsets, split.items, split.targets, split.session, noise=split.items % 2 == 0
    )
    ids = np.arange(10, dtype=np.int64) * 1000
    ids[0] = -1
    ds = Dataset("toy", ids, noisy, split.subset([0, 6]), offsets, ITEMS * 0 + 1)
    ds.provenance = {"note": "test"}
    ds.save(str(tmp_path))
    back = load_prepared(str(tmp_path / "dataset.npz"))
    assert back.name == "toy" and back.n_items == 9 and back.stats == ds.stats
    assert back.provenance == {"note": "test"}
    for a, b in ((back.train, ds.train), (back.test, ds.test)):
        for field in ("offsets", "items", "targets", "session"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
    assert np.array_equal(back.train.noise, ds.train.noise) and back.test.noise is None
    assert back.item_ids.dtype == np.int64 and back.item_ids[3] == 3000
    assert sorted(os.listdir(tmp_path)) == ["dataset.json", "dataset.npz"]


# --- bad input: a DataError naming the file and line ------------------------------------

GOOD = HEADER + "1;NA;5;0;2016-05-09\n" * 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"x\.csv: the file is empty"),
        (HEADER, r"x\.csv: no data rows"),
        (HEADER.replace(";", ","), r"x\.csv:1: the header does not name"),
        (GOOD + "1,NA,5,0,2016-05-09\n", r"x\.csv:5: expected 5 fields separated by ';'"),
        (GOOD + ";NA;5;0;2016-05-09\n", r"x\.csv:5: sessionId is missing"),
        (GOOD + "1;NA;;0;2016-05-09\n", r"x\.csv:5: itemId is missing"),
        (GOOD + "1;NA;5;;2016-05-09\n", r"x\.csv:5: timeframe is missing"),
        (GOOD + "a1;NA;5;0;2016-05-09\n", r"x\.csv:5: sessionId 'a1' is not an integer"),
        (GOOD + "1;NA;5.5;0;2016-05-09\n", r"x\.csv:5: itemId '5\.5' is not an integer"),
        (GOOD + "1;NA;5;-3;2016-05-09\n", r"x\.csv:5: timeframe '-3' is not an integer"),
        (GOOD + "1;NA;5;0;2016-13-09\n", r"x\.csv:5: eventdate '2016-13-09' is not a date"),
        (GOOD + "1;NA;5;0;09/05/2016\n", r"x\.csv:5: eventdate '09/05/2016' is not a date"),
    ],
)
def test_bad_diginetica_input(tmp_path, text, message):
    (tmp_path / "x.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        read_diginetica(str(tmp_path / "x.csv"))


def test_bad_rows_are_found_in_later_blocks(tmp_path):
    # line numbers stay right across the read blocks
    text = GOOD + "2;NA;6;1;2016-05-09\n" * 500 + "2;NA;6;x;2016-05-09\n"
    (tmp_path / "x.csv").write_text(text)
    with pytest.raises(DataError, match=r"x\.csv:505: timeframe 'x'"):
        read_diginetica(str(tmp_path / "x.csv"), block_bytes=256)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_diginetica(str(tmp_path / "nope.csv"))
    with pytest.raises(DataError, match="is a folder"):
        read_yoochoose(str(tmp_path))


def test_bad_yoochoose_and_custom_input(tmp_path):
    good = "1,2014-04-07T10:51:09.277Z,214536502,0\n"
    (tmp_path / "y.dat").write_text(good + "1,2014-04-07 10:51:09,214536502,S\n")
    with pytest.raises(DataError, match=r"y\.dat:2: timestamp '2014-04-07 10:51:09'"):
        read_yoochoose(str(tmp_path / "y.dat"))
    (tmp_path / "y.dat").write_text(good + "1;2014-04-07T10:51:09.277Z;214536502;0\n")
    with pytest.raises(DataError, match=r"y\.dat:2: expected 4 fields separated by ','"):
        read_yoochoose(str(tmp_path / "y.dat"))
    (tmp_path / "c.csv").write_text("session_id,item_id,timestamp\n1,2,20160101\n")
    with pytest.raises(DataError, match=r"c\.csv:1: no column 'time'"):
        read_custom(str(tmp_path / "c.csv"), time_col="time")
    (tmp_path / "c.csv").write_text("session_id,item_id,timestamp\n1,2,2016-01-01\n1,2,soon\n")
    with pytest.raises(DataError, match=r"c\.csv:3: timestamp 'soon'"):
        read_custom(str(tmp_path / "c.csv"), time_format="%Y-%m-%d")


def test_no_partial_output_on_failure(tmp_path, monkeypatch):
    days = [1] * 30 + [30] * 10
    text = HEADER + "".join(
        f"{s};NA;{i};{i};2016-05-{d:02d}\n" for s, d in enumerate(days) for i in range(1, 6)
    )
    (tmp_path / "in.csv").write_text(text)
    ds = prepare_diginetica(str(tmp_path / "in.csv"))
    out = tmp_path / "out"

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError):
        ds.save(str(out))
    assert os.listdir(out) == []  # no dataset.npz, no dataset.json, no temporary file
    monkeypatch.undo()
    assert (
        main(["--dataset", "diginetica", "--input", str(tmp_path / "in.csv"), "--out", str(out)])
        == 0
    )
    assert sorted(os.listdir(out)) == ["dataset.json", "dataset.npz"]
