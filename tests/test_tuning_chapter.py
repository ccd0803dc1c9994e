"""Chapter 03 end to end on the smoke profile: the book's execution, then a second that continues its study."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import SMOKE_BOOK, copy_chapter

from effgen.tuning import load_best

CHAPTER = "03-tuning"
STUDY = "effgen-03-tuning-smoke"


def execute(root: Path, data: Path, out: Path, *extra: str) -> None:
    env = {**os.environ, "EFFGEN_ROOT": str(root), "EFFGEN_DATA": str(data), "EFFGEN_PROGRESS": "0"}
    command = [sys.executable, "-m", "papermill", str(root / "chapters" / f"{CHAPTER}.ipynb"), str(out),
               "-f", str(root / "params" / "smoke" / f"{CHAPTER}.yml"), "-p", "profile", "smoke",
               "--cwd", str(root / "chapters"), *extra]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


def finished_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


@pytest.mark.slow
@SMOKE_BOOK
def test_smoke_chapter_runs_then_resumes_its_study(smoke_book: Path, tmp_path: Path) -> None:
    run_dir = smoke_book / "runs" / "smoke" / CHAPTER
    smoke = yaml.safe_load((smoke_book / "params" / "smoke" / f"{CHAPTER}.yml").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    finished = finished_trials(run_dir)
    assert len(finished) == smoke["n_trials"]
    best_value = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{run_dir / 'optuna.db'}").best_value
    assert metrics["headline"][0]["key"] == "tuned_val_acc"
    assert metrics["headline"][0]["value"] == pytest.approx(100 * best_value)
    assert metrics["provenance"]["profile"] == "smoke"
    assert load_best(run_dir / "best.yml").steps == smoke["steps"]

    # Raising the target, in a copy of the chapter, continues the same study instead of starting over.
    root = copy_chapter(smoke_book, CHAPTER, tmp_path / "project")
    execute(root, smoke_book / "data", tmp_path / "second.ipynb", "-p", "n_trials", str(smoke["n_trials"] + 1))
    again = finished_trials(root / "runs" / "smoke" / CHAPTER)
    assert len(again) == smoke["n_trials"] + 1
    assert {t.number: t.value for t in finished} == {t.number: t.value for t in again if t.number in
                                                      {f.number for f in finished}}
