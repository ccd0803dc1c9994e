"""The classifier objective and ``effgen tune``: test data out of reach, resume, errors before compute, two shells."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml

import effgen.data.addnist as addnist_module
from effgen.classifier import ClassifierConfig
from effgen.commands import main
from effgen.commands.tune import read_tuning_params
from effgen.tuning import (
    TuningSettings,
    budget_sweep,
    classifier_trial,
    confirm_top,
    count_finished,
    load_best,
    run_tuning,
)

ROOT = Path(__file__).resolve().parent.parent

TINY = {
    "n_trials": 3, "trials_per_round": 2, "steps": 4, "steps_per_epoch": 2, "eval_samples": 16,
    "space": {"lr": {"low": 1e-4, "high": 3e-2, "log": True}, "dropout": {"low": 0.0, "high": 0.5},
              "batch_size": {"low": 8, "high": 16, "log": True}},
    "pruner_startup_trials": 1, "pruner_warmup_epochs": 1, "tpe_startup_trials": 2,
}


def split(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 3, 28, 28, generator=generator), torch.randint(0, 20, (n,), generator=generator)


class GuardedAddNIST:
    """AddNIST-shaped data whose test split raises when anything reads it."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.train, self.valid = split(64, generator), split(32, generator)
        self.provenance = {"dataset": "random tensors", "stand_in": True}
        self.reads_of_test = 0

    @property
    def test(self):
        self.reads_of_test += 1
        raise AssertionError("the tuning study read the test split")


@pytest.fixture
def forbidden(monkeypatch) -> GuardedAddNIST:
    data = GuardedAddNIST()
    monkeypatch.setattr(addnist_module, "load_addnist", lambda *args, **kwargs: data)
    return data


def quick_study(params: Path) -> str:
    """The study `effgen tune --params params` opens: its default name carries the profile and the data."""
    return TuningSettings.from_dict(read_tuning_params(params)).resolved_study_name("quick")


@pytest.fixture
def no_data(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("data was loaded before the parameters were checked")

    monkeypatch.setattr(addnist_module, "load_addnist", refuse)


def params_file(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "03-tuning.yml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def test_the_objective_takes_train_and_valid_only():
    assert list(inspect.signature(classifier_trial).parameters) == ["train", "valid", "base", "device"]
    data = GuardedAddNIST()
    with pytest.raises(TypeError, match=r"\(x, y\) tuple"):
        classifier_trial(data, data.valid, ClassifierConfig(), torch.device("cpu"))  # the whole dataset
    assert data.reads_of_test == 0


def test_tune_never_reads_test_and_resumes_to_a_total(tmp_path, forbidden, capsys):
    storage, best = str(tmp_path / "study.db"), tmp_path / "best.yml"
    args = ["tune", "--params", str(params_file(tmp_path)), "--storage", storage, "--best", str(best),
            "--device", "cpu"]
    assert main(args) == 0
    assert "this worker ran 3 trials; the study holds 3 finished" in capsys.readouterr().out
    assert main(args + ["--n-trials", "5"]) == 0  # a total: two more, not five more
    assert "this worker ran 2 trials; the study holds 5 finished" in capsys.readouterr().out
    assert forbidden.reads_of_test == 0

    study = optuna.load_study(study_name=quick_study(tmp_path / "03-tuning.yml"), storage=f"sqlite:///{storage}")
    assert count_finished(study) == 5
    assert all("test" not in key for t in study.trials for key in t.user_attrs)
    config = load_best(best)
    assert config.steps == 4 and config.lr == study.best_trial.params["lr"]
    assert yaml.safe_load(best.read_text())["val_acc"] == study.best_value


def test_unknown_key_is_a_one_line_error_before_any_data(tmp_path, no_data, capsys):
    assert main(["tune", "--params", str(params_file(tmp_path, n_trails=3))]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key 'n_trails'" in err and "\n" not in err


def test_bad_storage_and_over_budget_space_fail_before_any_data(tmp_path, no_data, capsys):
    assert main(["tune", "--params", str(params_file(tmp_path)), "--storage", "redis://localhost"]) == 2
    assert "unknown scheme 'redis'" in capsys.readouterr().err
    assert main(["tune", "--params", str(params_file(tmp_path, fixed={"se_reduction": 2})),
                 "--storage", str(tmp_path / "s.db")]) == 2
    assert "over the paper's budget" in capsys.readouterr().err
    assert main(["tune", "--params", str(params_file(tmp_path, fixed={"se_reduction": 3})),
                 "--storage", str(tmp_path / "s.db")]) == 2
    assert "fixed: se_reduction: must divide the SE channel counts" in capsys.readouterr().err
    assert main(["tune", "--params", str(tmp_path / "missing.yml")]) == 2


def test_a_study_with_other_settings_is_refused(tmp_path, forbidden, capsys):
    storage = str(tmp_path / "study.db")
    assert main(["tune", "--params", str(params_file(tmp_path)), "--storage", storage,
                 "--best", str(tmp_path / "b.yml"), "--n-trials", "1"]) == 0
    assert main(["tune", "--params", str(params_file(tmp_path, steps=6)), "--storage", storage]) == 2
    assert "other settings (steps: stored 4, asked 6)" in capsys.readouterr().err


def test_budget_sweep_scores_validation_and_reuses_runs(tmp_path):
    data = GuardedAddNIST()
    base = ClassifierConfig(steps=2, steps_per_epoch=2, batch_size=8, eval_samples=16)
    first = budget_sweep(base, [1e-3, 1e-2], [2, 4], [0], data.train, data.valid, torch.device("cpu"),
                         tmp_path / "sweep")
    assert list(first.columns) == ["steps", "lr", "seed", "val_acc"] and len(first) == 4
    assert sorted(set(first["steps"])) == [2, 4]
    again = budget_sweep(base, [1e-3, 1e-2], [2, 4], [0], data.train, data.valid, torch.device("cpu"),
                         tmp_path / "sweep")
    assert again.equals(first)  # reloaded from the run folders
    assert data.reads_of_test == 0


def test_confirm_top_retrains_the_best_trials_at_the_full_budget_on_validation(tmp_path):
    data = GuardedAddNIST()
    settings = TuningSettings.from_dict({**TINY, "storage": f"sqlite:///{tmp_path / 'study.db'}",
                                         "pruner": "none"})
    run = run_tuning(settings, data.train, data.valid, torch.device("cpu"), "smoke")
    confirmed = confirm_top(run.study, settings, 2, 6, data.train, data.valid, torch.device("cpu"),
                            tmp_path / "confirm")
    complete = sorted((t for t in run.study.trials if t.value is not None), key=lambda t: -t.value)
    assert [c.trial for c in sorted(confirmed, key=lambda c: -c.trial_val_acc)] == [t.number for t in complete[:2]]
    assert all(c.config.steps == 6 for c in confirmed)  # the full budget, not the trials' 4 steps
    assert confirmed[0].val_acc >= confirmed[1].val_acc  # best first, by the confirmation score
    for c in confirmed:  # each confirmation used its trial's sampled setting
        trial = run.study.trials[c.trial]
        assert all(getattr(c.config, name) == value for name, value in trial.params.items())
    again = confirm_top(run.study, settings, 2, 6, data.train, data.valid, torch.device("cpu"), tmp_path / "confirm")
    assert [(c.trial, c.val_acc) for c in again] == [(c.trial, c.val_acc) for c in confirmed]  # runs reused
    assert all(c.config.steps_per_epoch == settings.steps_per_epoch for c in confirmed)  # the trials' cadence
    paced = confirm_top(run.study, settings, 1, 6, data.train, data.valid, torch.device("cpu"), tmp_path / "confirm",
                        steps_per_epoch=3)
    assert paced[0].config.steps_per_epoch == 3 and paced[0].config.replace(steps_per_epoch=2) in [
        c.config for c in confirmed]
    assert data.reads_of_test == 0


@pytest.mark.slow
def test_two_shells_make_two_workers_of_one_study(tmp_path):
    sizes = (400, 200, 200)
    addnist_module.load_addnist("mnist-5k", seed=0, sizes=sizes)  # build the cache once, before the race
    path = params_file(tmp_path, n_trials=6, steps=12, steps_per_epoch=4, addnist_source="mnist-5k",
                       addnist_sizes=list(sizes), pruner="none")
    storage = str(tmp_path / "study.db")
    env = {**os.environ, "EFFGEN_PROGRESS": "0"}
    command = [sys.executable, "-m", "effgen", "tune", "--params", str(path), "--storage", storage,
               "--device", "cpu", "--best", str(tmp_path / "best.yml")]
    shells = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True) for _ in range(2)]
    for shell in shells:
        output, _ = shell.communicate(timeout=300)
        assert shell.returncode == 0, output
    study = optuna.load_study(study_name=quick_study(tmp_path / "03-tuning.yml"), storage=f"sqlite:///{storage}")
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert 6 <= len(finished) <= 7
    assert len({t.user_attrs["worker"] for t in finished}) == 2
