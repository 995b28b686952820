"""Where data lives: the data-dir rule, the caches and the error when nothing is there."""

import os
import stat

import numpy as np
import pytest

from data_tools import DataError, load_dataset, resolve_data_dir
from data_tools.dataset import Dataset
from data_tools.split import augment
from data_tools.srgnn import export_srgnn


def test_data_dir_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINISRIEM_DATA", raising=False)
    assert resolve_data_dir() == str(tmp_path / "data")
    monkeypatch.setenv("MINISRIEM_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == str(tmp_path / "env")
    assert resolve_data_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("diginetica", r"put train-item-views\.csv .* in .*/diginetica/; .*CIKM Cup 2016"),
        ("yoochoose1_64", r"put yoochoose-clicks\.dat .* in .*/yoochoose1_64/; .*RecSys"),
        ("custom", r"put your click log at .*/custom/clicks\.csv"),
    ],
)
def test_nothing_there_says_what_to_put_where(tmp_path, name, expected):
    with pytest.raises(DataError, match=expected) as info:
        load_dataset(name, data_dir=str(tmp_path))
    assert "\n" not in str(info.value)


def test_unknown_name():
    with pytest.raises(DataError, match="unknown dataset 'tmall'"):
        load_dataset("tmall")


def write_pickles(folder, extra_session=()):
    sessions = [[1, 2, 3], [2, 3], [3, 1, 2, *extra_session]]
    offsets = np.concatenate(([0], np.cumsum([len(s) for s in sessions])))
    items = np.concatenate(sessions).astype(np.int32)
    ids = np.arange(4)
    ids[0] = -1
    test = augment(np.array([0, 2]), np.array([1, 3], dtype=np.int32))
    export_srgnn(Dataset("d", ids, augment(offsets, items), test, offsets, items), str(folder))


def test_env_data_dir_and_cache_in_the_dataset_folder(tmp_path, monkeypatch):
    write_pickles(tmp_path / "diginetica")
    monkeypatch.setenv("MINISRIEM_DATA", str(tmp_path))
    ds = load_dataset("diginetica")
    assert len(ds.train) == 5
    assert (tmp_path / "diginetica" / "prepared" / "dataset.npz").is_file()


def test_cache_falls_back_to_xdg_when_read_only_and_is_rebuilt(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "diginetica"
    write_pickles(folder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        ds = load_dataset("diginetica", data_dir=str(tmp_path / "data"))
        cache = tmp_path / "xdg" / "minisriem" / "diginetica"
        assert (cache / "dataset.npz").is_file() and not (folder / "prepared").exists()
        assert len(ds.train) == 5
        before = os.stat(cache / "dataset.npz").st_mtime_ns
        assert len(load_dataset("diginetica", data_dir=str(tmp_path / "data")).train) == 5
        assert os.stat(cache / "dataset.npz").st_mtime_ns == before  # used, not rebuilt
        os.chmod(folder, 0o755)
        write_pickles(folder, extra_session=(1,))  # the source changes
        os.chmod(folder, 0o555)
        assert len(load_dataset("diginetica", data_dir=str(tmp_path / "data")).train) == 6
    finally:
        os.chmod(folder, 0o755)


def test_cache_defaults_to_home_dot_cache(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "yoochoose1_64"
    write_pickles(folder)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.chmod(folder, 0o555)
    try:
        load_dataset("yoochoose1_64", data_dir=str(tmp_path / "data"))
    finally:
        os.chmod(folder, 0o755)
    assert (tmp_path / "home" / ".cache" / "minisriem" / "yoochoose1_64" / "dataset.npz").is_file()


def test_stats_command_prints_table_1_rows(tmp_path, capsys):
    from data_tools.stats import main

    write_pickles(tmp_path / "diginetica")
    assert main(["--dataset", "diginetica", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for label in ("clicks", "training examples", "test examples", "items", "average length"):
        assert label in out
    assert "training examples" in out and " 5\n" in out
    assert main(["--dataset", "yoochoose1_4", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: no data for 'yoochoose1_4'")
