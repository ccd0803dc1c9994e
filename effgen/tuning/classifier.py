"""The study's objective for PaperClassifier, running a worker, exporting the best setting, the budget sweep.

The objective sees the training and validation splits only: :func:`classifier_trial` takes the
two ``(x, y)`` pairs, never the dataset object, so the test split is out of its reach. The
score is the final validation accuracy after ``steps`` optimisation steps (on the fixed
``eval_samples`` subset when one is set), reported after every epoch for the pruner.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
import yaml
from torch import Tensor

from effgen.budget import CLASSIFIER_LIMITS
from effgen.checkpoints import atomic_write, config_key, read_yaml
from effgen.classifier import ClassifierConfig, budget_of, train_classifier
from effgen.errors import EffgenError, ParamsError
from effgen.tuning.settings import TuningSettings
from effgen.tuning.storage import StorageSpec, open_storage, parse_storage
from effgen.tuning.study import (
    PerTrialSeededSampler,
    Reporter,
    RoundPlan,
    TrialFunction,
    WorkerReport,
    make_pruner,
    open_study,
    run_worker,
    trial_value,
)

Split = tuple[Tensor, Tensor]
BEST_FILE = "best.yml"


def _pair(name: str, split: Any) -> Split:
    """Accept exactly an (x, y) pair of tensors: a whole dataset (with its test split) is refused."""
    if not (isinstance(split, tuple) and len(split) == 2 and all(isinstance(t, Tensor) for t in split)):
        raise TypeError(f"the objective takes the {name} split as an (x, y) tuple of tensors, "
                        f"not {type(split).__name__}")
    return split


def classifier_trial(train: Split, valid: Split, base: ClassifierConfig, device: torch.device) -> TrialFunction:
    """A trial function training ``base`` with the sampled values; it returns validation accuracy."""
    train, valid = _pair("train", train), _pair("valid", valid)

    def run(params: dict[str, Any], report: Reporter) -> float:
        config = base.replace(**params)
        result = train_classifier(config, train, valid, device,
                                  on_epoch=lambda _, row: report(int(row["step"]), float(row["val_acc"])))
        return result.final_val_acc

    return run


def check_space_budget(settings: TuningSettings, source: str = "tuning settings") -> None:
    """Fail before any compute if the trials would break the paper's limits or cannot be built.

    The fixed settings, and every corner of the search space on top of them, must make a valid
    ``ClassifierConfig`` (a dropout bound of 1.5 fails here, not in the study's tenth trial). No
    searchable parameter changes the parameter count, so the fixed settings decide the budget.
    """
    base = ClassifierConfig.from_dict(settings.base_config(), source=f"{source}: fixed")
    for name, bound in settings.search_space.items():
        for end in (bound.low, bound.high):
            value = int(end) if bound.integer else end
            ClassifierConfig.from_dict({**base.to_dict(), name: value}, source=f"{source}: space")
    budget_of(base)


@dataclass
class TuningRun:
    study: optuna.Study
    plan: RoundPlan
    storage: StorageSpec
    worker: WorkerReport


def connect(settings: TuningSettings, profile: str, storage: str | None = None) -> tuple[optuna.Study, StorageSpec]:
    """Open (or create) the settings' study, without running trials."""
    spec = parse_storage(settings.storage if storage is None else storage, profile,
                         settings.heartbeat_interval, settings.grace_period)
    study = open_study(open_storage(spec), settings.resolved_study_name(profile), settings.study_config(),
                       PerTrialSeededSampler(settings.seed, settings.tpe_startup_trials),
                       make_pruner(settings.pruner, settings.pruner_startup_trials,
                                   settings.pruner_warmup_epochs * settings.steps_per_epoch))
    return study, spec


def run_tuning(settings: TuningSettings, train: Split, valid: Split, device: torch.device, profile: str,
               storage: str | None = None, n_trials: int | None = None) -> TuningRun:
    """Be one worker of the study: run trials until it holds ``n_trials`` finished ones."""
    train, valid = _pair("train", train), _pair("valid", valid)
    base = ClassifierConfig.from_dict(settings.base_config())
    check_space_budget(settings)
    study, spec = connect(settings, profile, storage)
    target = settings.n_trials if n_trials is None else n_trials
    worker = run_worker(study, settings.plan, classifier_trial(train, valid, base, device), target,
                        grace_period=settings.grace_period)
    return TuningRun(study, settings.plan, spec, worker)


def best_config(study: optuna.Study, settings: TuningSettings) -> ClassifierConfig:
    try:
        best = study.best_trial
    except ValueError:
        raise EffgenError(f"study {study.study_name!r} has no complete trial yet; run more trials") from None
    return ClassifierConfig.from_dict({**settings.base_config(), **best.params})


def export_best(study: optuna.Study, settings: TuningSettings, path: Path) -> Path:
    """Write the best trial's full classifier configuration, with where it came from."""
    best = study.best_trial
    payload = {
        "study": study.study_name,
        "trial": best.number,
        "round": best.user_attrs.get("round"),
        "val_acc": best.value,  # fraction, on the validation split (or its eval_samples subset)
        "steps": settings.steps,
        "classifier": best_config(study, settings).to_dict(),
    }
    text = yaml.safe_dump(payload, sort_keys=False)
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def load_best(path: Path) -> ClassifierConfig:
    """The classifier configuration in a ``best.yml`` written by :func:`export_best`."""
    payload = read_yaml(Path(path), "best setting")
    if not isinstance(payload.get("classifier"), dict):
        raise ParamsError(f"{path}: not a best.yml from effgen tune (no 'classifier' mapping)")
    return ClassifierConfig.from_dict(payload["classifier"], source=f"{path}: classifier")


def budget_sweep(base: ClassifierConfig, lrs: Sequence[float], budgets: Sequence[int], seeds: Sequence[int],
                 train: Split, valid: Split, device: torch.device, out_dir: Path) -> pd.DataFrame:
    """Validation accuracy over learning rates at several step budgets (validation only).

    Answers whether the optimum found at one budget moves with longer training. Budgets over
    the paper's 10,000 steps run on purpose and say so in their configuration. Each run keeps
    a checkpoint in ``out_dir``, so a re-run reuses finished runs.
    """
    train, valid = _pair("train", train), _pair("valid", valid)
    rows = []
    for steps in budgets:
        reason = (f"budget sweep: {steps:,} steps, beyond the paper's limit on purpose"
                  if steps > CLASSIFIER_LIMITS.max_steps else "")
        for lr in lrs:
            for seed in seeds:
                config = base.replace(lr=float(lr), steps=int(steps), seed=int(seed), over_budget_reason=reason)
                folder = Path(out_dir) / f"steps{steps}-lr{lr:.3e}-seed{seed}-{config_tag(config)}"
                result = train_classifier(config, train, valid, device, out_dir=folder)
                rows.append({"steps": steps, "lr": float(lr), "seed": seed, "val_acc": result.final_val_acc})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Confirmed:
    """One of the study's top trials, retrained at the full budget and scored on validation."""

    trial: int  # the Optuna trial number
    trial_val_acc: float  # its score in the study (fraction), at the trial budget
    val_acc: float  # its score after the confirmation run (fraction), at ``config.steps``
    config: ClassifierConfig


def confirm_top(study: optuna.Study, settings: TuningSettings, k: int, steps: int, train: Split, valid: Split,
                device: torch.device, out_dir: Path, steps_per_epoch: int | None = None) -> list[Confirmed]:
    """Retrain the ``k`` best complete trials at ``steps`` and score each on validation, best first.

    Trials shorter than the final budget rank settings by how fast they learn, which is not
    always how far they get: a low learning rate can lose at 2,000 steps and win at 10,000.
    Confirming the few best at the full budget, still on validation data only, picks the
    setting that is best where it will be used. Runs are kept in ``out_dir`` and reused.
    ``steps_per_epoch`` sets their validation cadence (default: the trials').
    """
    train, valid = _pair("train", train), _pair("valid", valid)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise EffgenError(f"study {study.study_name!r} has no complete trial yet; run more trials")
    ranked = sorted(complete, key=lambda t: (-trial_value(t), t.number))[:max(1, k)]
    confirmed = []
    for trial in ranked:
        config = ClassifierConfig.from_dict({**settings.base_config(), **trial.params, "steps": int(steps),
                                             "steps_per_epoch": steps_per_epoch or settings.steps_per_epoch})
        folder = Path(out_dir) / f"trial{trial.number}-steps{steps}-{config_tag(config)}"
        result = train_classifier(config, train, valid, device, out_dir=folder)
        confirmed.append(Confirmed(trial.number, trial_value(trial), result.final_val_acc, config))
    return sorted(confirmed, key=lambda c: (-c.val_acc, c.trial))


def config_tag(config: ClassifierConfig) -> str:
    """A short stable name for a configuration, so run folders of different settings never collide."""
    return config_key(config.to_dict())


def log_grid(low: float, high: float, points: int) -> list[float]:
    if points < 1 or low <= 0 or high < low:
        raise ParamsError(f"a log grid needs points >= 1 and 0 < low <= high, got {points}, [{low}, {high}]")
    if points == 1:
        return [math.sqrt(low * high)]
    return [low * (high / low) ** (i / (points - 1)) for i in range(points)]
