"""What one classifier run is: a validated, plain-typed configuration and the model it builds.

The defaults are the paper's tuned run (SPEC §2): the SE + IR model with Swish, Adam at
lr 5.039249e-3 with weight decay 1.1710477e-5, batch 64, ten "epochs" of 1,000 steps.
Every field is a literal so a configuration round-trips through YAML and checkpoints.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ..errors import ParamsError
from ..layers import ACTIVATIONS
from ..models import BaselineCNN, PaperClassifier

MODELS: tuple[str, ...] = ("paper", "baseline")


@dataclass
class ClassifierConfig:
    model: str = "paper"  # "paper" (SE + IR, SPEC §2) | "baseline" (plain CNN)
    activation: str = "swish"  # "swish" | "relu" | "softplus"
    extra_block: bool = False  # a fourth IR block: 104,804 params, over the budget
    dropout: float = 0.0  # before the head when > 0; the original built one but never applied it
    se_reduction: int = 4
    lr: float = 5.039249e-3
    weight_decay: float = 1.1710477e-5  # Adam's L2 penalty, as torch.optim.Adam applies it
    batch_size: int = 64
    steps: int = 10_000
    steps_per_epoch: int = 1_000  # the paper's "epoch"
    eval_samples: int | None = None  # validation subset per epoch (None = the whole split)
    seed: int = 0
    over_budget_reason: str = ""  # non-empty: exceeding the paper's limits is deliberate

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), _FIELD_TYPES[f.name]))
        problems = []
        if self.model not in MODELS:
            problems.append(f"model {self.model!r} is not one of {list(MODELS)}")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        if self.extra_block and self.model != "paper":
            problems.append("extra_block applies to the 'paper' model only")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout {self.dropout} must be in [0, 1)")
        if self.lr <= 0:
            problems.append(f"lr {self.lr} must be > 0")
        if self.weight_decay < 0:
            problems.append(f"weight_decay {self.weight_decay} must be >= 0")
        for name in ("se_reduction", "batch_size", "steps", "steps_per_epoch"):
            if getattr(self, name) < 1:
                problems.append(f"{name} {getattr(self, name)} must be >= 1")
        if self.eval_samples is not None and self.eval_samples < 1:
            problems.append(f"eval_samples {self.eval_samples} must be >= 1 or null")
        if problems:
            raise ParamsError("invalid classifier config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassifierConfig:
        if not isinstance(d, Mapping):
            raise ParamsError(f"classifier config must be a mapping, got {type(d).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in d if key not in allowed]
        if unknown:
            raise ParamsError(f"unknown classifier config key(s) {unknown}; allowed keys: {allowed}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> ClassifierConfig:
        return ClassifierConfig.from_dict({**self.to_dict(), **changes})

    @property
    def epochs(self) -> int:
        return -(-self.steps // self.steps_per_epoch)


_FIELD_TYPES: dict[str, tuple[type, bool]] = {  # name -> (type, may be None)
    "model": (str, False), "activation": (str, False), "extra_block": (bool, False),
    "dropout": (float, False), "se_reduction": (int, False), "lr": (float, False),
    "weight_decay": (float, False), "batch_size": (int, False), "steps": (int, False),
    "steps_per_epoch": (int, False), "eval_samples": (int, True), "seed": (int, False),
    "over_budget_reason": (str, False),
}


def _coerce(name: str, value: Any, spec: tuple[type, bool]) -> Any:
    kind, nullable = spec
    if value is None and nullable:
        return None
    # bool is an int subclass in Python; a YAML `true` where a number belongs is a mistake.
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if kind in (str, bool) and type(value) is kind:
        return value
    expected = kind.__name__ + (" or null" if nullable else "")
    raise ParamsError(f"classifier config key {name!r} must be {expected}, got {value!r} "
                      f"({type(value).__name__})")


def build_model(config: ClassifierConfig) -> nn.Module:
    if config.model == "paper":
        return PaperClassifier(config.activation, config.extra_block, config.dropout, config.se_reduction)
    return BaselineCNN(config.activation, config.dropout)
