"""The study machinery: rounds of narrowing bounds, a per-trial seeded TPE, and resumable workers.

Nothing here knows about classifiers. A *trial function* receives the sampled parameters and
a ``report(step, value)`` callback (which raises ``optuna.TrialPruned`` when the pruner says
so) and returns the value to maximise. :func:`run_worker` calls it until the study holds
``n_trials`` finished trials, so any number of processes can run :func:`run_worker` on one
storage and together they fill one study.

Bookkeeping that lets a resumed or second worker agree on the state of the study:

- study user attribute ``effgen_config``: the settings that define the study (everything but
  ``n_trials``, the storage and the device); a worker with different settings is refused;
- study user attributes ``round_0``, ``round_1``, ...: each round's bounds and the trials it
  was narrowed around;
- trial user attributes ``round`` (set when the trial starts), ``steps_trained`` and ``worker``.

A round ends once ``trials_per_round`` of its trials have finished (COMPLETE or PRUNED).
Trials that were already running then stay in the round they started in, so with ``W``
workers a round holds up to ``trials_per_round + W - 1`` trials.

``n_trials`` is the total number of COMPLETE + PRUNED trials the study should end with, however
many workers share it. A worker starts a trial only while finished plus running trials are fewer
than ``n_trials``; two workers can still create trials at the same instant, so each trial also
checks its place: one numbered after ``n_trials`` finished or running trials is closed as FAIL
(:class:`SurplusTrial`) before it trains, and its worker stops. A killed worker's RUNNING trial
would hold its place for ever, so it is failed first: by Optuna's heartbeat on RDB storages, and,
for a worker on this machine, as soon as its process is gone (the journal file has no heartbeat).
FAIL trials never count.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import socket
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from effgen.errors import EffgenError, ParamsError
from effgen.runtime import progress
from effgen.tuning.space import Bound, NarrowingRule, SearchSpace, narrow, space_to_dict, top_trials

CONFIG_ATTR = "effgen_config"
ROUND_ATTR = "round_{}"
FINISHED: tuple[TrialState, ...] = (TrialState.COMPLETE, TrialState.PRUNED)
CLAIMED: tuple[TrialState, ...] = (*FINISHED, TrialState.RUNNING)  # trials that hold a place in n_trials

Reporter = Callable[[int, float], None]
TrialFunction = Callable[[dict[str, Any], Reporter], float]


class SurplusTrial(Exception):
    """Raised in a trial created when the study already held ``n_trials`` finished or running ones."""


class _HideSurplus(logging.Filter):
    """Optuna logs every failed trial with its traceback; a surplus trial is bookkeeping, not a failure."""

    def filter(self, record: logging.LogRecord) -> bool:
        return SurplusTrial.__name__ not in record.getMessage()


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs a line per trial and per study; the progress bar and the chapter say enough."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    handlers, hide = logging.getLogger("optuna").handlers, _HideSurplus()
    for handler in handlers:
        handler.addFilter(hide)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)
        for handler in handlers:
            handler.removeFilter(hide)


@dataclass(frozen=True)
class RoundPlan:
    space: SearchSpace  # round 0's bounds
    trials_per_round: int
    rule: NarrowingRule = field(default_factory=NarrowingRule)

    def __post_init__(self) -> None:
        if self.trials_per_round < 1:
            raise ParamsError(f"trials_per_round {self.trials_per_round} must be >= 1")


@dataclass(frozen=True)
class Round:
    index: int
    space: SearchSpace
    narrowed_around: tuple[int, ...] = ()  # numbers of the previous round's best trials

    def to_attr(self) -> dict[str, Any]:
        return {"index": self.index, "space": space_to_dict(self.space),
                "narrowed_around": list(self.narrowed_around)}

    @classmethod
    def from_attr(cls, attr: Mapping[str, Any], initial: SearchSpace) -> Round:
        space = {name: Bound(name, entry["low"], entry["high"], entry["log"], initial[name].integer)
                 for name, entry in attr["space"].items()}
        return cls(int(attr["index"]), space, tuple(attr["narrowed_around"]))


class PerTrialSeededSampler(optuna.samplers.BaseSampler):
    """Optuna's TPE, re-seeded for every trial from ``(seed, trial number)``.

    One seeded ``TPESampler`` per process would make every worker, and every resumed run,
    replay the same random start-up points. Seeding per trial number keeps a single-worker
    study reproducible across interruptions and gives concurrent workers different draws.
    With several workers the history each trial sees depends on timing, so such a study is
    not reproducible, only its per-trial seeds are.
    """

    def __init__(self, seed: int, n_startup_trials: int = 10) -> None:
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self._tpe = self._for_trial(0)

    def _for_trial(self, number: int) -> optuna.samplers.TPESampler:
        trial_seed = int(np.random.SeedSequence([self.seed, number]).generate_state(1)[0])
        # Independent (not multivariate) TPE: the bounds change between rounds, and the
        # multivariate variant falls back to random sampling on a changing space.
        return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=self.n_startup_trials)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe = self._for_trial(trial.number)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict) -> dict:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: optuna.distributions.BaseDistribution) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()


def make_pruner(kind: str, startup_trials: int = 5, warmup_steps: int = 0) -> optuna.pruners.BasePruner:
    """``median``: stop a trial whose intermediate value is below the median of earlier trials."""
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ParamsError(f"pruner {kind!r} is not one of 'median', 'none'")


def open_study(storage: optuna.storages.BaseStorage, study_name: str, config: Mapping[str, Any],
               sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Create the study, or load it and check it was made with the same ``config``."""
    with quiet_optuna():
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ParamsError(f"study {study_name!r} exists and minimises; validation accuracy is maximised. "
                          "Choose another study_name.")
    wanted = json.loads(json.dumps(dict(config)))
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, wanted)
    elif stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        details = "; ".join(f"{k}: stored {stored.get(k)!r}, asked {wanted.get(k)!r}" for k in changed)
        raise ParamsError(f"study {study_name!r} was made with other settings ({details}); "
                          "keep them, or give a new study_name or storage")
    return study


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def count_finished(study: optuna.Study) -> int:
    return len(finished_trials(study))


def count_claimed(study: optuna.Study, before: int | None = None) -> int:
    """Finished and running trials, or only those numbered below ``before``: the places taken in ``n_trials``."""
    trials = study.get_trials(deepcopy=False, states=CLAIMED)
    return len(trials) if before is None else sum(t.number < before for t in trials)


def trial_value(trial: FrozenTrial) -> float:
    """A complete trial's objective value (Optuna types it optional: running and failed trials have none)."""
    if trial.value is None:
        raise EffgenError(f"trial {trial.number} ({trial.state.name}) has no value")
    return trial.value


def stored_rounds(study: optuna.Study, plan: RoundPlan) -> list[Round]:
    attrs = study.user_attrs
    rounds: list[Round] = []
    while (attr := attrs.get(ROUND_ATTR.format(len(rounds)))) is not None:
        rounds.append(Round.from_attr(attr, plan.space))
    return rounds


def next_round(previous: Round, trials: Sequence[FrozenTrial], rule: NarrowingRule) -> Round:
    """Narrow ``previous`` around its best complete trials (ordered by trial number)."""
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
    best = [complete[i].number for i in top_trials([trial_value(t) for t in complete], rule)]
    space = narrow(previous.space, [(t.params, trial_value(t)) for t in complete], rule)
    return Round(previous.index + 1, space, tuple(best))


def current_round(study: optuna.Study, plan: RoundPlan) -> Round:
    """The round a trial starting now belongs to, opening the next round when one is full.

    Two workers may open the same round at once; both derive it from the same finished
    trials, and each trial records the bounds it actually used in its distributions.
    """
    rounds = stored_rounds(study, plan)
    if not rounds:
        rounds = [Round(0, dict(plan.space))]
        study.set_user_attr(ROUND_ATTR.format(0), rounds[0].to_attr())
    while True:
        last = rounds[-1]
        members = [t for t in finished_trials(study) if t.user_attrs.get("round") == last.index]
        if len(members) < plan.trials_per_round:
            return last
        following = next_round(last, members, plan.rule)
        study.set_user_attr(ROUND_ATTR.format(following.index), following.to_attr())
        rounds.append(following)


@dataclass
class WorkerReport:
    worker: str
    trials_run: int
    finished_in_study: int
    target: int


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def make_objective(plan: RoundPlan, trial_function: TrialFunction,
                   n_trials: int | None = None) -> Callable[[optuna.Trial], float]:
    """Wrap a trial function: pick the round, sample inside its bounds, report for pruning.

    With ``n_trials``, a trial that finds ``n_trials`` finished or running trials numbered before it
    raises :class:`SurplusTrial` before it samples anything.
    """
    me = worker_id()

    def objective(trial: optuna.Trial) -> float:
        if n_trials is not None and (ahead := count_claimed(trial.study, before=trial.number)) >= n_trials:
            raise SurplusTrial(f"trial {trial.number} came after {ahead} finished or running trials "
                               f"(target {n_trials})")
        round_ = current_round(trial.study, plan)
        trial.set_user_attr("round", round_.index)
        trial.set_user_attr("worker", me)
        params = {name: bound.suggest(trial) for name, bound in round_.space.items()}

        def report(step: int, value: float) -> None:
            trial.set_user_attr("steps_trained", int(step))
            trial.report(float(value), int(step))
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} with {value:.4f}")

        return float(trial_function(params, report))

    return objective


def fail_orphaned_trials(study: optuna.Study, grace_period: float) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker died before the trial really began.

    Optuna's heartbeat marks a dead worker's trial stale only once the trial has sent a
    heartbeat; a worker killed between creating a trial and its first heartbeat leaves it
    RUNNING for ever. Such a trial never got its ``round`` attribute (set first thing in the
    objective), so one without it, older than the grace period, is an orphan.
    """
    now = datetime.datetime.now()
    orphans = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if "round" not in t.user_attrs and t.datetime_start is not None
               and (now - t.datetime_start).total_seconds() > grace_period]
    return _fail(study, orphans)


def fail_dead_workers_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials of workers on this machine whose process has ended.

    Such a trial can never finish, yet it holds a place in ``n_trials``. RDB storages find it by
    its heartbeat after the grace period; a journal file has no heartbeat, so the process table
    is asked instead. Workers on other machines are left to the heartbeat.
    """
    host = socket.gethostname()
    dead = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            dead.append(t)
    return _fail(study, dead)


def _fail(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> list[int]:
    """Mark ``trials`` FAIL; returns the numbers of those this call settled (another worker may be first)."""
    failed = []
    for t in trials:
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                failed.append(t.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker settled it first
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _fail_stale(study: optuna.Study) -> None:
    """Fail trials whose worker has died (heartbeat or process table), so they free their places."""
    with warnings.catch_warnings():  # Optuna flags its stale-trial check experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    fail_dead_workers_trials(study)


def run_worker(study: optuna.Study, plan: RoundPlan, trial_function: TrialFunction, n_trials: int,
               max_consecutive_failures: int = 3, grace_period: float | None = None) -> WorkerReport:
    """Run trials until the study holds ``n_trials`` finished or running trials; safe to kill at any point.

    Several workers on one storage together finish exactly ``n_trials`` (see the module docstring).
    An exception in the trial function marks that trial FAIL and propagates (bad settings
    should stop the run, not fill the study with failures). With ``grace_period`` set, trials
    orphaned by a killed worker are failed first (:func:`fail_orphaned_trials`).
    """
    if n_trials < 0:
        raise ParamsError(f"n_trials {n_trials} must be >= 0")
    if grace_period is not None:
        fail_orphaned_trials(study, grace_period)
    objective = make_objective(plan, trial_function, n_trials)
    ran = failures = 0
    mine: list[FrozenTrial] = []  # this worker's trials, as Optuna's callback hands them over
    bar = progress(total=n_trials, initial=min(count_finished(study), n_trials), desc="trials")
    with quiet_optuna(), bar:
        while True:
            _fail_stale(study)
            if count_claimed(study) >= n_trials:
                break
            bar.n = count_finished(study)
            bar.refresh()
            try:
                study.optimize(objective, n_trials=1, catch=(), gc_after_trial=False,
                               callbacks=[lambda _, trial: mine.append(trial)])
            except SurplusTrial:
                break  # other workers hold the remaining places
            ran += 1
            last = mine[-1]
            failures = failures + 1 if last.state == TrialState.FAIL else 0
            if failures >= max_consecutive_failures:
                raise EffgenError(f"{failures} trials in a row failed (last: trial {last.number}, "
                                  f"{last.system_attrs.get('fail_reason', 'no reason recorded')})")
        bar.n = count_finished(study)
        bar.refresh()
    return WorkerReport(worker_id(), ran, count_finished(study), n_trials)


# ---- summaries for the chapter ---------------------------------------------------------------


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, round, worker, steps_trained, seconds, params."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
                   if t.datetime_complete and t.datetime_start else math.nan)
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "round": t.user_attrs.get("round"), "worker": t.user_attrs.get("worker"),
                     "steps_trained": t.user_attrs.get("steps_trained", 0), "seconds": seconds,
                     **t.params})
    return pd.DataFrame(rows)


def rounds_frame(study: optuna.Study, plan: RoundPlan) -> pd.DataFrame:
    """One row per (round, parameter): its bounds, its finished trials and the best value in it."""
    trials = trials_frame(study)
    rows = []
    for round_ in stored_rounds(study, plan):
        members = trials[(trials["round"] == round_.index) & trials["state"].isin([s.name for s in FINISHED])] \
            if len(trials) else trials
        complete = members[members["state"] == "COMPLETE"] if len(members) else members
        best = float(complete["value"].max()) if len(complete) else math.nan
        for name, bound in round_.space.items():
            rows.append({"round": round_.index, "param": name, "low": bound.low, "high": bound.high,
                         "log": bound.log, "width_vs_round0": bound.width / plan.space[name].width
                         if plan.space[name].width else 1.0,
                         "finished": len(members), "complete": len(complete), "best_value": best})
    return pd.DataFrame(rows)


def pruning_savings(study: optuna.Study, full_steps: int) -> dict[str, float]:
    """Steps the pruner saved: 1 - steps trained / steps the finished trials would have taken."""
    trials = finished_trials(study)
    trained = sum(int(t.user_attrs.get("steps_trained", full_steps if t.state == TrialState.COMPLETE else 0))
                  for t in trials)
    full = full_steps * len(trials)
    return {"finished": len(trials),
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "steps_trained": trained, "steps_without_pruning": full,
            "saved_fraction": 1 - trained / full if full else 0.0}


def plotting_view(study: optuna.Study, plan: RoundPlan) -> optuna.Study:
    """An in-memory copy of the finished trials on round 0's space, for Optuna's plots.

    Optuna's importance and contour plots need one distribution per parameter across all
    trials; narrowed rounds record narrower ones, which Optuna would drop from the plots.
    """
    with quiet_optuna():
        view = optuna.create_study(direction="maximize")
    distributions = {name: bound.distribution() for name, bound in plan.space.items()}
    copies = []
    for t in finished_trials(study):
        if not set(distributions) >= set(t.params):
            continue
        copies.append(optuna.trial.create_trial(
            state=t.state, value=t.value if t.state == TrialState.COMPLETE else None,
            params=dict(t.params), distributions={n: distributions[n] for n in t.params},
            intermediate_values=dict(t.intermediate_values), user_attrs=dict(t.user_attrs)))
    view.add_trials(copies)
    return view
