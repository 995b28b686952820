"""Running one baseline or one model run of the reproduction, and recording its results."""

import os
import time

from minisriem.experiments.plan import protocol_of, train_command
from minisriem.experiments.state import save_ranks


def _at20(metrics):
    return {k: metrics[k] for k in ("Recall@20", "MRR@20", "Recall@10", "MRR@10") if k in metrics}


def _by_length(ranks, lengths):
    from minisriem.metrics import metrics_by_length, record_names

    return {
        g: {"count": m["count"], **_at20(record_names(m))}
        for g, m in metrics_by_length(ranks, lengths, ks=(20,)).items()
    }


def run_baseline(run, ds, log, keep_ranks=None):
    """Fit a baseline on the training sessions and rank the test examples.

    S-POP is given whole sessions (padded to the longest test prefix), as
    GRU4Rec's S-POP counts the whole session so far; Item-KNN reads only the
    last item. Item-KNN is also scored without its popularity fallback, as
    GRU4Rec's code does, and with GRU4Rec's regularisation ``lmbd = 20`` and
    100 neighbours (see :class:`~minisriem.baselines.ItemKNN`); these extra
    rows are labelled on the page.

    Returns
    -------
    dict, the run's record
    """
    from minisriem.baselines import ItemKNN, SPop
    from minisriem.metrics import model_ranks, ranking_metrics, record_names

    record = {"status": "running", "label": run["label"], "extras": {}}
    L = int(ds.test.lengths.max()) if run["group"] == "spop" else 10
    item_seq, item_seq_len, targets = ds.test.padded(L)
    if run["group"] == "spop":
        recommenders = {"main": ("S-POP", SPop())}
    else:
        recommenders = {
            "main": ("Item-KNN", ItemKNN()),
            "no_fallback": (
                "Item-KNN, no popularity fallback (zero scores tie; GRU4Rec's scoring)",
                ItemKNN(fallback=None),
            ),
            "gru4rec_settings": (
                "Item-KNN, GRU4Rec's regularisation (lmbd = 20, 100 neighbours)",
                ItemKNN(k=100, lmbd=20.0),
            ),
        }
    for key, (label, rec) in recommenders.items():
        t0 = time.perf_counter()
        rec.fit(ds.train, ds.n_items)
        t1 = time.perf_counter()
        ranks = model_ranks(rec, item_seq, item_seq_len, targets, batch_size=256)
        t2 = time.perf_counter()
        out = {
            "test": _at20(record_names(ranking_metrics(ranks))),
            "fit_seconds": t1 - t0,
            "test_seconds": t2 - t1,
            "L": L,
        }
        if key == "main":
            out["by_length"] = _by_length(ranks, ds.test.lengths)
            if keep_ranks is not None:
                keep_ranks(ranks)
            record.update(out)
        else:
            record["extras"][key] = {"label": label, **out}
        log(
            f"{label}: "
            f"R@20 {100 * out['test']['Recall@20']:.2f} MRR@20 {100 * out['test']['MRR@20']:.2f} "
            f"(fit {t1 - t0:.1f}s, test {t2 - t1:.1f}s)"
        )
    record["settings"] = {"L": L}
    record["status"] = "finished"
    return record


def run_model(
    run,
    ds,
    record,
    *,
    out,
    state_dir,
    data_dir=None,
    threads=None,
    progress=True,
    stop_after_steps=None,
    log=print,
):
    """Train (or resume) one model run, then time a test pass on its selected epoch.

    Parameters
    ----------
    run : dict, from :func:`plan_runs`
    ds : data_tools Dataset
    record : dict, this run's record so far (updated in place)
    out : str, the folder of the run directories (the run is ``out/NAME``)
    state_dir : str, the dataset's state folder (its ranks are kept there)
    data_dir : str or None, as given on the command line (recorded in the command)
    threads, progress, stop_after_steps, log : passed to :func:`minisriem.workflow.train`

    Returns
    -------
    bool, True when the run is finished (False: interrupted)
    """
    from minisriem.checkpoint import load_model
    from minisriem.metrics import model_ranks, ranking_metrics, record_names
    from minisriem.runs import CONFIG_FILE, read_run_config
    from minisriem.workflow import train

    run_dir = os.path.join(out, run["name"])
    common = dict(
        data_dir=data_dir,
        progress=progress,
        log=log,
        threads=threads,
        stop_after_steps=stop_after_steps,
    )
    if os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        result = train(ds, resume=run_dir, **common)
    else:
        # Phase 1 of the refit protocol is its own run here (the refit is the "-refit" run).
        result = train(ds, out=run_dir, refit=False, **run["settings"], **common)
    if result.status == "interrupted":
        return False

    saved = load_model(run_dir)
    item_seq, item_seq_len, targets = ds.test.padded(saved.config.L)
    t0 = time.perf_counter()
    ranks = model_ranks(saved.model, item_seq, item_seq_len, targets, batch_size=512)
    test_seconds = time.perf_counter() - t0
    summary, history = result.summary, result.history
    train_seconds = [r["train_seconds"] for r in history]
    eval_seconds = [r["eval_seconds"] for r in history]
    save_ranks(state_dir, run["name"], ranks)
    settings = run["settings"]
    if run["kind"] == "model" and settings.get("valid_fraction", 0.1) > 0:
        settings = {**settings, "refit": False}
    record.update(
        status=result.status,
        protocol=protocol_of(run),
        run_dir=run_dir,
        command=train_command(ds.name, data_dir, settings, run_dir),
        epochs_run=len(history),
        selected_epoch=summary["selected"]["epoch"],
        selected_by=summary["selected_by"],
        valid=_at20(summary["selected"]["valid"]) if summary["selected"]["valid"] else None,
        test=_at20(summary["selected"]["test"]),
        best_test={k: [float(v), int(e)] for k, (v, e) in summary["best_test"].items()},
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        # From the run's own records: the run may have been trained by other commands.
        wall_seconds=sum(train_seconds) + sum(eval_seconds) + test_seconds,
        threads=read_run_config(run_dir).get("threads"),
        examples_per_epoch=history[0]["examples"],
        curve=[
            {
                "epoch": r["epoch"],
                "lr": r["lr"],
                "loss": r["loss"],
                "valid": _at20(r["valid"]) if r["valid"] else None,
                "test": _at20(r["test"]),
            }
            for r in history
        ],
        test_seconds=test_seconds,
        peak_rss_mb=max((r["peak_rss_mb"] for r in history if "peak_rss_mb" in r), default=None),
        test_examples=int(len(targets)),
        test_pass=_at20(record_names(ranking_metrics(ranks))),
        by_length=_by_length(ranks, ds.test.lengths),
    )
    return True


def run_tie_probe(run, ds, out, log=print):
    """Rank the test set with a finished run's model under the three tie rules.

    Returns
    -------
    dict, the record: ``rules`` maps "favour", "against", "average" to
    Recall@20 / MRR@20, and ``tied_examples`` counts the test examples where
    some other item scores exactly the target's score
    """
    import numpy as np

    from minisriem.checkpoint import load_model
    from minisriem.experiments.probes import TIE_RULES, at20, model_tie_ranks

    run_dir = os.path.join(out, run["of"])
    saved = load_model(run_dir)
    item_seq, item_seq_len, targets = ds.test.padded(saved.config.L)
    ranks = model_tie_ranks(saved.model, item_seq, item_seq_len, targets)
    rules = {rule: at20(ranks[rule]) for rule in TIE_RULES}
    for rule in TIE_RULES:
        log(
            f"ties {rule}: R@20 {100 * rules[rule]['Recall@20']:.2f} "
            f"MRR@20 {100 * rules[rule]['MRR@20']:.2f}"
        )
    return {
        "status": "finished",
        "label": run["label"],
        "of": run["of"],
        "rules": rules,
        "tied_examples": int(np.sum(ranks["against"] > ranks["favour"])),
        "test_examples": int(len(targets)),
    }
