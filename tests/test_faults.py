"""Faults a hostile or unlucky user meets: each gives one clear line and a non-zero exit, or the right result,
and a checkout it touches is left as it was.

Escaping profiles, NaN and infinite parameters, SE reductions that cannot build the model, a missing
database driver, several tuning workers against one total, a read-only checkout, mismatched or broken
classifier weights, and how far PyTorch's kernels stand from the C kernels.
"""
from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from conftest import write_notebook
from optuna.trial import TrialState

from effgen.classifier import ClassifierConfig, train_classifier
from effgen.classifier.loop import _load
from effgen.commands import main
from effgen.errors import ParamsError
from effgen.kernels import build as cpu_kernels
from effgen.tuning import (
    PerTrialSeededSampler,
    SurplusTrial,
    TuningSettings,
    count_finished,
    make_pruner,
    open_storage,
    open_study,
    parse_storage,
    run_worker,
)
from effgen.tuning.study import make_objective, worker_id

CPU = torch.device("cpu")


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what "nothing was written" is checked against."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("effgen: error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def deep_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-chapter book two folders below ``tmp_path``, so ``../../x`` still lands inside ``tmp_path``."""
    root = tmp_path / "a" / "b" / "project"
    (root / "chapters").mkdir(parents=True)
    (root / "_quarto.yml").write_text("book:\n  title: Tiny\n  chapters:\n    - chapters/01-first.ipynb\n")
    write_notebook(root / "chapters/01-first.ipynb", 'profile: str = "quick"\nlr: float = 0.1\nlrs: list = [0.1]',
                   "print(lr, lrs)")
    for profile in ("smoke", "quick"):
        (root / "params" / profile).mkdir(parents=True)
        (root / "params" / profile / "01-first.yml").write_text("lr: 0.2\n")
    monkeypatch.setenv("EFFGEN_ROOT", str(root))
    monkeypatch.chdir(root)
    return root


# ---- profiles are names ----------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["../../pp", "../x", "/abs/dir", "quick/../../x", "Quick", ""])
@pytest.mark.parametrize("command", [["run", "01"], ["run", "--status"], ["render", "--to", "html"],
                                     ["report", "--to", "html"], ["snapshot"]])
def test_a_profile_that_is_not_a_name_is_refused_and_nothing_is_written(
        deep_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str],
        profile: str) -> None:
    if profile == "/abs/dir":
        profile = str(tmp_path / "abs" / "dir")
    before = tree(tmp_path)
    assert main([*command, "--profile", profile]) == 2
    assert "is not a profile name" in one_error_line(capsys)
    assert tree(tmp_path) == before


def test_tune_refuses_a_profile_that_is_not_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "03-tuning.yml"
    params.write_text("n_trials: 1\n")
    before = tree(tmp_path)
    assert main(["tune", "--params", str(params), "--profile", "../../pp"]) == 2
    assert "is not a profile name" in one_error_line(capsys)
    assert tree(tmp_path) == before


# ---- parameters: finite numbers, constraints the model needs ---------------------------------


@pytest.mark.parametrize("text, problem", [
    ("lr: .nan\n", "lr: must be a finite number (got nan)"),
    ("lr: .inf\n", "lr: must be a finite number (got inf)"),
    ("lr: -.inf\n", "lr: must be a finite number (got -inf)"),
    ("lrs: [0.1, .nan]\n", "lrs.1: must be a finite number (got nan)"),
])
def test_a_non_finite_chapter_parameter_stops_the_run_before_any_chapter(
        deep_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str) -> None:
    (deep_project / "params" / "smoke" / "01-first.yml").write_text(text)
    before = tree(tmp_path)
    assert main(["run", "01", "--profile", "smoke"]) == 2
    assert one_error_line(capsys) == f"effgen: error: params/smoke/01-first.yml: {problem}"
    assert tree(tmp_path) == before


@pytest.mark.parametrize("text, problem", [
    ("lr: .nan\n", "lr: input should be a finite number (got nan)"),
    ("lr: .inf\n", "lr: input should be a finite number (got inf)"),
    ("weight_decay: .nan\n", "weight_decay: input should be a finite number (got nan)"),
    ("se_reduction: 3\n", "se_reduction: must divide the SE channel counts 64, 128, 256 (got 3)"),
    ("steps: [\n", "not valid YAML"),
])
def test_train_classifier_refuses_bad_numbers_in_one_line_before_any_data(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str) -> None:
    params = tmp_path / "p.yml"
    params.write_text(text)
    # --data names no folder: a run that got past its parameters would fail there, differently
    code = main(["train", "classifier", "--params", str(params), "--out", str(tmp_path / "run"),
                 "--data", str(tmp_path / "no-data"), "--device", "cpu"])
    assert code == 2
    assert one_error_line(capsys).startswith(f"effgen: error: {params}: {problem}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("changes, problem", [
    ({"space": {"dropout": {"low": 0.0, "high": 1.5}}}, "space: dropout: input should be less than 1 (got 1.5)"),
    ({"fixed": {"se_reduction": 3}}, "fixed: se_reduction: must divide the SE channel counts"),
    ({"fixed": {"weight_decay": float("nan")}, "space": {"lr": {"low": 1e-3, "high": 1e-2}}},
     "fixed: weight_decay: input should be a finite number (got nan)"),
])
def test_a_study_whose_trials_could_not_be_built_is_refused_before_any_trial(changes: dict, problem: str) -> None:
    from effgen.tuning import check_space_budget

    with pytest.raises(ParamsError) as err:
        check_space_budget(TuningSettings(**changes), source="03-tuning.yml")
    assert str(err.value).startswith(f"03-tuning.yml: {problem}")


# ---- tuning --------------------------------------------------------------------------------


def test_a_storage_whose_driver_is_missing_names_the_package() -> None:
    with pytest.raises(ParamsError) as err:
        open_storage(parse_storage("postgresql://user:secret@localhost/optuna", "quick"))
    message = str(err.value)
    assert "pip install psycopg" in message and "secret" not in message and "\n" not in message


def test_tune_with_a_missing_driver_stops_before_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    params = tmp_path / "03-tuning.yml"
    params.write_text("n_trials: 1\nsteps: 2\nsteps_per_epoch: 1\n")
    before = tree(tmp_path)
    assert main(["tune", "--params", str(params), "--storage", "postgresql://u@localhost/db"]) == 2
    assert "pip install psycopg" in one_error_line(capsys)
    assert tree(tmp_path) == before


SETTINGS = {"n_trials": 6, "trials_per_round": 4, "steps": 40, "steps_per_epoch": 10, "tpe_startup_trials": 2,
            "pruner": "none", "heartbeat_interval": 1, "grace_period": 3}


def _settings() -> TuningSettings:
    return TuningSettings(**SETTINGS)


def _study(settings: TuningSettings, storage: str) -> optuna.Study:
    spec = parse_storage(storage, "smoke", settings.heartbeat_interval, settings.grace_period)
    return open_study(open_storage(spec), "faults", settings.study_config(),
                      PerTrialSeededSampler(settings.seed, settings.tpe_startup_trials), make_pruner("none"))


def _quick(params: dict, report) -> float:
    report(10, 0.5)
    return params["lr"]


def test_a_worker_leaves_the_last_place_to_a_trial_another_worker_is_running(tmp_path: Path) -> None:
    settings = _settings()
    study = _study(settings, str(tmp_path / "s.db"))
    run_worker(study, settings.plan, _quick, 5)
    other = study.ask()  # another worker's trial, started and still training
    other.set_user_attr("round", 0)
    other.set_user_attr("worker", worker_id())  # a live process
    run_worker(study, settings.plan, _quick, 6)
    study.tell(other, 0.1)
    assert count_finished(study) == 6


def test_a_trial_created_past_the_total_is_closed_before_it_trains(tmp_path: Path) -> None:
    settings = _settings()
    study = _study(settings, str(tmp_path / "s.db"))
    run_worker(study, settings.plan, _quick, 5)
    racing = [study.ask(), study.ask()]  # two workers asked for the sixth place at the same instant
    objective = make_objective(settings.plan, _quick, n_trials=6)
    assert objective(racing[0]) > 0  # the earlier trial number wins the place
    with pytest.raises(SurplusTrial):
        objective(racing[1])


# What ``effgen tune`` runs in each shell, with a stand-in objective: one worker of the study at argv[1].
WORKER = textwrap.dedent("""
    import sys, time
    from effgen.tuning import (PerTrialSeededSampler, TuningSettings, make_pruner, open_storage, open_study,
                               parse_storage, run_worker)

    def slow(params, report):
        time.sleep(0.1)
        report(10, 0.5)
        return params["lr"]

    s = TuningSettings(**SETTINGS)
    spec = parse_storage(sys.argv[1], "smoke", s.heartbeat_interval, s.grace_period)
    study = open_study(open_storage(spec), "faults", s.study_config(),
                       PerTrialSeededSampler(s.seed, s.tpe_startup_trials), make_pruner("none"))
    run_worker(study, s.plan, slow, 6, grace_period=s.grace_period)
""")


def test_two_workers_finish_exactly_the_total(tmp_path: Path) -> None:
    storage = "study.db"  # the journal file's workers: test_tuning_study.py
    script = tmp_path / "worker.py"
    script.write_text(WORKER.replace("**SETTINGS", f"**{SETTINGS!r}"))
    env = {**os.environ, "EFFGEN_PROGRESS": "0"}
    workers = [subprocess.Popen([sys.executable, str(script), str(tmp_path / storage)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    for proc in workers:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
        assert "Traceback" not in output, output
    study = _study(_settings(), str(tmp_path / storage))
    assert count_finished(study) == 6
    assert not study.get_trials(states=(TrialState.RUNNING,))


# ---- a read-only checkout ----------------------------------------------------------------------


@pytest.fixture
def read_only(deep_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The checkout as a read-only file system shows it: every attempt to create or write a file fails.

    Tests may run as root, for whom file modes do not stop a write, so the refusal is simulated
    where Python asks the OS to create something.
    """
    def refuse(path: object) -> None:
        if Path(os.fsdecode(path)).resolve().is_relative_to(deep_project):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_mkdir, real_open, real_io_open, real_replace = os.mkdir, builtins.open, io.open, os.replace

    def mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def opener(real):
        def open_(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
                refuse(file)
            return real(file, mode, *args, **kwargs)
        return open_

    def replace(src, dst, *args, **kwargs):
        refuse(dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(builtins, "open", opener(real_open))
    monkeypatch.setattr(io, "open", opener(real_io_open))
    monkeypatch.setattr(os, "replace", replace)
    yield deep_project


def test_render_in_a_read_only_checkout_is_one_line(read_only: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(tmp_path)
    assert main(["render", "--profile", "quick", "--to", "html", "--engine", "offline"]) == 1
    message = one_error_line(capsys)
    assert "Read-only file system" in message and "must be writable" in message
    assert tree(tmp_path) == before


# ---- evaluate: weights that do not fit, are not finished, or are broken --------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished 4-step run of the plain CNN and an official-format data folder to score it on."""
    root = tmp_path_factory.mktemp("evaluate")
    data = root / "addnist"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        np.save(data / f"{split}_x.npy", rng.uniform(0, 1, size=(40, 3, 28, 28)).astype(np.float32))
        np.save(data / f"{split}_y.npy", np.arange(40, dtype=np.int64) % 20)
    x, y = torch.from_numpy(np.load(data / "train_x.npy")), torch.from_numpy(np.load(data / "train_y.npy"))
    config = ClassifierConfig(model="baseline", steps=4, steps_per_epoch=2, batch_size=8, eval_samples=8)
    train_classifier(config, (x, y), (x, y), CPU, out_dir=root / "run")
    return root / "run" / "checkpoint.pt", data


def _edited(checkpoint: Path, tmp_path: Path, edit) -> Path:
    payload = _load(checkpoint)
    edit(payload)
    path = tmp_path / "checkpoint.pt"
    torch.save(payload, path)
    return path


def _evaluate(path: Path, data: Path) -> int:
    return main(["evaluate", "classifier", "--checkpoint", str(path), "--data", str(data), "--device", "cpu"])


def test_weights_that_do_not_fit_their_config_are_summarised_in_one_line(
        checkpoint: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _edited(checkpoint[0], tmp_path, lambda p: p["config"].update(model="paper"))
    assert _evaluate(path, checkpoint[1]) == 1
    message = one_error_line(capsys)
    assert "does not fit this classifier config" in message and "missing" in message and "unexpected" in message
    assert len(message) < 600


def test_weights_of_another_width_name_the_shapes(checkpoint: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def widen(payload: dict) -> None:
        payload["model"]["head.weight"] = torch.zeros(21, 64)

    assert _evaluate(_edited(checkpoint[0], tmp_path, widen), checkpoint[1]) == 1
    assert "1 of another shape (saved vs expected): head.weight (21, 64) vs (20, 64)" in one_error_line(capsys)


def test_nan_weights_are_refused(checkpoint: tuple[Path, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    def poison(payload: dict) -> None:
        for tensor in payload["model"].values():
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))

    assert _evaluate(_edited(checkpoint[0], tmp_path, poison), checkpoint[1]) == 1
    assert "hold NaN or infinity" in one_error_line(capsys)


def test_an_unfinished_run_is_scored_with_a_warning(checkpoint: tuple[Path, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = _edited(checkpoint[0], tmp_path, lambda p: p.update(step=2, finished=False))
    assert _evaluate(path, checkpoint[1]) == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("effgen: warning: ") and "unfinished run, stopped at step 2 of 4" in err
    assert len(err.splitlines()) == 1


def test_a_finished_run_is_scored_without_a_word(checkpoint: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _evaluate(checkpoint[0], checkpoint[1]) == 0
    assert capsys.readouterr().err == ""


# ---- the C kernels against PyTorch's ---------------------------------------------------------

# The tolerance effgen/kernels/build.py states. Measured on one thread: a first step's loss agrees to
# 1e-7 relative here and 5.5e-7 on AddNIST; the rounding then compounds, to ~2e-6 over these 40 steps
# and 4e-4 over 40 steps of the paper model at batch 64 on AddNIST (a validation accuracy moved by one
# sample in 512).
FIRST_STEP_RTOL = 1e-5
FORTY_STEPS_RTOL = 1e-3


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler here")
def test_pytorchs_kernels_give_the_kernels_numbers_to_the_stated_tolerance() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 20, (256,), generator=g)
    x = 0.3 * torch.randn(256, 3, 28, 28, generator=g)
    x[:, 0] += (y.float() / 19 * 3 - 1.5)[:, None, None]
    train, valid = (x[:192], y[:192]), (x[192:], y[192:])
    config = ClassifierConfig(steps=40, steps_per_epoch=1, batch_size=16, eval_samples=16)  # a loss per step
    assert cpu_kernels.library() is not None
    fast = train_classifier(config, train, valid, CPU)
    with cpu_kernels.disabled():
        plain = train_classifier(config, train, valid, CPU)
    mine, theirs = fast.history["train_loss"].to_numpy(), plain.history["train_loss"].to_numpy()
    assert mine[-5:].mean() < 0.8 * mine[:5].mean()  # it learned, so the comparison means something
    np.testing.assert_allclose(mine[0], theirs[0], rtol=FIRST_STEP_RTOL)
    np.testing.assert_allclose(mine, theirs, rtol=FORTY_STEPS_RTOL)
    np.testing.assert_allclose(fast.history["val_loss"], plain.history["val_loss"], rtol=FORTY_STEPS_RTOL)
    # Adam moves a weight by about lr a step however small its gradient, so rounding in a gradient
    # near zero can move that one weight by ~lr: the weights agree to within two steps of lr.
    for a, b in zip(fast.model.state_dict().values(), plain.model.state_dict().values()):
        torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=2 * config.lr)
