"""Recommending: raw item ids, unknown items, long sessions, files of sessions."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minisriem.checkpoint import SavedModel, load_model, save_model
from minisriem.config import Config
from minisriem.model import SRIEM
from minisriem.recommend import parse_session, read_sessions, recommendations_text
from minisriem.workflow import recommend, recommend_sessions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_ITEMS = 30
RAW = np.concatenate([[-1], 500 + 10 * np.arange(N_ITEMS)])  # internal id i is raw 500+10(i-1)


@pytest.fixture(scope="module")
def saved():
    config = Config(d=8, l=4, variant="official")  # official: betas differ visibly
    model = SRIEM(N_ITEMS, d=8, l=4, variant="official", seed=7)
    return SavedModel(model, config, RAW, {"dataset": "toy"})


@pytest.fixture(scope="module")
def model_file(saved, tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "model.npz"
    save_model(str(path), saved.model, saved.config, saved.item_ids, saved.meta)
    return str(path)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "minisriem.recommend", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_top_k_in_raw_ids_matches_the_model(saved):
    rec = recommend(saved, [510, 600, 520], k=5)
    ids = np.array([2, 11, 3])  # the internal ids of 510, 600, 520
    scores = saved.model.scores(ids[None, :], np.array([3]))[0]
    best = np.argsort(-scores, kind="stable")[:5]
    assert rec.items == [int(RAW[j + 1]) for j in best]
    np.testing.assert_allclose(rec.scores, scores[best], rtol=1e-6)
    assert rec.session == [510, 600, 520] and rec.unknown == []
    beta = saved.model.item_weights(ids[None, :], np.array([3]))[0, :3]
    np.testing.assert_allclose(rec.importance, beta, rtol=1e-6)
    assert sum(rec.importance) == pytest.approx(1, abs=1e-5)


def test_unknown_items_are_skipped_with_a_warning(saved):
    with pytest.warns(UserWarning, match="unknown to the model: 7, 99999"):
        rec = recommend(saved, [7, 510, 99999, 520], k=3)
    assert rec.session == [510, 520] and rec.unknown == [7, 99999]
    assert rec.items == recommend(saved, [510, 520], k=3).items


def test_a_session_with_no_known_item_is_an_error(saved):
    with pytest.raises(ValueError, match="no item the model knows"):
        recommend(saved, [1, 2, 3])
    with pytest.raises(ValueError, match="is empty"):
        recommend(saved, [])


def test_long_sessions_keep_the_L_most_recent_items(saved):
    session = [int(x) for x in RAW[1:16]]  # 15 items, L = 10
    rec = recommend(saved, session, k=4)
    assert rec.session == session[-10:] and len(rec.importance) == 10
    assert rec.items == recommend(saved, session[-10:], k=4).items


def test_k_is_capped_at_the_number_of_items(saved):
    assert len(recommend(saved, [510], k=1000).items) == N_ITEMS


def test_batches_answer_like_single_calls(saved):
    sessions = [[510], [520, 530, 540], [600, 510]]
    batched = recommend_sessions(saved, sessions, k=3, batch_size=2)
    assert [r.items for r in batched] == [recommend(saved, s, k=3).items for s in sessions]
    with pytest.raises(ValueError, match="session 2 has no item"):
        recommend_sessions(saved, [[510], [1]])


def test_parsing_sessions_names_the_bad_line(tmp_path):
    assert parse_session(" 214, 873,12 ") == [214, 873, 12]
    path = tmp_path / "s.txt"
    path.write_text("1,2\n3,x\n")
    with pytest.raises(ValueError, match=r"s.txt line 2: 'x' is not an item id"):
        read_sessions(str(path))
    path.write_text("1,2\n\n3\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        read_sessions(str(path))


def test_output_formats(saved):
    recs = recommend_sessions(saved, [[510], [520, 7]], k=2, warn=False)
    csv = recommendations_text(recs, "csv").splitlines()
    assert csv[0] == "line,rank,item,score" and len(csv) == 5
    assert csv[3].startswith(f"2,1,{recs[1].items[0]},")
    lines = [json.loads(x) for x in recommendations_text(recs, "jsonl").splitlines()]
    assert lines[1]["line"] == 2 and lines[1]["unknown"] == [7] and lines[1]["session"] == [520]


def test_cli_one_session(model_file):
    proc = run_cli("--model", model_file, "--session", "510,99999,520", "-k", "3")
    assert proc.returncode == 0, proc.stderr
    assert "warning: skipped items unknown to the model: 99999" in proc.stderr
    assert "beta" in proc.stdout and "top 3 next items" in proc.stdout
    top = recommend(load_model(model_file), [510, 520], k=3).items
    after = proc.stdout.split("top 3 next items:")[1].splitlines()[2:]  # skip the header
    assert [int(line.split()[1]) for line in after] == top


def test_cli_no_known_item_is_one_line_error(model_file):
    proc = run_cli("--model", model_file, "--session", "1,2")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "no item the model knows" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_file_of_sessions(model_file, tmp_path):
    sessions = tmp_path / "sessions.txt"
    sessions.write_text("510,520\n600\n530,7,540\n")
    out = tmp_path / "recs.jsonl"
    proc = run_cli("--model", model_file, "--sessions", str(sessions), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "line 3: skipped items unknown to the model: 7" in proc.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3] and len(lines[0]["items"]) == 20
    csv = tmp_path / "recs.csv"
    proc = run_cli("--model", model_file, "--sessions", str(sessions), "--output", str(csv))
    assert csv.read_text().startswith("line,rank,item,score\n")

    sessions.write_text("510\nnot,ids\n")
    bad_out = tmp_path / "bad.csv"
    proc = run_cli("--model", model_file, "--sessions", str(sessions), "--output", str(bad_out))
    assert proc.returncode == 2 and "line 2" in proc.stderr
    assert not bad_out.exists()  # never a half-written file


# --------------------------------------------------------------------------
# models trained on data that named items by text tokens (RecBole, session-rec)
TOKENS = [""] + [f"sku-{chr(97 + i % 26)}{i}" for i in range(N_ITEMS)]  # internal id i: TOKENS[i]


@pytest.fixture(scope="module")
def token_model_file(saved, tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "model.npz"
    ids = np.arange(N_ITEMS + 1)
    save_model(str(path), saved.model, saved.config, ids, saved.meta, item_tokens=TOKENS)
    return str(path)


def test_a_token_model_answers_in_its_tokens(saved, token_model_file):
    tok = load_model(token_model_file)
    assert tok.item_tokens == TOKENS
    rec = recommend(tok, [TOKENS[2], TOKENS[11], TOKENS[3]], k=5)
    want = recommend(saved, [510, 600, 520], k=5)  # the same model with integer raw ids
    assert rec.items == [TOKENS[(int(r) - 500) // 10 + 1] for r in want.items]
    assert rec.session == [TOKENS[2], TOKENS[11], TOKENS[3]]
    np.testing.assert_allclose(rec.scores, want.scores)
    with pytest.warns(UserWarning, match="unknown to the model: nope"):
        assert recommend(tok, ["nope", TOKENS[2]], k=2).unknown == ["nope"]
    with pytest.raises(ValueError, match="text tokens, got 510"):
        recommend(tok, [510], k=2)


def test_the_recommend_command_reads_and_writes_tokens(token_model_file, tmp_path):
    out = run_cli("--model", token_model_file, "--session", f"{TOKENS[2]}, {TOKENS[11]}", "-k", "3")
    assert out.returncode == 0, out.stderr
    assert TOKENS[2] in out.stdout and "sku-" in out.stdout.split("top 3")[1]
    sessions = tmp_path / "s.txt"
    sessions.write_text(f"{TOKENS[5]},{TOKENS[6]}\nunknown-thing,{TOKENS[1]}\n")
    out = run_cli("--model", token_model_file, "--sessions", str(sessions), "-k", "2")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()[1:]
    assert len(rows) == 4 and all(r.split(",")[2].startswith("sku-") for r in rows)
    assert "unknown-thing" in out.stderr


def test_a_damaged_token_list_is_refused(saved, tmp_path):
    ids = np.arange(N_ITEMS + 1)
    path = str(tmp_path / "model.npz")
    save_model(path, saved.model, saved.config, ids, item_tokens=TOKENS[:-1] + [TOKENS[1]])
    with pytest.raises(ValueError, match="item_tokens.*duplicate"):
        load_model(path)
