"""Issue 13, options and parsing: every numeric option is range-checked when it is parsed,
and integer ids are ASCII digits that fit in 64 bits.

Each test uses the issue's example and at least one variation of our own. Commands are
called in-process (their ``main(argv)``), so a refused option costs no process start.
"""

import os

import numpy as np
import pytest

from data_tools import DataError, cliopts, make_fake_yoochoose, preprocess
from data_tools import convert as convert_cmd
from minisriem import evaluate as evaluate_cmd
from minisriem import recommend as recommend_cmd
from minisriem import train as train_cmd
from minisriem.checkpoint import SavedModel, save_model
from minisriem.config import Config
from minisriem.experiments import reproduce
from minisriem.model import SRIEM
from minisriem.recommend import parse_session, read_sessions
from minisriem.workflow import recommend, recommend_sessions

N_ITEMS = 12
RAW = np.concatenate([[-1], 100 + np.arange(N_ITEMS)])


@pytest.fixture(scope="module")
def saved():
    model = SRIEM(N_ITEMS, d=4, l=2, seed=1)
    return SavedModel(model, Config(d=4, l=2), RAW, {"dataset": "toy"})


@pytest.fixture(scope="module")
def model_file(saved, tmp_path_factory):
    path = tmp_path_factory.mktemp("opts") / "model.npz"
    save_model(str(path), saved.model, saved.config, saved.item_ids, saved.meta)
    return str(path)


def refused(main, argv, capsys):
    """The command's exit status and its stderr, for an option argparse refuses."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    "main, argv, words",
    [
        # the examples
        (train_cmd.main, ["--d", "100000000"], "--d"),
        (train_cmd.main, ["--seed", "-1"], "--seed"),
        (train_cmd.main, ["--threads", "0"], "--threads"),
        (preprocess.main, ["--test-days", "nan"], "--test-days"),
        (preprocess.main, ["--test-days", "inf"], "--test-days"),
        (preprocess.main, ["--test-days", "-3"], "--test-days"),
        (preprocess.main, ["--time-format", "junk"], "--time-format"),
        (reproduce.main, ["--timing-rounds", "0"], "--timing-rounds"),
        # variations
        (train_cmd.main, ["--lr", "nan"], "--lr"),
        (train_cmd.main, ["--epochs", "1_0"], "--epochs"),
        (train_cmd.main, ["--batch-size", "\u0663"], "--batch-size"),  # Arabic-Indic 3
        (evaluate_cmd.main, ["--model", "m", "--batch-size", "0"], "--batch-size"),
        (evaluate_cmd.main, ["--model", "m", "--threads", "x"], "--threads"),
        (reproduce.main, ["--timing-test", "-5"], "--timing-test"),
        (reproduce.main, ["--d", "0"], "--d"),
        (convert_cmd.main, ["--test-days", "0"], "--test-days"),
        (convert_cmd.main, ["--delimiter", "ab"], "--delimiter"),
        (make_fake_yoochoose.main, ["--out", "x", "--rows", "0"], "--rows"),
    ],
)
def test_numeric_options_are_range_checked_at_parse_time(main, argv, words, capsys):
    needed = {
        preprocess.main: ["--dataset", "custom", "--input", "x", "--out", "y"],
        convert_cmd.main: ["--from", "raw", "--input", "x", "--to", "npz", "--out", "y"],
    }.get(main, [])
    code, err = refused(main, needed + argv, capsys)
    assert code == 2
    assert words in err and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"argument {words}" in errors[0]  # after argparse's usage


@pytest.mark.parametrize("argv", [["--batch-size", "0"], ["--batch-size", "-1"], ["-k", "0"]])
def test_recommend_batch_size_0_or_negative_is_refused_not_an_empty_file(
    model_file, tmp_path, argv, capsys
):
    out = tmp_path / "out.csv"
    code, err = refused(
        recommend_cmd.main,
        ["--model", model_file, "--session", "100,101", "--output", str(out), *argv],
        capsys,
    )
    assert code == 2 and not out.exists()
    assert argv[0] in err


def test_threads_above_the_cores_warn_and_use_the_cores(model_file, capsys):
    cores = os.cpu_count() or 1
    status = recommend_cmd.main(["--model", model_file, "--session", "100", "--threads", "100000"])
    err = capsys.readouterr().err
    assert status == 0
    assert f"--threads 100000 is more than this machine's {cores} cores; using {cores}" in err


def test_data_tools_option_helpers_refuse_out_of_range_values():
    parse = cliopts.number(low=0, high=3650, low_open=True)
    assert parse("7") == 7.0
    for bad in ("0", "-3", "nan", "inf", "1e9", "1_0", "\u0663"):
        with pytest.raises(Exception, match="must be|expected"):
            parse(bad)
    assert cliopts.integer(low=1)("12") == 12
    with pytest.raises(Exception, match="expected an integer"):
        cliopts.integer(low=1)("1_2")


@pytest.mark.parametrize("text", ["1_0", "\u0663", "+4", "-4", "4.0", "0x10", " "])
def test_session_ids_are_ascii_digits_only(text):
    with pytest.raises(ValueError, match="not an item id"):
        parse_session(f"100,{text}")


def test_ids_beyond_int64_say_too_large_not_not_an_integer():
    with pytest.raises(ValueError, match="too large: item ids are 64-bit"):
        parse_session(str(2**70))
    with pytest.raises(ValueError, match="too large"):
        parse_session("100," + "9" * 19)
    assert parse_session(str(2**63 - 1)) == [2**63 - 1]  # the largest id still reads


def test_the_python_api_refuses_non_integer_item_ids(saved):
    with pytest.raises(ValueError, match="item ids must be integers, got 3.7"):
        recommend(saved, [3.7, 4.2])
    with pytest.raises(ValueError, match="must be integers, got True"):
        recommend(saved, [100, True])
    with pytest.raises(ValueError, match="not a string"):
        recommend(saved, "100,101")
    with pytest.raises(ValueError, match="beyond 64-bit"):
        recommend(saved, [2**70])
    with pytest.raises(ValueError, match="k must be an integer"):
        recommend_sessions(saved, [[100]], k=2.5)
    with pytest.raises(ValueError, match="batch_size must be in"):
        recommend_sessions(saved, [[100]], batch_size=0)
    assert recommend(saved, [np.int64(100), 101]).items  # NumPy integers are integers


def test_a_bom_is_skipped_and_bad_utf8_is_named(tmp_path):
    path = tmp_path / "sessions.txt"
    path.write_bytes(b"\xef\xbb\xbf100,101\n102\n")
    assert read_sessions(str(path)) == [[100, 101], [102]]
    path.write_bytes(b"100,101\n10\xff2\n")
    with pytest.raises(ValueError, match=r"line 2: not UTF-8 text \(byte 3\)"):
        read_sessions(str(path))
    path.write_bytes("100,\u0663\n".encode())  # valid UTF-8, but not an ASCII digit
    with pytest.raises(ValueError, match="line 1"):
        read_sessions(str(path))


@pytest.mark.parametrize("fmt, suffix", [(None, ".jsonl"), ("csv", ".txt")])
def test_one_session_with_output_writes_the_file(model_file, tmp_path, fmt, suffix, capsys):
    out = tmp_path / f"x{suffix}"
    argv = ["--model", model_file, "--session", "100,101", "--output", str(out), "-k", "3"]
    assert recommend_cmd.main(argv + (["--format", fmt] if fmt else [])) == 0
    text = out.read_text()
    if suffix == ".jsonl":
        assert text.count("\n") == 1 and '"items"' in text
    else:
        assert text.splitlines()[0] == "line,rank,item,score" and len(text.splitlines()) == 4
    assert "written to" in capsys.readouterr().out


def test_custom_json_options_of_the_wrong_type_are_one_line_errors(tmp_path):
    from data_tools import load_dataset

    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "clicks.csv").write_text("session_id,item_id,timestamp\n1,2,3\n")
    for options, words in (
        ('{"test_days": "7"}', "test_days must be a number of days, got '7'"),
        ('{"delimiter": 5}', "delimiter must be a non-empty string, got 5"),
        ('{"test_days": -3}', "test_days must be a number of days in (0, 3650]"),
        ('{"time_format": "junk"}', "time_format must be one of"),
        ("[1, 2]", "expected a JSON object"),
    ):
        (folder / "custom.json").write_text(options)
        with pytest.raises(DataError, match=None) as e:
            load_dataset("custom", str(tmp_path))
        assert words in str(e.value) and "custom.json" in str(e.value)


def test_an_output_that_is_an_input_is_refused(model_file, tmp_path, capsys):
    sessions = tmp_path / "sessions.txt"
    sessions.write_text("100,101\n")
    argv = ["--model", model_file, "--sessions", str(sessions), "--output", str(sessions)]
    assert recommend_cmd.main(argv) == 2
    assert "is also an input" in capsys.readouterr().err
    assert sessions.read_text() == "100,101\n"  # the input is kept
    # variation: evaluate --out naming the model file
    before = os.path.getsize(model_file)
    assert evaluate_cmd.main(["--model", model_file, "--out", model_file]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert os.path.getsize(model_file) == before
