"""The tutorials run start to finish, and their exercise checks can pass and fail.

Each step runs as ``python tutorials/NN_topic.py`` in a subprocess with
``MINISRIEM_TUTORIAL_QUICK=1`` (short training) and ``MINISRIEM_FIGURES`` set
to a temporary folder, so the tree is never modified; the test checks the
exit status, one or two facts the step prints, and the figures it writes.

Each check in ``tutorials/checks.py`` is run against the library's own
implementation (it must pass) and against a deliberately wrong one (it must
raise AssertionError), so a student can trust both outcomes.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from minisriem import kernels, layers  # noqa: E402
from minisriem.importance import iem_backward  # noqa: E402
from minisriem.metrics import mrr_at_k, recall_at_k, target_ranks  # noqa: E402
from tutorials import checks, common  # noqa: E402

STEPS = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.py"))


def numbers(pattern, text):
    """Every float captured by ``pattern`` in ``text``."""
    return [float(x) for x in re.findall(pattern, text)]


def all_below(pattern, text, limit, at_least=1):
    found = numbers(pattern, text)
    assert len(found) >= at_least, f"{pattern!r} not printed"
    assert max(found) < limit, (pattern, found)


# What each step must print (besides exiting with 0) and the figures it writes.
def facts_01(out):
    assert "example 0: prefix [12, 40, 7] -> target 40" in out
    assert "item_seq_len = [3 2 1 1]" in out
    assert "Dataset('synthetic'" in out
    assert "train_examples  ours   719470" in out or "NOTE: DIGINETICA not found" in out


def facts_02(out):
    all_below(r"embedding gradient check: relative error (\S+)", out, 1e-8)
    assert "padding is inert" in out


def facts_03(out):
    all_below(r"sigmoid gradient check: relative error (\S+)", out, 1e-8)
    all_below(r"d Wq (\S+)", out, 1e-8)


def facts_04(out):
    assert "equals the loop over eq. (4): True" in out
    assert "dC is zero wherever M is False: True" in out
    all_below(r"gradient check: dQ (\S+),", out, 1e-8)


def facts_05(out):
    assert "library dalpha == beta * (dbeta - sum beta dbeta): True" in out
    bound = np.exp(0.9 * 0.5 / np.sqrt(200))
    all_below(r"paper +E, Wq, Wk x\d+ *: .* = (\S+)", out, bound, at_least=3)


def facts_06(out):
    all_below(r"dW0 (\S+),", out, 1e-8)
    assert "dE[0] (padding, never scored) = [0. 0. 0. 0. 0.]" in out


def facts_07(out):
    all_below(r"cross-entropy gradient check: relative error (\S+)", out, 1e-8)
    assert "naive loss nan, log-sum-exp loss" in out


def facts_08(out):
    for variant in ("paper", "official"):
        line = re.search(rf"{variant} +params x3: model gradient check: (.*)", out).group(1)
        errs = numbers(r"\w+ (\S+?)(?:,|$)", line)
        assert len(errs) >= 4 and max(errs) < 1e-6, line


def facts_09(out):
    m = re.search(r"RESULT loss first10=(\S+) last10=(\S+) log_n=(\S+)", out)
    first, last, log_n = (float(x) for x in m.groups())
    assert last < first and abs(first - log_n) < 0.1


def facts_10(out):
    assert "RESULT worked recall20=0.7500 mrr20=0.4583" in out
    assert "target item 3 -> rank 2" in out


def facts_11(out):
    assert len(re.findall(r"RESULT \w+ agree=True", out)) == 4


def facts_12(out):
    shares = dict(re.findall(r"RESULT (\S+) share=(\S+)", out))
    assert float(shares["paper/untrained"]) == 0.0 and float(shares["paper/trained"]) == 0.0
    assert {"official/untrained", "official/trained", "paper/trained_float64"} <= set(shares)
    assert 0.15 < float(re.search(r"chance=(\S+)", out).group(1)) < 0.7


def facts_13(out):
    m = re.search(r"RESULT paper recall20=(\S+) mrr20=(\S+) ratio_max=(\S+)", out)
    assert m and float(m.group(3)) < np.exp(0.9 * 0.5 / np.sqrt(200))
    assert re.search(r"RESULT official recall20=\S+ mrr20=\S+ ratio_max=\S+", out)
    # fixed weights 1/t and the paper's variant: the same scores and top 20
    m = re.search(r"RESULT mean_vs_paper max_rel=(\S+) same_top20=(\d+)/256", out)
    assert m and float(m.group(1)) < 1e-5 and int(m.group(2)) == 256
    assert re.search(r"RESULT gain mean=\S+ std=\S+ min=\S+ seeds=1", out)


def facts_14(out):
    all_below(r"RESULT model_gradcheck max=(\S+)", out, 1e-6)
    for data in ("synthetic", "skewed"):
        m = re.search(rf"RESULT {data} popularity dot=(\S+) norm=(\S+) ratio=(\S+)", out)
        assert m and float(m.group(1)) > 0 and float(m.group(2)) > 0, data
    assert "dx . y = 0 in every row (the gradient is orthogonal to the row): True" in out


FACTS = {name[:2]: globals()[f"facts_{name[:2]}"] for name in STEPS}
FIGURES = {
    "01": ["01_lengths.png"],
    "03": ["03_sigmoid.png"],
    "04": ["04_affinity.png"],
    "05": ["05_beta.png"],
    "09": ["09_loss.png"],
    "10": ["10_by_length.png"],
    "11": ["11_timing.png"],
    "12": ["12_importance.png"],
    "13": ["13_beta_spread.png"],
}


def test_every_step_is_numbered_and_tested():
    assert [s[:2] for s in STEPS] == [f"{i:02d}" for i in range(1, 15)]
    assert set(FACTS) == {s[:2] for s in STEPS}


@pytest.mark.parametrize("step", STEPS)
def test_step_runs(step, tmp_path):
    env = dict(os.environ, MINISRIEM_TUTORIAL_QUICK="1", MINISRIEM_FIGURES=str(tmp_path / "fig"))
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run(
        [sys.executable, str(TUTORIALS / step)],
        cwd=tmp_path,  # no dependence on the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{step} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = proc.stdout
    assert "EXERCISE: not attempted yet" in out  # the stub is left for the student
    FACTS[step[:2]](out)
    for fig in FIGURES.get(step[:2], []):
        assert (tmp_path / "fig" / fig).stat().st_size > 1000, fig


def test_readme_indexes_every_step_and_figure():
    readme = (TUTORIALS / "README.md").read_text()
    for step in STEPS:
        assert f"({step})" in readme, step
    for figs in FIGURES.values():
        for fig in figs:
            assert f"(figures/{fig})" in readme, fig
            path = TUTORIALS / "figures" / fig
            assert path.exists() and path.stat().st_size < 150_000, fig


# --------------------------------------------------------------------------
# The checks: the library's implementation passes, a wrong one fails
# --------------------------------------------------------------------------
def lib_pad_sessions(sessions, L):
    from data_tools import Split

    lengths = [len(s) for s in sessions]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = np.concatenate([np.asarray(s) for s in sessions])
    split = Split(offsets, items, np.ones(len(sessions)), np.arange(len(sessions)))
    item_seq, item_seq_len, _ = split.padded(L)
    return item_seq, item_seq_len


def wrong_pad_sessions(sessions, L):  # keeps the first L items, not the last
    item_seq = np.zeros((len(sessions), L), dtype=int)
    for b, s in enumerate(sessions):
        item_seq[b, : min(len(s), L)] = s[:L]
    return item_seq, np.minimum([len(s) for s in sessions], L)


def wrong_embedding_backward(demb, cache):  # buffered: repeated items lose gradient
    item_seq, shape = cache
    dE = np.zeros(shape)
    dE[item_seq.ravel()] += demb.reshape(-1, shape[1])
    dE[0] = 0
    return dE


def wrong_embedding_backward_pad(demb, cache):  # forgets that padding is not an item
    item_seq, shape = cache
    dE = np.zeros(shape)
    np.add.at(dE, item_seq.ravel(), demb.reshape(-1, shape[1]))
    return dE


def wrong_masked_average_backward(dalpha, cache):  # forgets the mask
    M, inv = cache
    return np.broadcast_to((dalpha * inv)[:, :, None], M.shape).copy()


def wrong_masked_softmax_backward(dbeta, beta):  # drops the - sum beta dbeta term
    return beta * dbeta


def wrong_scores_backward(dscores, cache):  # off by one: column j is item j + 1
    z_h, E = cache
    dE = np.zeros_like(E)
    dE[:-1] = dscores.T @ z_h
    return dscores @ E[1:], dE


def naive_ce_forward(scores, target_idx):  # no log-sum-exp
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(len(scores)), target_idx]).mean()), (p, target_idx)


def ce_backward_without_mean(dloss, cache):  # forgets the 1/B of the mean
    scores, target_idx, lse = cache
    d = np.exp(scores - lse)
    d[np.arange(len(scores)), target_idx] -= 1
    return dloss * d


def wrong_iem_backward(dz_l, cache):  # forgets that emb also feeds Q and K
    c = cache["layers"]
    dbeta, demb = layers.weighted_pool_backward(dz_l, c.pool)
    (dalpha,) = layers.masked_softmax_backward(dbeta, c.sm)
    (dC,) = layers.masked_average_backward(dalpha, c.avg)
    dQ, dK = layers.affinity_backward(dC, c.aff)
    if c.q_sig is not None:
        (dQ,), (dK,) = layers.sigmoid_backward(dQ, c.q_sig), layers.sigmoid_backward(dK, c.k_sig)
    _, dWq, _ = layers.linear_backward(dQ, c.q_lin)
    _, dWk, _ = layers.linear_backward(dK, c.k_lin)
    return demb, {"Wq": dWq, "Wk": dWk}


def l2_normalize_backward_without_projection(dy, cache):  # forgets that |x| depends on x
    y, norm = cache
    return (dy / norm,)


def l2_normalize_backward_times_norm(dy, cache):  # multiplies by |x| instead of dividing
    y, norm = cache
    return ((dy - y * (dy * y).sum(axis=-1, keepdims=True)) * norm,)


def lib_model_loss_and_grads(model, item_seq, item_seq_len, targets):
    return model.loss_and_grads(item_seq, item_seq_len, targets)


def model_grads_without_lookup(model, item_seq, item_seq_len, targets):  # E: scoring part only
    z_h, cache = model.session_forward(item_seq, item_seq_len)
    scores, sc_cache = layers.scores_forward(z_h, model.params["E"])
    loss, ce_cache = layers.softmax_cross_entropy_forward(scores, targets - 1)
    (dscores,) = layers.softmax_cross_entropy_backward(1.0, ce_cache)
    dz_h, dE = layers.scores_backward(dscores, sc_cache)
    grads = model.session_backward(dz_h, cache)
    grads["E"] = dE
    return loss, grads


def lib_adam(w, dw, config):
    config["t"] += 1
    c = config
    kernels.adam_step_numpy(
        w, dw, c["m"], c["v"], c["lr"], c["beta1"], c["beta2"], c["eps"], c["l2"], c["t"]
    )
    return w, config


def adam_without_bias_correction(w, dw, c):
    g = dw + c["l2"] * w
    c["m"] = c["beta1"] * c["m"] + (1 - c["beta1"]) * g
    c["v"] = c["beta2"] * c["v"] + (1 - c["beta2"]) * g * g
    c["t"] += 1
    return w - c["lr"] * c["m"] / (np.sqrt(c["v"]) + c["eps"]), c


def adamw(w, dw, c):  # decoupled weight decay: a different method
    c["t"] += 1
    c["m"] = c["beta1"] * c["m"] + (1 - c["beta1"]) * dw
    c["v"] = c["beta2"] * c["v"] + (1 - c["beta2"]) * dw * dw
    mhat = c["m"] / (1 - c["beta1"] ** c["t"])
    vhat = c["v"] / (1 - c["beta2"] ** c["t"])
    w = w - c["lr"] * c["l2"] * w
    return w - c["lr"] * mhat / (np.sqrt(vhat) + c["eps"]), c


def lib_recall_mrr(scores, target_idx, k):
    ranks = target_ranks(np.ascontiguousarray(scores), np.asarray(target_idx) + 1)
    return recall_at_k(ranks, k), mrr_at_k(ranks, k)


def recall_mrr_ties_against(scores, target_idx, k):  # ">=": ties count against the target
    t = scores[np.arange(len(scores)), target_idx][:, None]
    rank = (scores >= t).sum(axis=1)
    return float(np.mean(rank <= k)), float(np.mean(np.where(rank <= k, 1 / rank, 0)))


def buffered_scatter_add(dE, item_seq, demb):
    real = item_seq != 0
    dE[item_seq[real]] += demb[real]


def scatter_add_with_padding(dE, item_seq, demb):
    np.add.at(dE, item_seq.ravel(), demb.reshape(-1, dE.shape[1]))


def argmin_over_padding(beta, item_seq_len, noise):  # padding (beta 0) always wins
    counted = noise.any(axis=1) & (item_seq_len > 1)
    return float(noise[np.arange(len(beta)), beta.argmin(axis=1)][counted].mean())


def beta_ratio_bound_solution(d, t, variant):
    if t == 1:
        return 1.0
    return float(np.exp((t - 1) / t * 0.5 / np.sqrt(d))) if variant == "paper" else float(np.e)


def beta_ratio_bound_without_t(d, t, variant):
    return float(np.exp(0.5 / np.sqrt(d))) if variant == "paper" else float(np.e)


CHECKS = [
    ("check_pad_sessions", (lib_pad_sessions,), [(wrong_pad_sessions,)]),
    (
        "check_embedding_backward",
        (layers.embedding_backward,),
        [(wrong_embedding_backward,), (wrong_embedding_backward_pad,)],
    ),
    ("check_sigmoid_backward", (layers.sigmoid_backward,), [(lambda ds, s: ds * s,)]),
    (
        "check_masked_average_backward",
        (layers.masked_average_backward,),
        [(wrong_masked_average_backward,)],
    ),
    (
        "check_masked_softmax_backward",
        (layers.masked_softmax_backward,),
        [(wrong_masked_softmax_backward,)],
    ),
    ("check_scores_backward", (layers.scores_backward,), [(wrong_scores_backward,)]),
    (
        "check_softmax_cross_entropy",
        (layers.softmax_cross_entropy_forward, layers.softmax_cross_entropy_backward),
        [
            (naive_ce_forward, layers.softmax_cross_entropy_backward),
            (layers.softmax_cross_entropy_forward, ce_backward_without_mean),
        ],
    ),
    ("check_iem_backward", (iem_backward,), [(wrong_iem_backward,)]),
    (
        "check_model_loss_and_grads",
        (lib_model_loss_and_grads,),
        [(model_grads_without_lookup,)],
    ),
    ("check_adam", (lib_adam,), [(adam_without_bias_correction,), (adamw,)]),
    ("check_recall_mrr", (lib_recall_mrr,), [(recall_mrr_ties_against,)]),
    (
        "check_embedding_scatter_add",
        (kernels.embedding_scatter_add,),
        [(buffered_scatter_add,), (scatter_add_with_padding,)],
    ),
    ("check_noise_lowest_share", (common.noise_lowest_share,), [(argmin_over_padding,)]),
    ("check_beta_ratio_bound", (beta_ratio_bound_solution,), [(beta_ratio_bound_without_t,)]),
    (
        "check_l2_normalize_backward",
        (layers.l2_normalize_backward,),
        [(l2_normalize_backward_without_projection,), (l2_normalize_backward_times_norm,)],
    ),
]


def test_every_check_is_tested():
    assert sorted(name for name, _, _ in CHECKS) == sorted(checks.__all__)


@pytest.mark.parametrize("name,right,wrongs", CHECKS, ids=[c[0] for c in CHECKS])
def test_check_passes_right_and_fails_wrong(name, right, wrongs):
    check = getattr(checks, name)
    check(*right)
    for wrong in wrongs:
        with pytest.raises(AssertionError):
            check(*wrong)


def test_extra_library_implementations_pass():
    checks.check_embedding_scatter_add(kernels.embedding_scatter_add_numpy)
    checks.check_adam(lib_adam)


def test_run_exercise_reports_all_three_outcomes(capsys):
    def stub(*args):
        raise NotImplementedError

    assert common.run_exercise(checks.check_sigmoid_backward, stub) is False
    assert "not attempted yet" in capsys.readouterr().out
    assert common.run_exercise(checks.check_sigmoid_backward, layers.sigmoid_backward) is True
    assert "passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="relative error"):
        common.run_exercise(checks.check_sigmoid_backward, lambda ds, s: 2 * ds * s * (1 - s))


# --------------------------------------------------------------------------
# A check names the cause of a known mistake (it runs before the gradient check)
# --------------------------------------------------------------------------
def masked_average_backward_without_diagonal(dalpha, cache):  # masks padding, not i == j
    M, inv = cache
    real = M.any(axis=2)  # B,L: rows of sessions longer than 1
    keep = M | (np.eye(M.shape[1], dtype=bool)[None] & real[:, :, None])
    return np.where(keep, (dalpha * inv)[:, :, None], 0.0)


def ce_log_of_softmax(scores, target_idx):  # subtracts the max, then takes log(softmax)
    z = scores - scores.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(len(scores)), target_idx]).mean()), None


def iem_backward_without_sigmoid(dz_l, cache):  # paper: forgets Q = sigmoid(...)
    c = cache["layers"]
    dbeta, demb = layers.weighted_pool_backward(dz_l, c.pool)
    (dalpha,) = layers.masked_softmax_backward(dbeta, c.sm)
    (dC,) = layers.masked_average_backward(dalpha, c.avg)
    dQ, dK = layers.affinity_backward(dC, c.aff)
    demb_q, dWq, _ = layers.linear_backward(dQ, c.q_lin)
    demb_k, dWk, _ = layers.linear_backward(dK, c.k_lin)
    return demb + demb_q + demb_k, {"Wq": dWq, "Wk": dWk}


NAMED_CAUSES = [
    ("check_sigmoid_backward", (lambda ds, s: ds * s,), r"s \* \(1 - s\)"),
    ("check_masked_average_backward", (wrong_masked_average_backward,), "at padding"),
    ("check_masked_average_backward", (masked_average_backward_without_diagonal,), "diagonal"),
    ("check_masked_softmax_backward", (wrong_masked_softmax_backward,), "misses the term"),
    ("check_scores_backward", (wrong_scores_backward,), r"dE\[0\] is not zero"),
    (
        "check_softmax_cross_entropy",
        (naive_ce_forward, layers.softmax_cross_entropy_backward),
        "exp overflows",
    ),
    (
        "check_softmax_cross_entropy",
        (ce_log_of_softmax, layers.softmax_cross_entropy_backward),
        r"log\(0\)",
    ),
    ("check_iem_backward", (wrong_iem_backward,), "only the pool branch"),
    ("check_iem_backward", (iem_backward_without_sigmoid,), "skips the sigmoid"),
    ("check_model_loss_and_grads", (model_grads_without_lookup,), "scoring part alone"),
]


@pytest.mark.parametrize("name,wrong,cause", NAMED_CAUSES, ids=[c[2] for c in NAMED_CAUSES])
def test_a_check_names_the_cause(name, wrong, cause):
    with pytest.raises(AssertionError, match=cause):
        getattr(checks, name)(*wrong)
