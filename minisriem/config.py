"""Every setting of a run, in one place: the paper's defaults (Section 4.1) and their ranges.

Two dataclasses hold them: :class:`Config` (the model and its optimiser,
saved inside every ``model.npz``) and :class:`TrainOptions` (how a run
trains, saved in its ``config.json``). Each field carries its command-line
help, its allowed range and, where it differs from the field's name, its
option name, in ``field(metadata=...)``; the command-line tools build their
options from these fields (:func:`minisriem.cli.add_settings`), so a default
is written once, here. An option can be renamed without renaming the field,
which is also the key in the JSON files, so saved models and run
directories keep loading.
"""

import math
import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields


def setting(default, help, *, low=None, high=None, low_open=False, choices=None, flags=None):
    """A dataclass field with what the command line and the range check need.

    Parameters
    ----------
    default : the paper's (or the project's) default
    help : str, the option's help text
    low, high : number, optional; the allowed range (``high`` inclusive)
    low_open : bool, ``low`` itself is not allowed (``lr > 0``)
    choices : tuple of str, optional, the allowed values
    flags : tuple of str, optional; the option's names (default ``--field-name``)
    """
    meta = {"help": help, "low": low, "high": high, "low_open": low_open}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if flags is not None:
        meta["flags"] = tuple(flags)
    return field(default=default, metadata=meta)


def check_value(f, value):
    """``value`` as field ``f``'s type, or a ValueError naming the setting and its range.

    Parameters
    ----------
    f : dataclasses.Field made by :func:`setting`
    value : anything (a JSON value, a keyword argument, a parsed option)

    Returns
    -------
    the value, converted to ``f``'s type (int, float, bool or str)
    """
    kind = type(f.default)
    meta = f.metadata
    name = f"{f.name} ({option_name(f)})"
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        if "choices" in meta and value not in meta["choices"]:
            raise ValueError(f"{name} must be one of {', '.join(meta['choices'])}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if kind is int:
        if not isinstance(value, numbers.Integral) and not float(value).is_integer():
            raise ValueError(f"{name} must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
    if too_low or (high is not None and value > high):
        raise ValueError(f"{name} must be {range_text(f)}, got {value!r}")
    return value


def range_text(f):
    """The allowed range of a numeric field as words: ``"in [1, 4096]"``, ``"above 0"``."""
    low, high, low_open = f.metadata.get("low"), f.metadata.get("high"), f.metadata.get("low_open")
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f"above {low}" if low_open else f"at least {low}"
    return f"at most {high}"


def option_name(f):
    """The first command-line name of a field: ``--lr-decay`` for ``lr_decay``."""
    return f.metadata.get("flags", (None,))[0] or "--" + f.name.replace("_", "-")


def flag_words(flag, value):
    """A setting as command-line words: ``["--scale", "16.0"]``; a bool as ``["--shuffle"]``
    or ``["--no-shuffle"]`` (the options are ``argparse.BooleanOptionalAction``)."""
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    return [flag, str(value)]


class Settings:
    """``to_dict`` / ``from_dict`` and range checks for a dataclass of settings (saved as JSON)."""

    def __post_init__(self):
        for f in fields(self):
            setattr(self, f.name, check_value(f, getattr(self, f.name)))

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Build the settings from a dict, ignoring keys they do not know.

        Raises
        ------
        ValueError
            When ``data`` is not a dict, or a value is of the wrong type or out of range.
        """
        if not isinstance(data, dict):
            raise ValueError(f"settings must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def defaults(cls):
        """``{name: default}`` of every field."""
        return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


VARIANTS = ("paper", "official")
IMPORTANCE_MODULES = ("iem", "stamp", "sat")
AFFINITY_FORMS = ("variant", "paper", "official", "scaled")
"""Forms of SR-IEM's query, key and affinity, eq. (1)-(4) (``Config.affinity``): "variant"
follows ``variant``; the others are named in :data:`minisriem.kernels.IEM_VARIANTS`."""


@dataclass
class Config(Settings):
    """Every hyper-parameter of SR-IEM and its optimiser (saved in ``model.npz``).

    Model: ``d`` embedding size, ``l`` query/key size (paper variant only),
    ``L`` the number of most recent items used, ``variant`` "paper" (the
    equations) or "official" (the authors' released code), ``importance`` the
    importance module ("iem" is SR-IEM's); SR-IEM+'s additions (issue #12), each
    off by default: ``scale`` (normalised scoring), ``dropout`` (on the
    looked-up embeddings), ``affinity`` (the form of eq. 1-4).
    Training: Adam with learning rate ``lr``, multiplied by ``lr_decay`` every
    ``lr_step`` epochs, L2 ``l2`` applied as coupled weight decay, batches of
    ``batch_size``.
    """

    d: int = setting(200, "embedding size", low=1, high=4096)
    l: int = setting(
        100,
        "query/key size of eq. (2), paper variant",
        low=1,
        high=4096,
        flags=("--query-size", "--l"),
    )
    L: int = setting(
        10,
        "most recent items of a session read",
        low=1,
        high=1000,
        flags=("--recent-items", "--L"),
    )
    variant: str = setting(
        "paper",
        "the paper's equations or the authors' released code (model only)",
        choices=VARIANTS,
    )
    importance: str = setting("iem", "importance module", choices=IMPORTANCE_MODULES)
    # SR-IEM+ (issue #12): additions from the later literature, each off by default, so a
    # model.npz written before they existed loads as the model it was.
    scale: float = setting(
        0.0,
        "normalised scoring (NISER, Gupta et al. 2019): item embeddings and the session "
        "representation L2-normalised, logits = SCALE x cosine (NISER: 16); 0 = off, the "
        "paper's dot product of eq. (8)",
        low=0,
        high=1000,
    )
    dropout: float = setting(
        0.0,
        "inverted dropout rate on the looked-up session embeddings, in training only; "
        "masks drawn from the seed, epoch and step (0 = off)",
        low=0,
        high=0.9,
    )
    affinity: str = setting(
        "variant",
        "form of SR-IEM's query, key and affinity, eq. (1)-(4): 'variant' as --variant says; "
        "'paper' the equations; 'official' the released code's (linear d x d Q and K, the "
        "1/sqrt(d) inside the sigmoid, divided by t - 1); 'scaled' the equations with the "
        "1/sqrt(d) moved inside the sigmoid of eq. (3)",
        choices=AFFINITY_FORMS,
    )
    lr: float = setting(1e-3, "Adam learning rate", low=0, high=10, low_open=True)
    lr_decay: float = setting(0.1, "learning-rate factor per step", low=0, high=1, low_open=True)
    lr_step: int = setting(3, "epochs between learning-rate decays", low=1, high=10_000)
    l2: float = setting(1e-5, "L2 penalty (coupled weight decay)", low=0, high=1)
    batch_size: int = setting(128, "training batch size", low=1, high=65_536)


PRESETS = {
    # SR-IEM+ (issue #12). affinity "official": measured on the synthetic data
    # (benchmarks/plus_importance.py, quick-start settings with scale 16 and dropout 0.1,
    # seeds 0 and 1, 1 thread): "paper" keeps every weight at 1/t (mean |Wq| decays to
    # 4e-18, noise click lowest in 0% of test prefixes), "scaled" stays at 1/t in effect
    # (59% against 51% by chance), "official" learns (88%; refit test R@20 53.50 / MRR@20
    # 10.78 against 53.23 / 10.50 for "paper"). scale and dropout are NISER's published 16
    # and 0.1 (their neighbours: the plus-scale-* and plus-dropout-* groups of
    # experiments/plan.py). shuffle False, training in the file's time order so that every
    # epoch ends on the most recent sessions: chosen on YOOCHOOSE 1/64's validation split
    # (seed 0, E* = 4 both: R@20 71.08 / MRR@20 32.20 against 70.76 / 31.91 shuffled).
    "sriem-plus": {"scale": 16.0, "dropout": 0.1, "affinity": "official", "shuffle": False},
}
"""Named combinations of settings (``python -m minisriem.train --preset NAME``); an option
given explicitly overrides its preset value."""


@dataclass
class TrainOptions(Settings):
    """How a run trains, beyond the model's hyper-parameters (saved in ``config.json``).

    ``epochs`` the most epochs to run; ``patience`` stop after this many
    epochs without a better validation score; ``seed`` of the initialisation
    and the shuffling; ``shuffle`` the training examples every epoch;
    ``valid_fraction`` the share of the most recent training sessions held
    out for model selection (0: train on all and keep the last epoch);
    ``refit`` then train a fresh model on all training sessions for the
    selected number of epochs; ``eval_batch_size`` examples scored at once
    when evaluating.
    """

    epochs: int = setting(
        10,
        "most epochs to run (3 on synthetic data, about a minute on 2 cores)",
        low=1,
        high=10_000,
    )
    patience: int = setting(
        3,
        "stop after this many epochs without a better validation Recall@20",
        low=1,
        high=10_000,
    )
    seed: int = setting(0, "seed of initialisation and shuffling", low=0, high=2**32 - 1)
    shuffle: bool = setting(
        True, "shuffle the training examples every epoch (the authors' code does not)"
    )
    valid_fraction: float = setting(
        0.1,
        "share of the most recent training sessions held out to choose the number of "
        "epochs; 0 trains on all and keeps the last epoch",
        low=0,
        high=0.9,
    )
    refit: bool = setting(
        True,
        "after choosing the epoch count on the validation split, train a fresh model "
        "on every training session for that many epochs (the saved model)",
    )
    eval_batch_size: int = setting(
        512, "examples scored at once when evaluating", low=1, high=65_536
    )


@dataclass
class ServeOptions(Settings):
    """How ``recommend`` answers: ``k`` items per session, ``batch_size`` sessions at once."""

    k: int = setting(20, "number of items to recommend", low=1, high=100_000, flags=("-k",))
    batch_size: int = setting(256, "sessions scored at once", low=1, high=65_536)


@dataclass
class Limits(Settings):
    """Safety limits of a command (not saved with a run).

    ``max_memory_gb``: the most memory a setting may imply (the model's
    parameters, their gradients and Adam's two moments, and a batch of
    scores), estimated before anything is allocated; 0 means the machine's
    physical memory.
    """

    max_memory_gb: float = setting(
        0.0,
        "refuse settings whose model, Adam state and score batches need more than this many "
        "GB (0: the machine's memory)",
        low=0,
        high=1e6,
    )


@dataclass
class TimingOptions(Settings):
    """Table 3's timing group: steps per model and round, rounds, test examples per round."""

    timing_steps: int = setting(
        30, "training steps per model and timing round", low=1, high=100_000
    )
    timing_rounds: int = setting(3, "timing rounds; medians are kept", low=1, high=1000)
    timing_test: int = setting(
        8192, "test examples ranked per timing round", low=1, high=10_000_000
    )
