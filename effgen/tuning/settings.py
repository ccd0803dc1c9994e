"""What defines a tuning study, read from the chapter's parameters file (``params/<profile>/03-tuning.yml``).

The same file drives the chapter and ``effgen tune``; keys only the chapter uses are listed in
``CHAPTER_ONLY`` and ignored by the command, any other unknown key is an error. The settings are a
pydantic dataclass in the house style (strict types, ``Literal`` choices, bounds, finite floats),
so a bad value is one ``ParamsError`` line naming the file and the key. The classifier settings
held ``fixed`` are checked as a ``ClassifierConfig`` by ``tuning.classifier.check_space_budget``,
which needs torch, before any trial runs.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from effgen.errors import ParamsError, build_config, one_line_config_errors
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

# ClassifierConfig fields the settings set themselves, so ``fixed`` may not.
TOP_LEVEL: tuple[str, ...] = ("steps", "steps_per_epoch", "eval_samples", "seed")

# Settings a worker may choose for itself without changing what the study is.
PER_WORKER: tuple[str, ...] = ("device", "storage", "study_name", "n_trials", "heartbeat_interval",
                               "grace_period")


SOURCE = "tuning settings"
_STYLE = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
Pruner = Literal["median", "none"]  # effgen.tuning.study.make_pruner
Sizes = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=3, max_length=3)]


@one_line_config_errors(SOURCE)
@pydantic.dataclasses.dataclass(config=_STYLE)
class TuningSettings:
    """One study's settings. Build it in code, or from a parameters file with :meth:`from_dict`."""

    seed: int = Field(default=0, ge=0)  # training seed of every trial (same init and batches), and the sampler's
    device: str = "auto"
    addnist_source: str = "auto"
    addnist_sizes: Sizes | None = None  # [train, valid, test] for rebuilt stand-ins; None = official sizes
    storage: str = ""  # "" = sqlite at runs/<profile>/03-tuning/optuna.db
    study_name: str = ""  # "" = effgen-03-tuning-<profile>-<addnist_source>
    n_trials: int = Field(default=100, ge=0)  # target number of finished (complete + pruned) trials in the study
    trials_per_round: int = Field(default=50, ge=1)  # the paper narrowed "after every fifty trials"
    steps: int = Field(default=10_000, ge=1)  # optimisation steps per trial (the paper's budget)
    steps_per_epoch: int = Field(default=1_000, ge=1)  # one validation score, and one pruning decision, per epoch
    eval_samples: int | None = Field(default=None, ge=1)  # fixed validation subset scored each epoch; None = all
    space: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SPACE.items()})
    fixed: dict[str, Any] = field(default_factory=dict)  # other ClassifierConfig fields, held fixed
    # the narrowing rule's constants (effgen.tuning.space.NarrowingRule)
    top_fraction: float = Field(default=0.2, gt=0, le=1)
    min_top: int = Field(default=3, ge=1)
    margin: float = Field(default=0.05, ge=0, le=1)
    min_keep: float = Field(default=0.25, gt=0, le=1)
    pruner: Pruner = "median"
    pruner_startup_trials: int = Field(default=5, ge=0)
    pruner_warmup_epochs: int = Field(default=2, ge=0)
    tpe_startup_trials: int = Field(default=10, ge=1)
    heartbeat_interval: int = Field(default=30, ge=1)  # seconds; RDB storages only
    grace_period: int = 120  # seconds of silence after which a trial's worker counts as dead

    @field_validator("space")
    @classmethod
    def _space_parses(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        try:
            parse_space(value)
        except ParamsError as err:
            raise ValueError(str(err)) from None
        return value

    @field_validator("fixed")
    @classmethod
    def _fixed_is_not_searched(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if both := sorted(set(info.data.get("space", {})) & set(value)):
            raise ValueError(f"{', '.join(both)} both searched (space) and fixed")
        if top_level := [key for key in TOP_LEVEL if key in value]:
            raise ValueError(f"set {', '.join(top_level)} at the top level, not in fixed")
        return value

    @field_validator("grace_period")
    @classmethod
    def _grace_outlasts_a_heartbeat(cls, value: int, info: ValidationInfo) -> int:
        if value <= info.data.get("heartbeat_interval", 0):
            raise ValueError(f"must be longer than heartbeat_interval ({info.data.get('heartbeat_interval')})")
        return value

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], ignore: tuple[str, ...] = CHAPTER_ONLY,
                  source: str = SOURCE) -> TuningSettings:
        """The settings in ``values`` (a parameters file's), without the chapter-only keys in ``ignore``."""
        if not isinstance(values, Mapping):
            raise ParamsError(f"{source}: must be a mapping of keys to values, got {type(values).__name__}")
        if unknown := sorted(k for k in values if k not in FIELDS and k not in ignore):
            raise ParamsError(f"{source}: unknown key(s) {', '.join(unknown)} (allowed keys: {', '.join(FIELDS)})")
        return build_config(cls, {k: v for k, v in values.items() if k in FIELDS}, source)

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
        # The data are part of a study's identity: another source starts its own study beside the old one.
        return self.study_name or f"effgen-{CHAPTER}-{profile}-{self.addnist_source}"

    def study_config(self) -> dict[str, Any]:
        """The settings that define the study; a resumed or extra worker must match them."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in PER_WORKER}

    def base_config(self) -> dict[str, Any]:
        """The ClassifierConfig values every trial shares (the space's values are added per trial)."""
        return {**self.fixed, "steps": self.steps, "steps_per_epoch": self.steps_per_epoch,
                "eval_samples": self.eval_samples, "seed": self.seed}


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TuningSettings))
