"""SR-IEM+ (issue #12): normalised scoring, embedding dropout, the importance forms, the preset.

Each addition on its own and all together: the whole model's gradient
(float64, central differences, padding and length-1 sessions), the Numba
backend against the NumPy one, the dropout masks' determinism, a resumed
run with dropout, the preset, and model files with and without the new keys.
"""

import json
import os

import numpy as np
import pytest

from minisriem import checkpoint, kernels, layers
from minisriem.config import PRESETS, Config
from minisriem.gradcheck import check_model, random_session_batch
from minisriem.model import SRIEM
from minisriem.optim import Adam

N, D, LQ, L, B = 15, 6, 5, 5, 7
ADDITIONS = {
    "norm": {"scale": 4.0},
    "dropout": {"dropout": 0.3},
    "official-affinity": {"affinity": "official"},
    "scaled-affinity": {"affinity": "scaled"},
    "all": {"scale": 4.0, "dropout": 0.3, "affinity": "official"},
}
STEP = (1, 4)  # a training position (epoch, batch): it seeds the dropout masks


def plus_model(addition, dtype=np.float64, backend="numpy", n=N, d=D, l=LQ, seed=0, grow=3.0):
    """A small SR-IEM+ model, parameters scaled by ``grow`` (see tests/test_model.py)."""
    model = SRIEM(n, d=d, l=l, seed=seed, dtype=dtype, backend=backend, **ADDITIONS[addition])
    for w in model.params.values():
        w *= grow
    return model


@pytest.mark.parametrize("addition", ADDITIONS)
def test_whole_model_gradient_with_each_addition(addition):
    rng = np.random.default_rng(5)
    model = plus_model(addition)
    item_seq, item_seq_len, targets = random_session_batch(rng, B, L, N)
    assert item_seq_len.min() == 1 and (item_seq == 0).any()  # length 1 and padding
    errors = check_model(model, item_seq, item_seq_len, targets, tol=1e-6, step=STEP)
    assert set(errors) == set(model.params)


def test_normalised_scores_are_scaled_cosines():
    rng = np.random.default_rng(0)
    model = plus_model("norm", grow=1.0)
    item_seq, item_seq_len, _ = random_session_batch(rng, B, L, N)
    scores = model.scores(item_seq, item_seq_len)
    assert np.abs(scores).max() <= model.scale + 1e-12
    plain = SRIEM(N, d=D, l=LQ, seed=0, dtype=np.float64, backend="numpy")
    E = model.params["E"]
    unit = E / np.linalg.norm(E, axis=1, keepdims=True).clip(1e-300)
    plain.params = {**model.params, "E": unit}  # the lookups see normalised rows too
    z_h, _ = plain.session_forward(item_seq, item_seq_len)
    want = model.scale * (z_h / np.linalg.norm(z_h, axis=1, keepdims=True)) @ unit[1:].T
    np.testing.assert_allclose(scores, want, rtol=1e-9, atol=1e-9)  # eps of the norms


@pytest.mark.parametrize("addition", ADDITIONS)
def test_numba_backend_equals_numpy_backend_with_each_addition(addition):
    """Loss, every gradient, scores, ranks and one Adam step, within float32 rounding."""
    rng = np.random.default_rng(11)
    n = 57
    item_seq, item_seq_len, targets = random_session_batch(rng, 9, 6, n)
    results = {}
    for backend in ("numba", "numpy"):
        model = plus_model(addition, np.float32, backend, n=n, d=8, l=4, seed=3, grow=4.0)
        loss, grads = model.loss_and_grads(item_seq, item_seq_len, targets, STEP)
        grads = {k: np.array(g) for k, g in grads.items()}
        scores = model.scores(item_seq, item_seq_len)
        rank, _ = model.rank_topk(item_seq, item_seq_len, targets, k=5)
        opt = Adam(model.params, lr=1e-2, l2=1e-4, backend=backend)
        _, again = model.loss_and_grads(item_seq, item_seq_len, targets, STEP)
        opt.step(model.params, again)
        results[backend] = (loss, grads, scores, rank, model.params)
    (loss1, g1, s1, r1, p1), (loss2, g2, s2, r2, p2) = results.values()
    assert loss1 == pytest.approx(loss2, rel=2e-5) and loss1 > 0.5
    for name in g1:
        assert np.abs(g1[name]).max() > 1e-4, name
        np.testing.assert_allclose(g1[name], g2[name], rtol=2e-4, atol=2e-6, err_msg=name)
        np.testing.assert_allclose(p1[name], p2[name], rtol=1e-4, atol=2e-6, err_msg=name)
    np.testing.assert_allclose(s1, s2, rtol=2e-4, atol=2e-5)
    np.testing.assert_array_equal(r1, r2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaled_affinity_kernels_match_the_layers(dtype):
    rng = np.random.default_rng(4)
    item_seq_len = np.array([1, 4, 2, 4, 3])
    rows = int(item_seq_len.sum())
    qk = (3 * rng.standard_normal((rows, 6))).astype(dtype)
    emb = rng.standard_normal((rows, 5)).astype(dtype)
    dz = rng.standard_normal((5, 10)).astype(dtype)
    want, want_cache = kernels.iem_pool_forward_numpy(qk, emb, item_seq_len, "scaled", 4)
    got, got_cache = kernels.iem_pool_forward(qk, emb, item_seq_len, "scaled", 4)
    tol = {"rtol": 2e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-11, "atol": 1e-13}
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(got_cache["beta"], want_cache["beta"], **tol)
    for a, b in zip(
        kernels.iem_pool_backward(dz, got_cache),
        kernels.iem_pool_backward_numpy(dz, want_cache),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, **tol)
    # not the paper's form: the scaling moved inside the sigmoid changes beta
    paper, _ = kernels.iem_pool_forward_numpy(qk, emb, item_seq_len, "paper", 4)
    assert not np.allclose(paper, want)


def test_affinity_forms_shapes_and_defaults():
    shapes = {
        form: SRIEM(20, d=8, l=3, affinity=form).params["Wq"].shape
        for form in ("variant", "paper", "official", "scaled")
    }
    assert shapes == {"variant": (8, 3), "paper": (8, 3), "official": (8, 8), "scaled": (8, 3)}
    assert "b0" not in SRIEM(20, d=8, l=3, affinity="official").params  # the variant's part
    assert SRIEM(20, d=8, l=3, variant="official").iem_form == "official"
    with pytest.raises(ValueError, match="affinity"):
        SRIEM(20, affinity="cosine")
    with pytest.raises(ValueError, match="dropout"):
        SRIEM(20, dropout=1.0)


# ----------------------------------------------------------------------
# Dropout: deterministic masks, off at evaluation


def test_dropout_masks_depend_on_seed_and_step_only():
    rng = np.random.default_rng(1)
    batch = random_session_batch(rng, B, L, N)
    model = plus_model("dropout", np.float32, "numba", grow=1.0)
    loss_a, _ = model.loss_and_grads(*batch, STEP)
    loss_b, _ = model.loss_and_grads(*batch, STEP)
    loss_c, _ = model.loss_and_grads(*batch, (1, 5))
    loss_eval, _ = model.loss_and_grads(*batch)  # no step: no dropout
    assert loss_a == loss_b and loss_a != loss_c and loss_a != loss_eval
    other_seed = plus_model("dropout", np.float32, "numba", seed=1, grow=1.0)
    other_seed.params = {k: w.copy() for k, w in model.params.items()}
    assert other_seed.loss_and_grads(*batch, STEP)[0] != loss_a
    # evaluation never drops: scores are those of the model without dropout
    plain = SRIEM(N, d=D, l=LQ, seed=0, backend="numba")
    plain.params = model.params
    np.testing.assert_array_equal(model.scores(*batch[:2]), plain.scores(*batch[:2]))
    assert plain.loss_and_grads(*batch, STEP)[0] == loss_eval
    # the masks keep about 1 - p of the entries and are never shared with the shuffling
    mask = layers.dropout_mask((400, 50), 0.3, model.dropout_rng(STEP), np.float32)
    assert 0.66 < np.mean(mask > 0) < 0.74


def test_resume_with_dropout_is_bitwise_equal(tmp_path):
    from data_tools import load_dataset
    from minisriem.workflow import train

    data = load_dataset("synthetic", n_sessions=300, n_items=50, n_groups=5, seed=2)
    tiny = dict(d=8, l=4, batch_size=64, epochs=2, progress=False, log=lambda line: None)
    plus = {"scale": 8.0, "dropout": 0.2, "affinity": "official"}
    whole = train(data, out=str(tmp_path / "whole"), **tiny, **plus)
    part = train(data, out=str(tmp_path / "part"), stop_after_steps=7, **tiny, **plus)
    assert part.status == "interrupted"
    resumed = train(data, resume=str(tmp_path / "part"), progress=False, log=lambda s: None)
    assert resumed.status == "finished"

    def arrays(run, name):
        with np.load(os.path.join(run, name)) as z:
            return {k: z[k] for k in z.files if k.startswith(("param/", "adam/"))}

    for name in (checkpoint.CHECKPOINT_FILE, checkpoint.MODEL_FILE):
        a, b = arrays(whole.run_dir, name), arrays(resumed.run_dir, name)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    no_dropout = train(data, out=str(tmp_path / "nodrop"), **tiny, **{**plus, "dropout": 0.0})
    a, b = arrays(whole.run_dir, "model.npz"), arrays(no_dropout.run_dir, "model.npz")
    assert not np.array_equal(a["param/W0"], b["param/W0"])  # the dropout did something
    assert whole.load_model().config.dropout == 0.2


# ----------------------------------------------------------------------
# The preset and model files


def test_preset_selects_its_settings_and_explicit_options_win():
    from minisriem.train import apply_preset, build_parser, settings_given

    def settings(argv):
        return settings_given(apply_preset(build_parser().parse_args(argv), argv))

    preset = PRESETS["sriem-plus"]
    got = settings(["--preset", "sriem-plus"])
    assert {k: got[k] for k in preset} == preset
    got = settings(["--preset", "sriem-plus", "--scale", "8", "--dropout=0"])
    assert got["scale"] == 8.0 and got["dropout"] == 0.0
    assert got["affinity"] == preset["affinity"] and got["shuffle"] is False
    assert settings(["--preset", "sriem-plus", "--shuffle"])["shuffle"] is True
    plain = settings([])
    assert (plain["scale"], plain["dropout"], plain["affinity"]) == (0.0, 0.0, "variant")
    help_text = build_parser().format_help()
    assert "--preset" in help_text and "--scale" in help_text and "--affinity" in help_text
    assert "--no-shuffle" in " ".join(help_text.split())  # the preset's bool, as an option


def test_saved_plus_model_round_trip(tmp_path):
    config = Config(d=8, l=4, scale=12.0, dropout=0.25, affinity="scaled")
    model = SRIEM(15, d=8, l=4, seed=3, scale=12.0, dropout=0.25, affinity="scaled")
    item_ids = np.concatenate([[-1], 100 + np.arange(15)])
    path = str(tmp_path / "model.npz")
    checkpoint.save_model(path, model, config, item_ids)
    saved = checkpoint.load_model(path)
    assert saved.config == config
    m = saved.model
    assert (m.scale, m.dropout, m.affinity, m.iem_form) == (12.0, 0.25, "scaled", "scaled")
    seq, lens = np.array([[1, 5, 0], [7, 0, 0]]), np.array([2, 1])
    np.testing.assert_array_equal(m.scores(seq, lens), model.scores(seq, lens))
    assert np.abs(m.scores(seq, lens)).max() <= 12.0 + 1e-4


def test_an_old_model_without_the_new_keys_loads_with_the_additions_off(tmp_path):
    model = SRIEM(15, d=8, l=4, seed=3)
    config = Config(d=8, l=4)
    path = str(tmp_path / "model.npz")
    checkpoint.save_model(path, model, config, np.arange(16))
    old = str(tmp_path / "old.npz")  # the same file with the config of an older version
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    stored = json.loads(str(arrays["config"]))
    for key in ("scale", "dropout", "affinity"):
        del stored[key]  # KeyError if the new keys were not saved
    arrays["config"] = np.array(json.dumps(stored))
    np.savez(old, **arrays)
    saved = checkpoint.load_model(old)
    assert (saved.config.scale, saved.config.dropout, saved.config.affinity) == (
        0.0,
        0.0,
        "variant",
    )
    m = saved.model
    assert (m.scale, m.dropout, m.iem_form) == (0.0, 0.0, "paper")
    seq, lens = np.array([[1, 5, 0]]), np.array([2])
    np.testing.assert_array_equal(m.scores(seq, lens), model.scores(seq, lens))


# ----------------------------------------------------------------------
# The reproduction: the SR-IEM+ row, its ablation table, its significance test


def test_plan_has_sriem_plus_per_seed_and_its_ablations():
    from minisriem.experiments import plan, reproduce

    default = reproduce._groups(reproduce.build_parser().parse_args([]))
    assert "sriem-plus" not in default  # only when named: the paper's plan stays as it was
    runs = plan.plan_runs(["sriem-plus"], [0, 1, 2], 5, {"d": 16})
    assert [r["name"] for r in runs] == [
        "sriem-plus-seed0",
        "sriem-plus-seed0-refit",
        "sriem-plus-seed1-refit",
        "sriem-plus-seed2-refit",
    ]
    assert all(r["label"] == "SR-IEM+" for r in runs)
    preset = PRESETS["sriem-plus"]
    assert {k: runs[0]["settings"][k] for k in preset} == preset
    off = {"plus-no-norm": ("scale", 0.0), "plus-no-dropout": ("dropout", 0.0)}
    off["plus-paper-importance"] = ("affinity", "paper")
    for group, (key, value) in off.items():
        phase1, refit = plan.plan_runs([group], [0, 1], 5, {})  # one seed
        want = {k: v for k, v in runs[0]["settings"].items() if k != "d"}
        assert phase1["settings"] == {**want, key: value}
        assert refit["kind"] == "refit" and refit["of"] == phase1["name"]
    # the preset's neighbours, compared on validation only: phase 1, no refit
    near = {"plus-scale-8": ("scale", 8.0), "plus-scale-32": ("scale", 32.0)}
    near["plus-dropout-0.3"] = ("dropout", 0.3)
    for group, (key, value) in near.items():
        (phase1,) = plan.plan_runs([group], [0, 1], 5, {})
        want = {k: v for k, v in runs[0]["settings"].items() if k != "d"}
        assert phase1["kind"] == "model" and phase1["settings"] == {**want, key: value}
    # the preset trains in time order; its shuffled neighbour keeps a refit
    assert runs[0]["settings"]["shuffle"] is False
    phase1, refit = plan.plan_runs(["plus-shuffled"], [0], 5, {})
    assert phase1["settings"]["shuffle"] is True and refit["settings"]["shuffle"] is True
    # --no-refit: phase 1 of every seed that has its own, nothing else
    runs = plan.plan_runs(["sriem-plus", "plus-no-norm"], [0, 1], 5, {}, refit=False)
    assert [r["name"] for r in runs] == ["sriem-plus-seed0", "plus-no-norm-seed0"]


def test_reproduction_records_sriem_plus_and_its_ablation(tmp_path):
    from minisriem.experiments import page, reproduce

    argv = [
        "--dataset", "synthetic", "--out-dir", str(tmp_path / "runs"),
        "--state-dir", str(tmp_path / "state"), "--report", str(tmp_path / "R.md"),
        "--bench-json", str(tmp_path / "none.json"), "--no-progress",
        "--d", "8", "--l", "4", "--batch-size", "2048", "--epochs", "1", "--seeds", "0",
    ]  # fmt: skip
    assert reproduce.main([*argv, "--runs", "sriem-paper,sriem-plus"]) == 0
    text = (tmp_path / "R.md").read_text()
    assert "Ablation of SR-IEM+" not in text  # no ablation recorded: no table
    summary = json.loads((tmp_path / "state" / "summary.json").read_text())
    methods = {(r["method"], r["protocol"]) for r in summary}
    assert ("SR-IEM+", "refit") in methods and ("SR-IEM+", "validation-selected") in methods
    assert "| SR-IEM+ | refit | 1 (seed 0) |" in text
    assert "| SR-IEM+ (refit) |" in text  # the paired test against SR-IEM (paper)
    with open(tmp_path / "state" / "synthetic" / "state.json") as f:
        record = json.load(f)["runs"]["sriem-plus-seed0-refit"]
    assert "--scale" in record["command"] and "--affinity official" in record["command"]

    assert reproduce.main([*argv, "--runs", "plus-no-norm"]) == 0
    text = (tmp_path / "R.md").read_text()
    lines = text[text.index("### Ablation of SR-IEM+") :].split("\n\n")[2].splitlines()
    with open(tmp_path / "state" / "synthetic" / "state.json") as f:
        runs = json.load(f)["runs"]
    full = next(ln for ln in lines if ln.startswith("| SR-IEM+ (every addition) |"))
    valid = runs["sriem-plus-seed0"]["valid"]["Recall@20"]
    assert full.split(" | ")[1] == f"{100 * valid:.2f}" and " | refit | " in full
    ablation = next(ln for ln in lines if ln.startswith("| SR-IEM+ without normalised"))
    assert " | refit | " in ablation
    want = 100 * (
        runs["plus-no-norm-seed0-refit"]["test"]["Recall@20"]
        - runs["sriem-plus-seed0-refit"]["test"]["Recall@20"]
    )
    assert ablation.split(" | ")[7] == f"{want:+.2f}"
    assert any(ln.startswith("| SR-IEM (paper) (no addition) |") for ln in lines)
    # the sentence under the table names the row with the best validation R@20
    labels = {"sriem-plus": "SR-IEM+ (every addition)", "plus-no-norm": "SR-IEM+ without "
              "normalised scoring", "sriem-paper": "SR-IEM (paper) (no addition)"}  # fmt: skip
    best = max(
        labels, key=lambda g: tuple(runs[g + "-seed0"]["valid"][k] for k in ("Recall@20", "MRR@20"))
    )
    assert f"(the choice the preset should follow): {labels[best]}." in text
    summary = json.loads((tmp_path / "state" / "summary.json").read_text())
    assert not any("without" in r["method"] for r in summary)  # not a Table 2 row
    assert page.GROUPS["plus-no-norm"]["ablation"]
    # --no-refit: phase 1 only; its row in the ablation table gives phase 1's test figures
    assert reproduce.main([*argv, "--runs", "plus-no-dropout", "--no-refit"]) == 0
    with open(tmp_path / "state" / "synthetic" / "state.json") as f:
        runs = json.load(f)["runs"]
    assert "plus-no-dropout-seed0" in runs and "plus-no-dropout-seed0-refit" not in runs
    text = (tmp_path / "R.md").read_text()
    table = text[text.index("### Ablation of SR-IEM+") :].split("\n\n")[2].splitlines()
    row = next(ln for ln in table if ln.startswith("| SR-IEM+ without embedding"))
    assert " | validation-selected | " in row


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_normalize_rows_kernels_match_the_layers(dtype):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((37, 9)) * rng.uniform(0.01, 10, size=(37, 1))).astype(dtype)
    x[0] = 0  # the padding row
    dy = rng.standard_normal(x.shape).astype(dtype)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
    want, want_cache = layers.l2_normalize_forward(x)
    got, got_cache = kernels.l2_normalize_rows(x)
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(got_cache[1], want_cache[1], **tol)
    assert np.all(got[0] == 0) and got.dtype == dtype
    (dx_want,) = layers.l2_normalize_backward(dy, want_cache)
    (dx_got,) = kernels.l2_normalize_rows_backward(dy, got_cache)
    err = np.abs(dx_got[1:] - dx_want[1:]).max() / np.abs(dx_want[1:]).max()
    assert err < (1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(dx_got[0], dx_want[0], rtol=1e-5)  # dy / sqrt(eps)
    with pytest.raises(ValueError, match="C-contiguous 2-D"):
        kernels.l2_normalize_rows(x.T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("parts,block", [(1, 1000), (2, 16), (3, 7)])
def test_item_gradient_through_the_normalisation(dtype, parts, block):
    """dE of the normalised rows taken back through the normalisation: dense and block-wise."""
    rng = np.random.default_rng(parts + block)
    B, n, d = 6, 50, 5
    E = (rng.standard_normal((n + 1, d)) * rng.uniform(0.1, 3, size=(n + 1, 1))).astype(dtype)
    E[0] = 0
    table, through = kernels.l2_normalize_rows(E)
    q = rng.standard_normal((B, d)).astype(dtype) * 3
    target_idx = rng.integers(0, n, size=B)
    P = np.empty(B * n, dtype)
    with kernels.blas_single_thread():
        _, _, row_scale = kernels.item_pass_forward(q, table[1:], target_idx, P, parts, block)
    items = np.array([2, 3, n])
    rows = rng.standard_normal((3, d)).astype(dtype)
    args = (P, q, target_idx, row_scale, items, rows, E.shape, parts, block)
    plain = np.asarray(kernels.ItemGradient(*args))  # the normalised rows' gradient
    g = kernels.ItemGradient(*args, through)
    (want,) = layers.l2_normalize_backward(plain, through)
    tol = {"rtol": 1e-4, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    dense = g.dense()
    np.testing.assert_allclose(dense, want, **tol)
    assert np.abs((dense * table).sum(axis=1)).max() < 1e-4  # orthogonal to each row
    m = np.zeros_like(E)
    v = np.zeros_like(E)
    E2, m2, v2 = E.copy(), m.copy(), v.copy()
    with kernels.blas_single_thread():
        g.adam_step(E, m, v, 1e-2, 0.9, 0.999, 1e-8, 1e-3, 1)
    kernels.adam_step_numpy(E2, dense, m2, v2, 1e-2, 0.9, 0.999, 1e-8, 1e-3, 1)
    for a, b in ((E, E2), (m, m2), (v, v2)):
        np.testing.assert_allclose(a, b, rtol=tol["rtol"] * 10, atol=1e-6)


def test_a_held_normalised_gradient_survives_the_next_step():
    # The numba backend writes E's normalised rows into the workspace and grads["E"]
    # refers to them; a gradient still held when the next step starts must not change.
    rng = np.random.default_rng(5)
    model = plus_model("norm", dtype=np.float32, backend="numba", n=40, d=8, l=4)
    first = random_session_batch(rng, B, L, 40)
    second = random_session_batch(rng, B, L, 40)
    _, grads = model.loss_and_grads(*first)
    held = grads["E"]
    before = np.array(held)  # the dense dE, formed from the workspace's rows
    held._dense = None  # formed again below, from what it holds then
    model.params["E"] *= 1.5  # the next step normalises different rows into the workspace
    model.loss_and_grads(*second)
    np.testing.assert_array_equal(held.dense(), before)
