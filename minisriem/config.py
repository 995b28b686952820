"""Hyper-parameters, in one place, with the paper's defaults (Section 4.1)."""

from dataclasses import asdict, dataclass, fields


class DictConvertible:
    """``to_dict`` / ``from_dict`` for a dataclass of settings (saved as JSON)."""

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Build the settings from a dict, ignoring keys they do not know."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Config(DictConvertible):
    """Every hyper-parameter of SR-IEM and its training.

    Model: ``d`` embedding size, ``l`` query/key size (paper variant only),
    ``L`` the number of most recent items used, ``variant`` "paper" (the
    equations) or "official" (the authors' released code), ``importance`` the
    importance module ("iem" is SR-IEM's).
    Training: Adam with learning rate ``lr``, multiplied by ``lr_decay`` every
    ``lr_step`` epochs, L2 ``l2`` applied as coupled weight decay, batches of
    ``batch_size``.
    """

    d: int = 200
    l: int = 100
    L: int = 10
    variant: str = "paper"
    importance: str = "iem"
    lr: float = 1e-3
    lr_decay: float = 0.1
    lr_step: int = 3
    l2: float = 1e-5
    batch_size: int = 128
