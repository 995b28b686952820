"""SR-GNN pickles: import of the real DIGINETICA files, export, and safety."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from data_tools import DataError, load_dataset
from data_tools.dataset import Dataset
from data_tools.split import Split, augment
from data_tools.srgnn import export_srgnn, import_srgnn, read_pickle


def shared_data():
    """The read-only shared data folder, or None."""
    candidates = [
        os.environ.get("MINISRIEM_SHARED_DATA"),
        Path(__file__).resolve().parents[1].parent / "shared" / "data",
    ]
    for c in candidates:
        if c and (Path(c) / "diginetica" / "train.txt").is_file():
            return Path(c)
    return None


SHARED = shared_data()
needs_shared = pytest.mark.skipif(
    SHARED is None,
    reason="shared DIGINETICA pickles not found (set MINISRIEM_SHARED_DATA)",
)


@pytest.fixture(scope="module")
def data_diginetica():
    if SHARED is None:
        pytest.skip("shared DIGINETICA pickles not found (set MINISRIEM_SHARED_DATA)")
    return import_srgnn(str(SHARED / "diginetica"), "diginetica")


@needs_shared
def test_diginetica_matches_table_1(data_diginetica):
    s = data_diginetica.stats
    assert s["clicks"] == 982_961
    assert s["train_examples"] == 719_470
    assert s["test_examples"] == 60_858
    assert s["items"] == 43_097 and data_diginetica.n_items == 43_097
    # mean length of the augmented examples counting their target, train + test
    assert round(s["avg_length"], 3) == 5.125
    assert s["train_sessions"] == 186_670


@needs_shared
def test_augmenting_all_train_seq_gives_train_txt(data_diginetica):
    sessions = read_pickle(str(SHARED / "diginetica" / "all_train_seq.txt"))
    prefixes, targets = read_pickle(str(SHARED / "diginetica" / "train.txt"))
    lengths = [len(s) for s in sessions]
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    ours = augment(offsets, np.concatenate(sessions))
    assert len(ours) == len(prefixes)
    assert ours.targets.tolist() == targets
    flat = ours.items.tolist()
    off = ours.offsets.tolist()
    assert all(flat[off[i] : off[i + 1]] == prefixes[i] for i in range(len(prefixes)))
    # the imported split is the same, with the session of each example
    assert np.array_equal(data_diginetica.train.items, ours.items)
    assert np.array_equal(data_diginetica.train.session, ours.session)


@needs_shared
def test_padded_diginetica_layout(data_diginetica):
    item_seq, item_seq_len, targets = data_diginetica.test.padded(10)
    assert item_seq.shape == (60_858, 10) and item_seq.dtype == np.int32
    assert item_seq_len.min() == 1 and item_seq_len.max() == 10
    last = item_seq[np.arange(len(targets)), item_seq_len - 1]
    test = data_diginetica.test
    assert np.array_equal(last, test.items[test.offsets[1:] - 1])
    assert targets.min() >= 1 and targets.max() <= 43_097


@needs_shared
def test_load_dataset_caches_outside_read_only_folder(tmp_path, monkeypatch):
    # the shared data folder is read-only: the prepared arrays go to $XDG_CACHE_HOME
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINISRIEM_DATA", raising=False)
    if os.stat(SHARED / "diginetica").st_mode & 0o222:
        pytest.skip("shared data folder is writable here")
    ds = load_dataset("diginetica", data_dir=str(SHARED))
    assert (tmp_path / "cache" / "minisriem" / "diginetica" / "dataset.npz").is_file()
    assert not (SHARED / "diginetica" / "prepared").exists()
    again = load_dataset("diginetica", data_dir=str(SHARED))
    assert again.stats == ds.stats
    assert np.array_equal(again.train.items, ds.train.items)


def small_dataset():
    sessions = [[1, 2, 3], [2, 4], [5, 1, 2, 4]]
    offsets = np.concatenate(([0], np.cumsum([len(s) for s in sessions])))
    items = np.concatenate(sessions).astype(np.int32)
    train = augment(offsets, items)
    test = augment(np.array([0, 2, 5]), np.array([3, 1, 4, 5, 2], dtype=np.int32))
    ids = np.arange(6)
    ids[0] = -1
    return Dataset("small", ids, train, test, offsets, items)


def assert_same_examples(a: Split, b: Split):
    for field in ("offsets", "items", "targets", "session"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_export_then_import_round_trip(tmp_path):
    ds = small_dataset()
    export_srgnn(ds, str(tmp_path))
    with open(tmp_path / "train.txt", "rb") as f:
        prefixes, targets = pickle.load(f)  # plain pickle reads it too, as SR-GNN does
    assert prefixes == [[1, 2], [1], [2], [5, 1, 2], [5, 1], [5]]
    assert targets == [3, 2, 4, 4, 2, 1]
    back = import_srgnn(str(tmp_path), "small")
    assert_same_examples(back.train, ds.train)
    assert_same_examples(back.test, ds.test)
    assert np.array_equal(back.sessions_items, ds.sessions_items)
    assert back.stats == ds.stats
    assert sorted(os.listdir(tmp_path)) == ["all_train_seq.txt", "test.txt", "train.txt"]


def test_import_without_all_train_seq_recovers_sessions(tmp_path):
    ds = small_dataset()
    export_srgnn(ds, str(tmp_path))
    os.remove(tmp_path / "all_train_seq.txt")
    back = import_srgnn(str(tmp_path), "small")
    assert_same_examples(back.train, ds.train)
    assert back.stats["clicks"] == ds.stats["clicks"] == 9 + 5


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "train.txt", "wb") as f:
        pickle.dump(([[1], [2]], [_Evil(marker), 3]), f)
    with pytest.raises(DataError, match=r"train\.txt: refused to load.*(system|posix)"):
        read_pickle(str(tmp_path / "train.txt"))
    assert not marker.exists()


@pytest.mark.parametrize("bad", [(["1", "2"], [3, 4]), ([[1.5], [2]], [3, 4]), {"a": 1}])
def test_foreign_types_are_refused(tmp_path, bad):
    (tmp_path / "test.txt").write_bytes(pickle.dumps(([[1]], [2])))
    (tmp_path / "train.txt").write_bytes(pickle.dumps(bad))
    with pytest.raises(DataError, match=r"train\.txt"):
        import_srgnn(str(tmp_path), "x")


def test_truncated_pickle_is_a_data_error(tmp_path):
    (tmp_path / "train.txt").write_bytes(pickle.dumps(([[1, 2]], [3]))[:-5])
    with pytest.raises(DataError, match=r"train\.txt: not a readable SR-GNN pickle"):
        read_pickle(str(tmp_path / "train.txt"))
