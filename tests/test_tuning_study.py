"""The study machinery with a cheap fake objective: rounds, totals, resume after SIGKILL, two workers."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from effgen.errors import ParamsError
from effgen.tuning import (
    PerTrialSeededSampler,
    TuningSettings,
    count_finished,
    fail_orphaned_trials,
    make_pruner,
    narrow,
    open_storage,
    open_study,
    parse_storage,
    plotting_view,
    pruning_savings,
    run_worker,
    stored_rounds,
    trials_frame,
)

ROOT = Path(__file__).resolve().parent.parent


def score(params: dict) -> float:
    """A smooth bowl with its top at lr 3e-3, weight decay 1e-4, dropout 0.1, batch 64."""
    return (1.0 - 0.1 * (math.log10(params["lr"]) + 2.5) ** 2
            - 0.05 * (math.log10(params["weight_decay"]) + 4) ** 2
            - (params["dropout"] - 0.1) ** 2 - 0.01 * abs(math.log2(params["batch_size"] / 64)))


def fake(params: dict, report) -> float:
    for step in (10, 20, 30, 40):
        report(step, score(params) * step / 40)
    return score(params)


def settings(**changes) -> TuningSettings:
    base = {"n_trials": 10, "trials_per_round": 4, "steps": 40, "steps_per_epoch": 10,
            "tpe_startup_trials": 3, "pruner": "none", "heartbeat_interval": 1, "grace_period": 3}
    return TuningSettings(**{**base, **changes})


def study_for(s: TuningSettings, storage: str, name: str = "fake") -> optuna.Study:
    spec = parse_storage(storage, "smoke", s.heartbeat_interval, s.grace_period)
    return open_study(open_storage(spec), name, s.study_config(), PerTrialSeededSampler(s.seed, s.tpe_startup_trials),
                      make_pruner(s.pruner, s.pruner_startup_trials, s.pruner_warmup_epochs * s.steps_per_epoch))


@pytest.fixture(scope="module")
def ten_trials(tmp_path_factory) -> tuple[TuningSettings, optuna.Study]:
    """One worker's 10 trials of ``fake`` in rounds of 4, for the tests that only read a finished study."""
    s = settings()
    study = study_for(s, str(tmp_path_factory.mktemp("ten-trials") / "s.db"))
    run_worker(study, s.plan, fake, 10)
    return s, study


def test_rounds_follow_the_narrowing_rule(ten_trials):
    s, study = ten_trials
    rounds = stored_rounds(study, s.plan)
    assert [r.index for r in rounds] == [0, 1, 2]  # 4 + 4 + 2 trials
    assert rounds[0].space == s.plan.space
    trials = study.get_trials()
    for r in rounds:
        members = [t for t in trials if t.user_attrs["round"] == r.index]
        assert len(members) == (4 if r.index < 2 else 2)
        for t in members:  # sampled inside the round's bounds, and recorded with them
            for name, bound in r.space.items():
                assert bound.low <= t.params[name] <= bound.high
                assert t.distributions[name] == bound.distribution()
        if r.index < 2:
            expected = narrow(r.space, [(t.params, t.value) for t in members], s.rule)
            assert rounds[r.index + 1].space == expected
            assert rounds[r.index + 1].space != r.space
    assert {t.user_attrs["steps_trained"] for t in trials} == {40}


def test_n_trials_is_a_total_and_resuming_does_not_replay_draws(tmp_path):
    s = settings()
    storage = str(tmp_path / "s.db")
    first = run_worker(study_for(s, storage), s.plan, fake, 3)
    second = run_worker(study_for(s, storage), s.plan, fake, 5)  # a new process would do this
    third = run_worker(study_for(s, storage), s.plan, fake, 5)
    assert (first.trials_run, second.trials_run, third.trials_run) == (3, 2, 0)
    study = study_for(s, storage)
    assert count_finished(study) == 5
    params = [tuple(sorted(t.params.items())) for t in study.get_trials()]
    assert len(set(params)) == 5  # a re-created seeded sampler did not repeat the first draws


def test_one_worker_with_a_seed_is_reproducible(tmp_path):
    s = settings(n_trials=6)
    a, b = study_for(s, str(tmp_path / "a.db")), study_for(s, str(tmp_path / "b.db"))
    run_worker(a, s.plan, fake, 6)
    run_worker(b, s.plan, fake, 6)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    c = study_for(settings(n_trials=6, seed=1), str(tmp_path / "c.db"))
    run_worker(c, s.plan, fake, 6)
    assert [t.params for t in c.trials] != [t.params for t in a.trials]


def test_a_study_refuses_other_settings_and_minimising(tmp_path):
    storage = str(tmp_path / "s.db")
    study_for(settings(), storage)
    study_for(settings(n_trials=99, device="cpu"), storage)  # per-worker settings may differ
    with pytest.raises(ParamsError, match=r"other settings \(steps: stored 40, asked 80\)"):
        study_for(settings(steps=80), storage)
    optuna.create_study(storage=f"sqlite:///{storage}", study_name="old", direction="minimize")
    with pytest.raises(ParamsError, match="minimises"):
        study_for(settings(), storage, name="old")


def test_pruned_trials_count_and_their_savings_are_measured(tmp_path):
    s = settings(pruner="median", pruner_startup_trials=2, pruner_warmup_epochs=1, n_trials=12)
    study = study_for(s, str(tmp_path / "s.db"))
    run_worker(study, s.plan, fake, 12)
    frame = trials_frame(study)
    pruned = frame[frame["state"] == "PRUNED"]
    assert count_finished(study) == 12 and len(pruned) > 0
    assert (pruned["steps_trained"] < 40).all()
    savings = pruning_savings(study, 40)
    assert savings["steps_trained"] == frame["steps_trained"].sum()
    assert savings["saved_fraction"] == pytest.approx(1 - frame["steps_trained"].sum() / (12 * 40))


def test_a_failing_objective_stops_the_worker_and_is_not_counted(tmp_path):
    s = settings()
    study = study_for(s, str(tmp_path / "s.db"))

    def broken(params, report):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        run_worker(study, s.plan, broken, 3)
    assert [t.state for t in study.trials] == [TrialState.FAIL] and count_finished(study) == 0


def test_plotting_view_puts_every_round_on_one_space(ten_trials):
    s, study = ten_trials
    view = plotting_view(study, s.plan)
    assert len(view.trials) == 10 and view.best_value == study.best_value
    importances = optuna.importance.get_param_importances(
        view, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    assert set(importances) == set(s.plan.space)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_orphaned_before_it_began_is_failed(tmp_path):
    s = settings()
    study = study_for(s, str(tmp_path / "s.db"))
    orphan = study.ask()  # created, but its worker died before the objective ran
    started = study.ask()
    started.set_user_attr("round", 0)  # a live trial of another worker
    assert fail_orphaned_trials(study, grace_period=60) == []  # too young to judge
    assert fail_orphaned_trials(study, grace_period=0) == [orphan.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {orphan.number: TrialState.FAIL, started.number: TrialState.RUNNING}


# ---- separate processes -----------------------------------------------------------------------

WORKER = textwrap.dedent("""
    import math, sys, time
    from test_tuning_study import score, settings, study_for
    from effgen.tuning import run_worker

    storage, n_trials, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

    def slow(params, report):
        for step in (10, 20, 30, 40):
            time.sleep(pause)
            report(step, score(params) * step / 40)
        return score(params)

    s = settings(n_trials=n_trials)
    run_worker(study_for(s, storage), s.plan, slow, n_trials, grace_period=s.grace_period)
""")


def spawn(tmp_path: Path, storage: str, n_trials: int, pause: float) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    path = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "EFFGEN_PROGRESS": "0", "PYTHONPATH": path}
    return subprocess.Popen([sys.executable, str(script), storage, str(n_trials), str(pause)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> None:
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output


def test_a_worker_killed_mid_study_resumes_and_loses_no_finished_trial(tmp_path):
    storage = str(tmp_path / "study.db")
    s = settings()
    proc = spawn(tmp_path, storage, 200, 0.05)
    deadline = time.monotonic() + 90
    watched = study_for(s, storage)  # opened once: each opening checks the schema
    while count_finished(watched) < 5:
        assert proc.poll() is None and time.monotonic() < deadline, "worker died or stalled"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    study = study_for(s, storage)
    before = {t.number: (t.value, t.params) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    running = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    assert 5 <= len(before) < 200
    time.sleep(s.grace_period + 1)  # the restart comes after the dead worker's heartbeat went stale

    target = len(before) + 4
    finish(spawn(tmp_path, storage, target, 0.0))
    study = study_for(s, storage)
    after = {t.number: (t.value, t.params) for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert count_finished(study) == target
    assert all(after[n] == before[n] for n in before)  # every finished trial is still there, unchanged
    assert all(study.trials[n].state == TrialState.FAIL for n in running)  # the killed trial, marked stale
    assert not study.get_trials(states=(TrialState.RUNNING,))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_worker_processes_share_one_study(tmp_path, kind):
    storage = str(tmp_path / ("study.db" if kind == "sqlite" else "study.log"))
    target = 16
    workers = [spawn(tmp_path, storage, target, 0.08) for _ in range(2)]
    for proc in workers:
        finish(proc)
    study = study_for(settings(), storage)
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == target  # a total, however many workers share it
    assert len({t.user_attrs["worker"] for t in finished}) == 2
    assert len({t.number for t in finished}) == len(finished)
