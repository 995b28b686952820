"""The reproduction's run plan: which runs make the page, with which settings.

The work comes in groups (``--runs`` picks some, ``--only baselines`` or
``--only models`` a whole kind); :func:`plan_runs` turns groups and seeds
into runs, each an ordinary trainer run or an in-process baseline.
"""

import shlex

from minisriem.config import PRESETS, flag_words

PLUS = PRESETS["sriem-plus"]
"""SR-IEM+'s settings (issue #12), the same as ``python -m minisriem.train --preset sriem-plus``."""

GROUPS = {
    "spop": {"kind": "baseline", "label": "S-POP"},
    "itemknn": {"kind": "baseline", "label": "Item-KNN"},
    "sriem-paper": {"kind": "model", "label": "SR-IEM (paper)", "variant": "paper"},
    "sriem-official": {
        "kind": "model",
        "label": "SR-IEM (official code)",
        "variant": "official",
    },
    "sr-stamp": {"kind": "model", "label": "SR-STAMP", "variant": "paper", "importance": "stamp"},
    "sr-sat": {"kind": "model", "label": "SR-SAT", "variant": "paper", "importance": "sat"},
    "timing": {"kind": "timing", "label": "Table 3 timing"},
    # Beyond the paper (issue #12), only when named in --runs: SR-IEM+ once per seed, and
    # its ablation (one seed; meant for DIGINETICA), each addition switched off in turn.
    "sriem-plus": {
        "kind": "model",
        "label": "SR-IEM+",
        "variant": "paper",
        "settings": dict(PLUS),
        "all_seeds": True,
        "optional": True,
    },
    "plus-no-norm": {
        "kind": "model",
        "label": "SR-IEM+ without normalised scoring",
        "variant": "paper",
        "settings": {**PLUS, "scale": 0.0},
        "ablation": True,
        "optional": True,
    },
    "plus-no-dropout": {
        "kind": "model",
        "label": "SR-IEM+ without embedding dropout",
        "variant": "paper",
        "settings": {**PLUS, "dropout": 0.0},
        "ablation": True,
        "optional": True,
    },
    "plus-paper-importance": {
        "kind": "model",
        "label": "SR-IEM+ with the paper's importance (eq. 1-4)",
        "variant": "paper",
        "settings": {**PLUS, "affinity": "paper"},
        "ablation": True,
        "optional": True,
    },
    # Probes: only when named in --runs, never in the default plan. A retrained probe
    # changes one thing and holds the epoch count at the headline's E* ("epochs_of": the
    # phase-1 run it takes E* from), so it is a refit run only.
    "sriem-all-train": {
        "kind": "model",
        "label": "SR-IEM (paper), all training sessions, last epoch",
        "variant": "paper",
        "valid_fraction": 0.0,
        "optional": True,
    },
    "probe-whole-sessions": {
        "kind": "model",
        "label": "SR-IEM (paper), whole sessions (L = 69, DIGINETICA's longest)",
        "variant": "paper",
        "settings": {"L": 69},
        "epochs_of": "sriem-paper-seed0",
        "optional": True,
    },
    "probe-released-loader": {
        "kind": "model",
        "label": "SR-IEM (paper), the released code's loader (batch 256, no shuffling)",
        "variant": "paper",
        "settings": {"batch_size": 256, "shuffle": False},
        "epochs_of": "sriem-paper-seed0",
        "optional": True,
    },
    "probe-ties": {
        "kind": "ties",
        "label": "SR-IEM (paper), refit seed 0: other tie rules on the same scores",
        "of": "sriem-paper-seed0-refit",
        "optional": True,
    },
}


def _neighbour(label, phase1_only=True, **change):
    """A group of SR-IEM+ with one setting moved, compared on validation (phase 1 only
    unless ``phase1_only`` is False: a candidate that may become the preset gets a refit)."""
    return {
        "kind": "model",
        "label": f"SR-IEM+ {label}",
        "variant": "paper",
        "settings": {**PLUS, **change},
        "ablation": True,
        "phase1_only": phase1_only,
        "optional": True,
    }


# The preset's neighbours, to choose its settings on validation (one seed, meant for
# YOOCHOOSE 1/64, the quicker dataset); listed after the probes, shown in the ablation table.
GROUPS["plus-scale-8"] = _neighbour("with scale 8", scale=8.0)
GROUPS["plus-scale-32"] = _neighbour("with scale 32", scale=32.0)
GROUPS["plus-dropout-0.3"] = _neighbour("with dropout 0.3", dropout=0.3)
# The preset trains in time order (the loader probe's lead, chosen on validation); its
# neighbour with the paper's loader has a refit: it was the preset's first form.
GROUPS["plus-shuffled"] = _neighbour(
    "shuffled every epoch (the paper's loader)", phase1_only=False, shuffle=True
)
TIMED_GROUPS = ("sriem-paper", "sriem-official", "sr-stamp", "sr-sat", "sriem-plus")
"""The models Table 3 times, with the settings of their runs."""
ONLY = {
    "baselines": [g for g, v in GROUPS.items() if v["kind"] == "baseline"],
    "models": [g for g, v in GROUPS.items() if v["kind"] == "model" and not v.get("optional")],
}


def plan_runs(groups, seeds, epochs, overrides, recorded=None, refit=True):
    """The runs of the chosen groups, in the order they are done.

    Parameters
    ----------
    groups : list of str, keys of :data:`GROUPS`
    seeds : list of int; "sriem-paper" and "sriem-plus" run once per seed, other
        models once with the first seed
    epochs : int, the most epochs of every model run
    overrides : dict, further trainer settings (``d``, ``l``, ``batch_size``,
        ``patience``), recorded with each run
    recorded : set of str, optional; names of finished runs in the state
    refit : bool; False plans phase 1 only (comparisons on validation), as
        ``python -m minisriem.train --no-refit``

    Returns
    -------
    list of dict, each with ``name``, ``group``, ``kind`` ("baseline", "model",
    "refit" or "timing"), ``label`` and, for models and timing, ``settings``
    (the trainer's keyword settings; timing: the seed and ``overrides``).

    A model group's seed gets two runs (the refit protocol, as
    ``python -m minisriem.train`` does in one run, here in two so that phase 1
    can be reused): ``GROUP-seedN`` trains without the validation sessions and
    selects the epoch E* on them (phase 1), ``GROUP-seedN-refit`` trains a
    fresh model with the same seed on every training session for E* epochs
    (phase 2; ``"of"`` names the phase-1 run whose E* it takes, its epochs are
    filled in when that run is done). Seeds after the first take the first
    seed's E* (``"of"`` is the first seed's phase-1 run) unless their own
    phase-1 run is already recorded; probes without a validation split get no
    refit run, and a group with ``"epochs_of"`` (the retrained probes) gets only
    a refit run, taking E* from that phase-1 run; a ``"phase1_only"`` group
    (the preset's neighbours, compared on validation) gets no refit run.
    """
    runs = []
    for group in groups:
        spec = GROUPS[group]
        if spec["kind"] in ("baseline", "ties"):
            runs.append(
                {"name": group, "group": group, "kind": spec["kind"], "label": spec["label"]}
            )
            if spec["kind"] == "ties":
                runs[-1]["of"] = spec["of"]
            continue
        if spec["kind"] == "timing":
            settings = {"seed": int(seeds[0]), **overrides}
            runs.append(
                {
                    "name": group,
                    "group": group,
                    "kind": "timing",
                    "label": spec["label"],
                    "settings": settings,
                }
            )
            continue
        for seed in seeds if group == "sriem-paper" or spec.get("all_seeds") else seeds[:1]:
            settings = {
                "variant": spec["variant"],
                "importance": spec.get("importance", "iem"),
                "seed": int(seed),
                "epochs": int(epochs),
                **overrides,
            }
            settings.update(spec.get("settings", {}))
            if "valid_fraction" in spec:
                settings["valid_fraction"] = spec["valid_fraction"]
            name = f"{group}-seed{seed}"
            first = f"{group}-seed{seeds[0]}"
            own = seed == seeds[0] or name in (recorded or ())
            if "epochs_of" in spec:
                own, first = False, spec["epochs_of"]
            if own:
                runs.append(
                    {
                        "name": name,
                        "group": group,
                        "kind": "model",
                        "label": spec["label"],
                        "settings": settings,
                    }
                )
            if refit and settings.get("valid_fraction", 0.1) > 0 and not spec.get("phase1_only"):
                phase2 = {k: v for k, v in settings.items() if k != "epochs"}
                runs.append(
                    {
                        "name": f"{name}-refit",
                        "group": group,
                        "kind": "refit",
                        "label": spec["label"],
                        "of": name if own else first,
                        "settings": {**phase2, "valid_fraction": 0.0},
                    }
                )
    return runs


def train_command(dataset, data_dir, settings, run_dir):
    """The ``python -m minisriem.train`` command that makes the same run."""
    parts = ["python", "-m", "minisriem.train", "--dataset", dataset]
    if data_dir:
        parts += ["--data-dir", data_dir]
    for key, value in settings.items():
        parts += flag_words("--" + key.replace("_", "-"), value)
    parts += ["--out", run_dir]
    return shlex.join(parts)


def protocol_of(run):
    """The protocol label of a run's figure (the keys of ``summary.json``)."""
    if run["kind"] == "refit":
        return "refit"
    if run["settings"].get("valid_fraction", 0.1) == 0:
        return "fixed-epochs-all-train"
    return "validation-selected"
