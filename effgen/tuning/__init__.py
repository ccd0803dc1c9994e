"""The Optuna study of chapter 03: validation accuracy, rounds of narrowing bounds, resumable workers.

- ``space``: the search space and the narrowing rule (pure functions);
- ``storage``: storage URLs and paths to Optuna storages;
- ``study``: rounds, the per-trial seeded TPE, the worker loop, summaries for the chapter;
- ``settings``: the study's settings as read from ``params/<profile>/03-tuning.yml``;
- ``classifier``: the PaperClassifier objective, best-setting export, the budget sweep.

``classifier`` imports torch; it loads on first use so the generic parts stay light.
"""
from __future__ import annotations

import importlib
from typing import Any

from effgen.tuning.settings import (
    CHAPTER_ONLY,
    DEFAULT_SPACE,
    PAPER_LAST_ROUND,
    PAPER_SETTING,
    TuningSettings,
)
from effgen.tuning.space import (
    Bound,
    NarrowingRule,
    narrow,
    narrow_bound,
    parse_space,
    space_to_dict,
    top_trials,
)
from effgen.tuning.storage import check_driver, default_storage, open_storage, parse_storage
from effgen.tuning.study import (
    PerTrialSeededSampler,
    Round,
    RoundPlan,
    SurplusTrial,
    count_claimed,
    count_finished,
    current_round,
    fail_dead_workers_trials,
    fail_orphaned_trials,
    finished_trials,
    make_pruner,
    open_study,
    plotting_view,
    pruning_savings,
    rounds_frame,
    run_worker,
    stored_rounds,
    trials_frame,
)

_CLASSIFIER = ("BEST_FILE", "Confirmed", "TuningRun", "best_config", "confirm_top", "budget_sweep", "check_space_budget",
               "classifier_trial", "config_tag", "connect", "export_best", "load_best", "log_grid",
               "run_tuning")

__all__ = [
    "BEST_FILE",
    "CHAPTER_ONLY",
    "DEFAULT_SPACE",
    "PAPER_LAST_ROUND",
    "PAPER_SETTING",
    "Bound",
    "Confirmed",
    "NarrowingRule",
    "PerTrialSeededSampler",
    "Round",
    "RoundPlan",
    "SurplusTrial",
    "TuningRun",
    "TuningSettings",
    "best_config",
    "budget_sweep",
    "check_driver",
    "check_space_budget",
    "classifier_trial",
    "config_tag",
    "confirm_top",
    "connect",
    "count_claimed",
    "count_finished",
    "current_round",
    "default_storage",
    "export_best",
    "fail_dead_workers_trials",
    "fail_orphaned_trials",
    "finished_trials",
    "load_best",
    "log_grid",
    "make_pruner",
    "narrow",
    "narrow_bound",
    "open_storage",
    "open_study",
    "parse_space",
    "parse_storage",
    "plotting_view",
    "pruning_savings",
    "rounds_frame",
    "run_tuning",
    "run_worker",
    "space_to_dict",
    "stored_rounds",
    "top_trials",
    "trials_frame",
]


def __getattr__(name: str) -> Any:
    if name in _CLASSIFIER:
        return getattr(importlib.import_module(".classifier", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
