"""What defines a tuning study, read from the chapter's parameters file (``params/<profile>/03-tuning.yml``).

The same file drives the chapter and ``effgen tune``; keys only the chapter uses are listed in
``CHAPTER_ONLY`` and ignored by the command, any other unknown key is an error.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from effgen.errors import ParamsError
from effgen.tuning.space import NarrowingRule, SearchSpace, parse_space
from effgen.tuning.storage import CHAPTER
from effgen.tuning.study import RoundPlan

# The paper's last round searched lr [4.75e-3, 8e-3], weight decay [1e-5, 2.5e-5] and dropout
# [0.25, 0.35] (SPEC §2); round 0 here starts wide around that box.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"low": 1e-4, "high": 3e-2, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-3, "log": True},
    "dropout": {"low": 0.0, "high": 0.5, "log": False},
    "batch_size": {"low": 32, "high": 128, "log": True},
}

# SPEC §2: the original's final search round, and the setting it reported (as it ran: the
# dropout layer, p = 0.2727, was built but never applied, so the model trained without dropout).
PAPER_LAST_ROUND: dict[str, dict[str, Any]] = {
    "lr": {"low": 4.75e-3, "high": 8e-3, "log": True},
    "weight_decay": {"low": 1e-5, "high": 2.5e-5, "log": True},
    "dropout": {"low": 0.25, "high": 0.35, "log": False},
}
PAPER_SETTING: dict[str, Any] = {"lr": 5.039249e-3, "weight_decay": 1.1710477e-5, "dropout": 0.0,
                                 "batch_size": 64, "se_reduction": 4}
PAPER_DROPOUT_BUILT = 0.2727

# Chapter parameters that are not about the study itself (the retraining and the budget sweep).
CHAPTER_ONLY: tuple[str, ...] = ("profile", "confirm_top", "final_steps", "final_steps_per_epoch", "confirm_seeds",
                                 "sweep_points", "sweep_factors", "sweep_seeds")

# Settings a worker may choose for itself without changing what the study is.
PER_WORKER: tuple[str, ...] = ("device", "storage", "study_name", "n_trials", "heartbeat_interval",
                               "grace_period")


@dataclass
class TuningSettings:
    seed: int = 0  # training seed of every trial (same init and batches), and the sampler's seed
    device: str = "auto"
    addnist_source: str = "auto"
    addnist_sizes: list | None = None  # [train, valid, test] for rebuilt stand-ins; None = official sizes
    storage: str = ""  # "" = sqlite at runs/<profile>/03-tuning/optuna.db
    study_name: str = ""  # "" = effgen-03-tuning-<profile>
    n_trials: int = 100  # target number of finished (complete + pruned) trials in the study
    trials_per_round: int = 50  # the paper narrowed "after every fifty trials"
    steps: int = 10_000  # optimisation steps per trial (the paper's budget)
    steps_per_epoch: int = 1_000  # one validation score, and one pruning decision, per epoch
    eval_samples: int | None = None  # fixed validation subset scored each epoch; None = all
    space: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SPACE.items()})
    fixed: dict = field(default_factory=dict)  # other ClassifierConfig fields, held fixed
    top_fraction: float = 0.2
    min_top: int = 3
    margin: float = 0.05
    min_keep: float = 0.25
    pruner: str = "median"
    pruner_startup_trials: int = 5
    pruner_warmup_epochs: int = 2
    tpe_startup_trials: int = 10
    heartbeat_interval: int = 30
    grace_period: int = 120

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        problems = []
        for name in ("n_trials",):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in ("trials_per_round", "steps", "steps_per_epoch", "tpe_startup_trials"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        if self.pruner_startup_trials < 0 or self.pruner_warmup_epochs < 0:
            problems.append("pruner_startup_trials and pruner_warmup_epochs must be >= 0")
        if self.addnist_sizes is not None and (len(self.addnist_sizes) != 3 or not all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in self.addnist_sizes)):
            problems.append(f"addnist_sizes must be [train, valid, test] positive ints or null, "
                            f"got {self.addnist_sizes!r}")
        if problems:
            raise ParamsError("tuning settings: " + "; ".join(problems))
        tuned_and_fixed = sorted(set(self.space) & set(self.fixed))
        if tuned_and_fixed:
            raise ParamsError(f"tuning settings: {tuned_and_fixed} are both searched (space) and fixed")
        for key in ("steps", "steps_per_epoch", "eval_samples", "seed"):
            if key in self.fixed:
                raise ParamsError(f"tuning settings: set {key!r} at the top level, not in fixed")
        parse_space(self.space)  # raises on a bad space
        NarrowingRule(self.top_fraction, self.min_top, self.margin, self.min_keep)  # and on bad constants

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], ignore: tuple[str, ...] = CHAPTER_ONLY) -> TuningSettings:
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in values if k not in allowed and k not in ignore)
        if unknown:
            raise ParamsError(f"unknown tuning key(s) {unknown}; allowed: {', '.join(allowed)}")
        return cls(**{k: v for k, v in values.items() if k in allowed})

    @property
    def search_space(self) -> SearchSpace:
        return parse_space(self.space)

    @property
    def rule(self) -> NarrowingRule:
        return NarrowingRule(self.top_fraction, self.min_top, self.margin, self.min_keep)

    @property
    def plan(self) -> RoundPlan:
        return RoundPlan(self.search_space, self.trials_per_round, self.rule)

    def resolved_study_name(self, profile: str) -> str:
        return self.study_name or f"effgen-{CHAPTER}-{profile}"

    def study_config(self) -> dict[str, Any]:
        """The settings that define the study; a resumed or extra worker must match them."""
        return {k: v for k, v in asdict(self).items() if k not in PER_WORKER}

    def base_config(self) -> dict[str, Any]:
        """The ClassifierConfig values every trial shares (the space's values are added per trial)."""
        return {**self.fixed, "steps": self.steps, "steps_per_epoch": self.steps_per_epoch,
                "eval_samples": self.eval_samples, "seed": self.seed}


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                                        "list": (list,), "dict": (dict,)}


def _check_type(name: str, value: Any, annotation: str) -> None:
    options = [part.strip() for part in str(annotation).split("|")]
    if value is None and "None" in options:
        return
    for option in options:
        types = _TYPES.get(option, ())
        if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
            return
    raise ParamsError(f"tuning setting {name!r} must be {annotation}, got {type(value).__name__} {value!r}")
