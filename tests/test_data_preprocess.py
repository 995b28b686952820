"""Raw preprocessing against a plain re-statement of SR-GNN's preprocess.py."""

import calendar
import csv
import operator
import os
import time
from pathlib import Path

import numpy as np
import pytest

from data_tools import DataError, load_dataset
from data_tools.make_fake_yoochoose import write_fake
from data_tools.preprocess import main, prepare_custom, prepare_diginetica, prepare_yoochoose

# --- an independent, deliberately simple statement of the SR-GNN protocol ---------------


def _seconds(text, yoochoose):
    if yoochoose:
        return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return calendar.timegm(time.strptime(text, "%Y-%m-%d"))


def srgnn_reference(path, yoochoose=False):
    """Dicts and lists, the way the original script does it.

    Returns item_dict (raw id string -> id), training sessions, test
    sessions, and the (prefixes, targets, session index) of each side.
    """
    sess_clicks, sess_date = {}, {}
    curid, curdate = None, None
    with open(path, newline="") as f:
        if yoochoose:
            rows = ((r[0], r[1], r[2], None) for r in csv.reader(f))
        else:
            reader = csv.DictReader(f, delimiter=";")
            sid = "session_id" if "session_id" in reader.fieldnames else "sessionId"
            iid = "item_id" if "item_id" in reader.fieldnames else "itemId"
            rows = ((r[sid], r["eventdate"], r[iid], int(r["timeframe"])) for r in reader)
        for sessid, date, item, tf in rows:
            if curdate and curid != sessid:
                sess_date[curid] = _seconds(curdate, yoochoose)  # (over)written on change
            curid, curdate = sessid, date
            sess_clicks.setdefault(sessid, []).append(item if yoochoose else (item, tf))
        sess_date[curid] = _seconds(curdate, yoochoose)
    if not yoochoose:
        for s in sess_clicks:
            ordered = sorted(sess_clicks[s], key=operator.itemgetter(1))
            sess_clicks[s] = [c[0] for c in ordered]
    for s in list(sess_clicks):
        if len(sess_clicks[s]) == 1:
            del sess_clicks[s], sess_date[s]
    counts = {}
    for seq in sess_clicks.values():
        for i in seq:
            counts[i] = counts.get(i, 0) + 1
    for s in list(sess_clicks):
        kept = [i for i in sess_clicks[s] if counts[i] >= 5]
        if len(kept) < 2:
            del sess_clicks[s], sess_date[s]
        else:
            sess_clicks[s] = kept
    split = max(sess_date.values()) - 86400 * (1 if yoochoose else 7)
    tra = sorted([x for x in sess_date.items() if x[1] < split], key=operator.itemgetter(1))
    tes = sorted([x for x in sess_date.items() if x[1] > split], key=operator.itemgetter(1))
    item_dict, tra_seqs, tes_seqs = {}, [], []
    for s, _ in tra:
        tra_seqs.append([item_dict.setdefault(i, len(item_dict) + 1) for i in sess_clicks[s]])
    for s, _ in tes:
        out = [item_dict[i] for i in sess_clicks[s] if i in item_dict]
        if len(out) >= 2:
            tes_seqs.append(out)

    def process(seqs):
        xs, ys, ids = [], [], []
        for k, seq in enumerate(seqs):
            for i in range(1, len(seq)):
                xs.append(seq[:-i])
                ys.append(seq[-i])
                ids.append(k)
        return xs, ys, ids

    return item_dict, tra_seqs, tes_seqs, process(tra_seqs), process(tes_seqs)


def rows(split):
    off = split.offsets.tolist()
    flat = split.items.tolist()
    return [flat[off[i] : off[i + 1]] for i in range(len(split))]


def sessions(ds):
    off = ds.sessions_offsets.tolist()
    flat = ds.sessions_items.tolist()
    return [flat[off[i] : off[i + 1]] for i in range(len(off) - 1)]


def raw_map(ds):
    return {str(ds.item_ids[i]): i for i in range(1, ds.n_items + 1)}


SAMPLE = [
    Path(os.environ.get("MINISRIEM_SHARED_DATA", "/nonexistent")),
    Path(__file__).resolve().parents[1].parent / "shared" / "data",
]
SAMPLE = next(
    (
        p / "diginetica-raw-sample" / "sample_train-item-views.csv"
        for p in SAMPLE
        if (p / "diginetica-raw-sample" / "sample_train-item-views.csv").is_file()
    ),
    None,
)


@pytest.mark.skipif(SAMPLE is None, reason="shared DIGINETICA raw sample not found")
def test_diginetica_sample_matches_reference():
    item_dict, tra, _, (trx, trt, trid), (tex, tet, teid) = srgnn_reference(SAMPLE)
    ds = prepare_diginetica(str(SAMPLE))
    assert raw_map(ds) == item_dict
    assert rows(ds.train) == trx and ds.train.targets.tolist() == trt
    assert ds.train.session.tolist() == trid
    assert rows(ds.test) == tex and ds.test.targets.tolist() == tet
    assert ds.test.session.tolist() == teid
    assert sessions(ds) == tra
    assert (len(ds.train), len(ds.test), ds.n_items) == (1205, 99, 309)


# --- a hand-worked file -----------------------------------------------------------------
# Items 10, 20, 30 are frequent. 40 occurs 5 times, but once in the length-1 session 5,
# which is dropped before counting, so 40 is rare. 50 is rare. 60 occurs 5 times, only
# in test sessions, so it survives the count but is unseen in training.
# Max date 2016-06-08, so the split date is 2016-06-01: session 6 is dropped.
HAND = """\
sessionId;userId;itemId;timeframe;eventdate
3;NA;10;0;2016-05-05
2;NA;30;500;2016-05-05
2;NA;40;100;2016-05-05
3;NA;20;1000;2016-05-05
1;5;10;300;2016-05-01
1;5;20;100;2016-05-01
1;5;50;250;2016-05-01
1;5;30;200;2016-05-01
1;5;40;400;2016-05-01
2;NA;10;300;2016-05-05
4;NA;20;10;2016-06-05
4;NA;30;20;2016-06-05
4;NA;40;30;2016-05-20
5;NA;40;0;2016-05-10
6;NA;10;0;2016-06-01
6;NA;30;5;2016-06-01
7;NA;60;0;2016-06-02
7;NA;20;1;2016-06-02
7;NA;10;2;2016-06-02
8;NA;60;0;2016-06-08
8;NA;60;1;2016-06-08
8;NA;30;2;2016-06-08
9;NA;30;0;2016-06-08
9;NA;60;1;2016-06-08
9;NA;50;2;2016-06-08
9;NA;60;3;2016-06-08
9;NA;20;4;2016-06-08
0;NA;20;0;2016-06-08
0;NA;30;1;2016-06-08
0;NA;40;2;2016-06-08
"""


def test_hand_worked_diginetica(tmp_path):
    path = tmp_path / "train-item-views.csv"
    path.write_text(HAND)
    ds = prepare_diginetica(str(path))
    # Training sessions by date, ties by first appearance in the file:
    #   1 (05-01): by timeframe 20, 30, [50], 10, [40]  -> 20 30 10
    #   3 (05-05, first seen on line 2): 10 20          (its rows are not contiguous)
    #   2 (05-05, first seen on line 3): [40] 10 30
    #   4 (05-20: the date of its LAST ROW in the file, not its latest date): 20 30 [40]
    # Items numbered by first appearance: 20 -> 1, 30 -> 2, 10 -> 3.
    assert ds.item_ids.tolist() == [-1, 20, 30, 10]
    assert sessions(ds) == [[1, 2, 3], [3, 1], [3, 2], [1, 2]]
    assert rows(ds.train) == [[1, 2], [1], [3], [3], [1]]
    assert ds.train.targets.tolist() == [3, 2, 1, 2, 2]
    assert ds.train.session.tolist() == [0, 0, 1, 2, 3]
    # Test: 7 (06-02): [60] 20 10; 8: [60 60] 30 -> too short; 9 then 0 (a date tie,
    # in order of first appearance although 0 < 9): 30 [60 50 60] 20 and 20 30 [40].
    assert rows(ds.test) == [[1], [2], [1]]
    assert ds.test.targets.tolist() == [3, 1, 2]
    assert ds.test.session.tolist() == [0, 1, 2]
    assert ds.stats["clicks"] == 9 + 6
    # and the plain reference agrees
    item_dict, _, _, (trx, trt, _), (tex, tet, _) = srgnn_reference(path)
    assert raw_map(ds) == item_dict and rows(ds.train) == trx and rows(ds.test) == tex


def test_both_header_spellings_give_the_same_result(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(HAND)
    b.write_text(HAND.replace("sessionId;userId;itemId", "session_id;user_id;item_id", 1))
    da, db = prepare_diginetica(str(a)), prepare_diginetica(str(b))
    assert rows(da.train) == rows(db.train) and rows(da.test) == rows(db.test)


# --- YOOCHOOSE --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_yoochoose_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("yoochoose") / "yoochoose-clicks.dat"
    write_fake(str(path), rows=40_000, seed=3, n_items=3000, block_sessions=4000)
    return path


def test_yoochoose_fake_file_is_in_the_real_format(data_yoochoose_file):
    first = data_yoochoose_file.read_text().splitlines()[0].split(",")
    assert len(first) == 4 and first[0].isdigit() and first[1].endswith("Z")
    assert len(first[1]) == len("2014-04-07T10:51:09.277Z")
    assert ",S\n" in data_yoochoose_file.read_text()


def test_yoochoose_fractions_match_reference(data_yoochoose_file):
    item_dict, tra, tes, (trx, trt, trid), (tex, tet, _) = srgnn_reference(
        data_yoochoose_file, yoochoose=True
    )
    out = prepare_yoochoose(str(data_yoochoose_file))
    for name, divisor in (("yoochoose1_64", 64), ("yoochoose1_4", 4)):
        ds = out[name]
        keep = int(len(trx) / divisor)
        assert rows(ds.train) == trx[-keep:] and ds.train.targets.tolist() == trt[-keep:]
        # whole sessions from the one holding the first kept example, like all_train_seq
        assert sessions(ds) == tra[trid[-keep] :]
        assert (ds.train.session + trid[-keep]).tolist() == trid[-keep:]
        # one shared test set; items numbered over the FULL training set
        assert rows(ds.test) == tex and ds.test.targets.tolist() == tet
        assert raw_map(ds) == item_dict and ds.n_items == len(item_dict)
    assert len(out["yoochoose1_4"].train) > len(out["yoochoose1_64"].train)


def test_yoochoose_cli_writes_both_fractions(data_yoochoose_file, tmp_path, capsys):
    assert (
        main(
            ["--dataset", "yoochoose", "--input", str(data_yoochoose_file), "--out", str(tmp_path)]
        )
        == 0
    )
    for name in ("yoochoose1_64", "yoochoose1_4"):
        assert sorted(os.listdir(tmp_path / name)) == ["dataset.json", "dataset.npz"]
        assert load_dataset(str(tmp_path / name)).name == name
    assert "yoochoose1_64" in capsys.readouterr().out


# --- custom logs ------------------------------------------------------------------------


def test_custom_log_follows_the_protocol(tmp_path):
    # the hand-worked file again, as a tab-separated log with other column names and
    # Unix times: eventdate at midnight plus the timeframe in seconds
    lines = ["sid\tts\titem\textra"]
    for line in HAND.splitlines()[1:]:
        s, _, item, tf, date = line.split(";")
        t = calendar.timegm(time.strptime(date, "%Y-%m-%d"))
        lines.append(f"{s}\t{t + int(tf) % 3600}\t{item}\tx")
    path = tmp_path / "log.tsv"
    path.write_text("\n".join(lines) + "\n")
    ds = prepare_custom(
        str(path),
        test_days=7,
        session_col="sid",
        item_col="item",
        time_col="ts",
        delimiter="\t",
        time_format="unix",
    )
    # Times now carry seconds: the split date is 06-08 00:00:02 - 7 days, so session 6
    # (last row 06-01 00:00:05) becomes a test session; training is unchanged.
    digi = prepare_diginetica(str(_write(tmp_path / "d.csv", HAND)))
    assert rows(ds.train) == rows(digi.train)
    assert ds.item_ids.tolist() == digi.item_ids.tolist()


def _write(path, text):
    path.write_text(text)
    return path


def test_custom_iso_times_and_defaults_through_load_dataset(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    lines = ["session_id,item_id,timestamp"]
    for line in HAND.splitlines()[1:]:
        s, _, item, tf, date = line.split(";")
        lines.append(f"{s},{item},{date} 00:00:{int(tf) // 20:02d}")  # keeps tf order
    (folder / "clicks.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset("custom", data_dir=str(tmp_path))
    assert ds.item_ids.tolist() == [-1, 20, 30, 10]
    assert (folder / "prepared" / "dataset.npz").is_file()


def test_custom_json_names_the_file_and_columns(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "custom.json").write_text(
        '{"file": "views.csv", "delimiter": ";", "session_col": "sessionId",'
        ' "item_col": "itemId", "time_col": "eventdate", "time_format": "%Y-%m-%d"}'
    )
    (folder / "views.csv").write_text(HAND)
    ds = load_dataset("custom", data_dir=str(tmp_path))
    assert ds.n_items == 3


def test_cli_reports_data_errors(tmp_path, capsys):
    bad = _write(tmp_path / "train-item-views.csv", HAND.replace("4;NA;30;20", "4;NA;3x;20"))
    out = tmp_path / "out"
    code = main(["--dataset", "diginetica", "--input", str(bad), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "train-item-views.csv:13: itemId '3x'" in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_srgnn_format_output(tmp_path):
    src = _write(tmp_path / "train-item-views.csv", HAND)
    assert (
        main(
            [
                "--dataset",
                "diginetica",
                "--input",
                str(src),
                "--out",
                str(tmp_path / "o"),
                "--format",
                "srgnn",
            ]
        )
        == 0
    )
    assert sorted(os.listdir(tmp_path / "o")) == ["all_train_seq.txt", "test.txt", "train.txt"]
    ds = load_dataset("diginetica", data_dir=str(_link(tmp_path)))
    assert rows(ds.train) == [[1, 2], [1], [3], [3], [1]]


def _link(tmp_path):
    (tmp_path / "dd").mkdir()
    os.symlink(tmp_path / "o", tmp_path / "dd" / "diginetica")
    return tmp_path / "dd"


def test_too_small_input_is_a_data_error(tmp_path):
    path = _write(
        tmp_path / "x.csv", "sessionId;userId;itemId;timeframe;eventdate\n1;NA;1;0;2016-01-01\n"
    )
    with pytest.raises(DataError, match="no session is left"):
        prepare_diginetica(str(path))


def test_yoochoose_header_line_is_skipped(tmp_path):
    body = "".join(
        f"{s},2014-04-0{d}T10:00:0{k}.000Z,{100 + (s + k) % 3},S\n"
        for s, d in zip(range(1, 13), [1] * 6 + [2] * 3 + [4] * 3, strict=True)
        for k in range(3)
    )
    a = _write(tmp_path / "a.dat", body)
    b = _write(tmp_path / "b.dat", "session_id,timestamp,item_id,category\n" + body)
    ya, yb = (
        prepare_yoochoose(str(a), ("yoochoose1_4",)),
        prepare_yoochoose(str(b), ("yoochoose1_4",)),
    )
    assert rows(ya["yoochoose1_4"].test) == rows(yb["yoochoose1_4"].test)
    assert np.array_equal(ya["yoochoose1_4"].item_ids, yb["yoochoose1_4"].item_ids)
