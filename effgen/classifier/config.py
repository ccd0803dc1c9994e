"""What one classifier run is: a validated, plain-typed configuration and the model it builds.

The defaults are the paper's tuned run (SPEC §2): the SE + IR model with Swish, Adam at
lr 5.039249e-3 with weight decay 1.1710477e-5, batch 64, ten "epochs" of 1,000 steps.
Every field is a literal so a configuration round-trips through YAML and checkpoints.

The training-recipe switches added for chapter 06 (learning-rate schedule, label smoothing,
an EMA of the weights, augmentation) default to "off", and :meth:`ClassifierConfig.to_dict`
leaves them out while they hold their defaults (``RECIPE_DEFAULTS``). A configuration written
before they existed therefore keeps its dictionary, its run-folder key and its checkpoints.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from effgen.classifier.digitsum import DigitConcatClassifier, DigitSumClassifier
from effgen.classifier.layers import ACTIVATIONS
from effgen.classifier.models import BaselineCNN, PaperClassifier
from effgen.errors import ParamsError

# "digitsum": a shared per-channel digit CNN and the parameter-free sum head (effgen.classifier.digitsum);
# "digitconcat": the same CNN with a learned head on the concatenated digit features.
MODELS: tuple[str, ...] = ("paper", "baseline", "digitsum", "digitconcat")
LR_SCHEDULES: tuple[str, ...] = ("constant", "onecycle", "cosine")


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
    # The training recipe (chapter 06). Defaults keep every earlier run as it was; see RECIPE_DEFAULTS.
    lr_schedule: str = "constant"  # "constant" | "onecycle" (warm-up to lr, then anneal) | "cosine" (lr -> 0)
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    ema_decay: float = 0.0  # exponential moving average of the weights; 0 = off, else e.g. 0.999
    augment_permute: bool = False  # shuffle the three channels of every image (the sum does not change)
    augment_rotate: float = 0.0  # random rotation of every channel, uniform in +-this many degrees
    augment_translate: float = 0.0  # random shift of every channel, uniform in +-this many pixels

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
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule {self.lr_schedule!r} is not one of {list(LR_SCHEDULES)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            problems.append(f"label_smoothing {self.label_smoothing} must be in [0, 1)")
        if not 0.0 <= self.ema_decay < 1.0:
            problems.append(f"ema_decay {self.ema_decay} must be in [0, 1) (0 = no EMA)")
        if not 0.0 <= self.augment_rotate <= 180.0:
            problems.append(f"augment_rotate {self.augment_rotate} must be in [0, 180] degrees")
        if not 0.0 <= self.augment_translate <= 14.0:
            problems.append(f"augment_translate {self.augment_translate} must be in [0, 14] pixels")
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
        """Every field, except recipe switches still at their defaults (so old keys and checkpoints stay valid)."""
        return {key: value for key, value in asdict(self).items()
                if not (key in RECIPE_DEFAULTS and value == RECIPE_DEFAULTS[key])}

    def replace(self, **changes: Any) -> ClassifierConfig:
        return ClassifierConfig.from_dict({**self.to_dict(), **changes})

    @property
    def epochs(self) -> int:
        return -(-self.steps // self.steps_per_epoch)

    @property
    def augments(self) -> bool:
        return self.augment_permute or self.augment_rotate > 0 or self.augment_translate > 0


# Fields added after runs were first stored, with the default that means "as before". A field
# at this value is left out of to_dict(); a missing key in a stored dict reads as this value.
RECIPE_DEFAULTS: dict[str, Any] = {"lr_schedule": "constant", "label_smoothing": 0.0, "ema_decay": 0.0,
                                   "augment_permute": False, "augment_rotate": 0.0, "augment_translate": 0.0}


_FIELD_TYPES: dict[str, tuple[type, bool]] = {  # name -> (type, may be None)
    "model": (str, False), "activation": (str, False), "extra_block": (bool, False),
    "dropout": (float, False), "se_reduction": (int, False), "lr": (float, False),
    "weight_decay": (float, False), "batch_size": (int, False), "steps": (int, False),
    "steps_per_epoch": (int, False), "eval_samples": (int, True), "seed": (int, False),
    "over_budget_reason": (str, False), "lr_schedule": (str, False), "label_smoothing": (float, False),
    "ema_decay": (float, False), "augment_permute": (bool, False), "augment_rotate": (float, False),
    "augment_translate": (float, False),
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
    if config.model == "digitsum":
        return DigitSumClassifier(activation=config.activation, dropout=config.dropout)
    if config.model == "digitconcat":
        return DigitConcatClassifier(activation=config.activation, dropout=config.dropout)
    return BaselineCNN(config.activation, config.dropout)
