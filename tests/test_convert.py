"""Round trips through every format give identical examples; the convert command."""

import os
import subprocess
import sys

import numpy as np
import pytest

from data_tools import DataError, Dataset, load_dataset
from data_tools.convert import TO, examples_digest, read_input, write_output
from data_tools.protocol import Prepared, Sessions, to_dataset
from data_tools.srgnn import read_pickle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def made_dataset(seed=0, n_sessions=80, divisor=1, tokens=None):
    """Sessions of raw ids numbered as the protocol numbers them, augmented by ``to_dataset``."""
    rng = np.random.default_rng(seed)
    pool = rng.choice(10**9, size=30, replace=False) + 1  # raw ids like real logs'
    sessions = [rng.choice(pool, size=rng.integers(2, 8)).tolist() for _ in range(n_sessions)]
    first_seen = list(dict.fromkeys(x for s in sessions[:60] for x in s))
    new_id = {raw: i + 1 for i, raw in enumerate(first_seen)}

    def csr(seqs):
        seqs = [[new_id[x] for x in s if x in new_id] for s in seqs]
        seqs = [s for s in seqs if len(s) >= 2]
        offsets = np.concatenate(([0], np.cumsum([len(s) for s in seqs]))).astype(np.int64)
        return Sessions(offsets, np.concatenate(seqs).astype(np.int32))

    item_ids = np.array([-1] + first_seen, dtype=np.int64)
    prepared = Prepared(item_ids, csr(sessions[:60]), csr(sessions[60:]), 0)
    ds = to_dataset("made", prepared, {"source": []}, divisor)
    if tokens is not None:
        ds.item_tokens = np.array([""] + [f"{tokens}-{x}" for x in first_seen])
        ds.item_ids = np.arange(len(item_ids), dtype=np.int64)
        ds.item_ids[0] = -1
    return ds


def same_examples(a, b):
    for x, y in ((a.train, b.train), (a.test, b.test)):
        np.testing.assert_array_equal(x.offsets, y.offsets)
        np.testing.assert_array_equal(x.items, y.items)
        np.testing.assert_array_equal(x.targets, y.targets)
        np.testing.assert_array_equal(x.session, y.session)


@pytest.mark.parametrize("fmt", TO)
def test_a_round_trip_through_each_format_gives_identical_examples(tmp_path, fmt):
    ds = made_dataset()
    write_output(ds, fmt, str(tmp_path / fmt))
    back = read_input(fmt, str(tmp_path / fmt), name="made")
    same_examples(ds, back)  # same sessions, targets and item order, in the same ids
    assert back.n_items == ds.n_items
    np.testing.assert_array_equal(back.sessions_offsets, ds.sessions_offsets)
    np.testing.assert_array_equal(back.sessions_items, ds.sessions_items)
    if fmt != "srgnn":  # pickles carry no raw ids: item i is i there
        np.testing.assert_array_equal(back.item_ids, ds.item_ids)
    assert examples_digest(back) == examples_digest(ds)


def test_a_chain_through_every_format_and_back(tmp_path):
    ds = made_dataset(seed=1)
    current, chain = ds, ["srgnn", "recbole", "session-rec", "npz", "recbole", "srgnn"]
    for step, fmt in enumerate(chain):
        folder = str(tmp_path / f"{step}-{fmt}")
        write_output(current, fmt, folder, name="made")
        current = read_input(fmt, folder, name="made")
        same_examples(ds, current)
    assert examples_digest(current) == examples_digest(ds)


def test_text_tokens_survive_every_exchange_format(tmp_path):
    ds = made_dataset(seed=2, tokens="sku")
    for fmt in ("npz", "recbole", "session-rec"):
        write_output(ds, fmt, str(tmp_path / fmt))
        back = read_input(fmt, str(tmp_path / fmt), name="made")
        same_examples(ds, back)
        assert back.item_tokens.tolist() == ds.item_tokens.tolist()
        assert examples_digest(back, labels=True) == examples_digest(ds, labels=True)
    first_line = (tmp_path / "recbole" / "made.train.inter").read_text().splitlines()[1]
    assert first_line.startswith("1\tsku-") and "\tsku-" in first_line[6:]


def test_a_partly_used_first_session_comes_back_as_the_part_used(tmp_path):
    # like YOOCHOOSE 1/64: keeping the last quarter of the examples cuts the first session
    ds = made_dataset(seed=3, divisor=4)
    first = ds.sessions_items[ds.sessions_offsets[0] : ds.sessions_offsets[1]]
    used = ds.train.lengths[0] + 1  # the first kept example's prefix and its target
    assert used < len(first), "the test needs a partly used session"
    write_output(ds, "session-rec", str(tmp_path))
    back = read_input("session-rec", str(tmp_path), name="made")
    # items were numbered over all training sessions, before the cut, so the files'
    # first-appearance numbering differs: the examples are the same in raw ids
    assert examples_digest(back, labels=True) == examples_digest(ds, labels=True)
    assert examples_digest(back) != examples_digest(ds)
    for x, y in ((ds.train, back.train), (ds.test, back.test)):
        np.testing.assert_array_equal(ds.item_ids[x.items], back.item_ids[y.items])
        np.testing.assert_array_equal(ds.item_ids[x.targets], back.item_ids[y.targets])
        np.testing.assert_array_equal(x.offsets, y.offsets)
    # the session holds only the clicks the examples use
    head = back.sessions_items[: back.sessions_offsets[1]]
    np.testing.assert_array_equal(back.item_ids[head], ds.item_ids[first[:used]])
    assert back.stats["clicks"] == ds.stats["clicks"] - (len(first) - used)

    # through SR-GNN pickles first (ids are the raw ids there), --keep-ids keeps them exactly
    write_output(ds, "srgnn", str(tmp_path / "p"))
    pickles = read_input("srgnn", str(tmp_path / "p"))
    write_output(pickles, "session-rec", str(tmp_path / "sr"))
    kept = read_input("session-rec", str(tmp_path / "sr"), name="made", keep_ids=True)
    same_examples(ds, kept)
    assert kept.n_items == ds.n_items


def test_unused_ids_need_keep_ids_to_keep_n(tmp_path):
    ds = made_dataset(seed=4)
    write_output(ds, "srgnn", str(tmp_path / "p"))
    pickles = read_input("srgnn", str(tmp_path / "p"))
    # renumber the pickles' ids 1..n onto 2, 4, 6...: ids with gaps, n twice the items
    spread = Dataset(
        "spread",
        np.concatenate(([-1], np.arange(1, 2 * ds.n_items + 1))),
        *(pickles.train, pickles.test),
        pickles.sessions_offsets,
        pickles.sessions_items,
    )
    for split in (spread.train, spread.test):
        split.items[:] *= 2
        split.targets[:] *= 2
    spread.sessions_items[:] *= 2
    write_output(spread, "recbole", str(tmp_path / "r"))
    renumbered = read_input("recbole", str(tmp_path / "r"))
    kept = read_input("recbole", str(tmp_path / "r"), keep_ids=True)
    assert renumbered.n_items == ds.n_items and kept.n_items == 2 * ds.n_items
    same_examples(spread, kept)
    assert examples_digest(kept) == examples_digest(spread)
    assert examples_digest(renumbered, labels=True) == examples_digest(spread, labels=True)


def test_examples_that_are_not_prefixes_of_sessions_do_not_go_to_session_rec(tmp_path):
    ds = load_dataset("synthetic", n_sessions=200, n_items=40, n_groups=4, seed=0)
    # the synthetic data drops examples whose target is a noise click
    with pytest.raises(DataError, match="export to recbole or srgnn"):
        write_output(ds, "session-rec", str(tmp_path))
    write_output(ds, "recbole", str(tmp_path))  # RecBole's pre-split form holds any examples
    same_examples(ds, read_input("recbole", str(tmp_path), keep_ids=True))


def test_tokens_with_spaces_cannot_go_to_recbole(tmp_path):
    ds = made_dataset(seed=5, tokens="blue shirt")
    with pytest.raises(DataError, match="white space"):
        write_output(ds, "recbole", str(tmp_path))
    assert not os.listdir(tmp_path)


def convert(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "data_tools.convert", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_command_round_trips_pickles_through_recbole_and_session_rec(tmp_path):
    ds = made_dataset(seed=6)
    write_output(ds, "srgnn", str(tmp_path / "pickles"))
    first = convert(
        "--from", "srgnn", "--input", str(tmp_path / "pickles"), "--to", "recbole",
        "--out", str(tmp_path / "rb"), "--name", "made",
    )  # fmt: skip
    assert "made.train.inter" in first
    second = convert(
        "--from", "recbole", "--input", str(tmp_path / "rb" / "made.train.inter"),
        "--to", "session-rec", "--out", str(tmp_path / "sr"),
    )  # fmt: skip
    assert "times: synthetic" in second and "the source has no click times" in second
    third = convert(
        "--from", "session-rec", "--input", str(tmp_path / "sr"), "--to", "srgnn",
        "--out", str(tmp_path / "back"),
    )  # fmt: skip
    digests = [line.split("sha256 ids ")[1][:16] for line in (first, second, third)]
    assert len(set(digests)) == 1
    for name in ("train.txt", "test.txt"):
        assert read_pickle(str(tmp_path / "back" / name)) == read_pickle(
            str(tmp_path / "pickles" / name)
        )


def test_click_times_are_kept_where_the_source_has_them(tmp_path):
    header = "SessionId\tItemId\tTime"
    (tmp_path / "in_train_full.txt").write_text(
        f"{header}\n8\t20\t50\n8\t30\t60.5\n7\t10\t90\n7\t20\t95\n7\t30\t100\n"
    )
    (tmp_path / "in_test.txt").write_text(f"{header}\n20\t10\t300\n20\t30\t302\n")
    ds = read_input("session-rec", str(tmp_path / "in"))
    assert ds.sessions_time.tolist() == [50, 60.5, 90, 95, 100]
    assert ds.test_sessions_time.tolist() == [300, 302]
    write_output(ds, "npz", str(tmp_path / "npz"))
    back = read_input("npz", str(tmp_path / "npz"))
    write_output(back, "session-rec", str(tmp_path / "out"), name="in")
    # the same clicks and times; sessions renumbered 1, 2 (training), 3 (test) in time order
    assert (tmp_path / "out" / "in_train_full.txt").read_text() == (
        f"{header}\n1\t20\t50\n1\t30\t60.5\n2\t10\t90\n2\t20\t95\n2\t30\t100\n"
    )
    assert (tmp_path / "out" / "in_test.txt").read_text() == f"{header}\n3\t10\t300\n3\t30\t302\n"


def test_a_recbole_log_keeps_its_times_through_to_session_rec(tmp_path):
    day = 86400
    rows = ["session_id:token\titem_id:token\ttimestamp:float"]
    for k in range(1, 6):
        rows += [f"s{k}\tx\t{k * day}", f"s{k}\ty\t{k * day + 7}", f"s{k}\tz\t{k * day + 9}"]
    rows += [f"t\ty\t{20 * day}", f"t\tx\t{20 * day + 3}"]
    (tmp_path / "log.inter").write_text("\n".join(rows) + "\n")
    ds = read_input("recbole", str(tmp_path / "log.inter"))
    write_output(ds, "session-rec", str(tmp_path / "sr"))
    lines = (tmp_path / "sr" / "log_train_full.txt").read_text().splitlines()
    assert lines[1:4] == [f"1\tx\t{day}", f"1\ty\t{day + 7}", f"1\tz\t{day + 9}"]
    test_lines = (tmp_path / "sr" / "log_test.txt").read_text().splitlines()
    assert test_lines[1:] == [f"6\ty\t{20 * day}", f"6\tx\t{20 * day + 3}"]


def test_times_that_would_reorder_the_clicks_are_not_written(tmp_path):
    ds = made_dataset(seed=7)
    clicks = len(ds.sessions_items)
    test_clicks = int((ds.test.lengths[np.diff(ds.test.session, prepend=-1) != 0] + 1).sum())
    ds.sessions_time = np.arange(clicks, dtype=np.float64)[::-1].copy()  # backwards in time
    ds.test_sessions_time = np.arange(test_clicks, dtype=np.float64)
    notes = []
    write_output(ds, "session-rec", str(tmp_path), report=notes.append)
    assert notes == [
        "times: synthetic, one second per click from 1000000000 (the clicks' own times "
        "would reorder the clicks when read back); session and click order are kept"
    ]
    same_examples(ds, read_input("session-rec", str(tmp_path), name="made"))
    ds.sessions_time = ds.sessions_time[::-1].copy()  # forwards: written as they are
    write_output(ds, "session-rec", str(tmp_path), report=notes.append)
    assert notes[-1] == "times: the clicks' own"
    back = read_input("session-rec", str(tmp_path), name="made")
    same_examples(ds, back)
    np.testing.assert_array_equal(back.sessions_time, ds.sessions_time)


def test_a_raw_custom_log_converts_with_its_times(tmp_path):
    day = 86400
    rows = ["sid,iid,ts"]
    for k in range(1, 6):
        rows += [f"{k},7,{k * day}", f"{k},8,{k * day + 5}", f"{k},9,{k * day + 6}"]
    rows += [f"9,8,{20 * day}", f"9,7,{20 * day + 1}"]
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n")
    columns = {"session_col": "sid", "item_col": "iid", "time_col": "ts"}
    ds = read_input("raw", str(tmp_path / "log.csv"), name="log", columns=columns)
    assert ds.name == "log" and ds.item_ids.tolist() == [-1, 7, 8, 9]
    assert ds.sessions_time[:3].tolist() == [day, day + 5, day + 6]
    notes = []
    write_output(ds, "session-rec", str(tmp_path / "sr"), report=notes.append)
    assert notes == ["times: the clicks' own"]
    back = read_input("session-rec", str(tmp_path / "sr"), name="log")
    same_examples(ds, back)
    np.testing.assert_array_equal(back.test_sessions_time, [20 * day, 20 * day + 1])


def test_a_model_trained_on_tokens_keeps_them(tmp_path):
    from minisriem.workflow import recommend, train

    ds = made_dataset(seed=4, tokens="sku")
    result = train(
        ds, out=str(tmp_path / "run"), epochs=1, d=8, l=4, progress=False, log=lambda s: None
    )
    saved = result.load_model()
    assert saved.item_tokens == ds.item_tokens.tolist()
    session = ds.item_tokens[ds.test.items[: ds.test.lengths[0]]].tolist()
    rec = recommend(saved, session, k=3)
    assert rec.session == session[-saved.config.L :] and all(
        t.startswith("sku-") for t in rec.items
    )


def test_a_command_prints_a_warning_as_one_line(tmp_path):
    rb = tmp_path / "rb"
    rb.mkdir()
    header = "session_id:token\titem_id_list:token_seq\titem_id:token\n"
    (rb / "shop.train.inter").write_text(header + "s1\ta b\tc\ns2\tb\tc\n")
    (rb / "shop.valid.inter").write_text(header + "s3\tc\ta\n")
    (rb / "shop.test.inter").write_text(header + "s9\ta\tb\n")
    proc = subprocess.run(
        [sys.executable, "-m", "data_tools.convert", "--from", "recbole", "--input",
         str(rb / "shop.train.inter"), "--to", "srgnn", "--out", str(tmp_path / "pickles")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines == [
        f"warning: {rb / 'shop.valid.inter'}: its 1 examples are read as training examples "
        "after the training file's; the trainer holds out its own validation split"
    ]
