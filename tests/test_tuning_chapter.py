"""Chapter 03 end to end on the smoke profile, twice: the second execution continues the stored study."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from effgen.paths import data_root
from effgen.tuning import load_best

ROOT = Path(__file__).resolve().parent.parent


def execute(out: Path, env: dict[str, str], *extra: str) -> None:
    command = [sys.executable, "-m", "papermill", str(ROOT / "chapters" / "03-tuning.ipynb"), str(out),
               "-f", str(ROOT / "params" / "smoke" / "03-tuning.yml"), "-p", "profile", "smoke",
               "--cwd", str(ROOT / "chapters"), *extra]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_smoke_chapter_runs_then_resumes_its_study(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "_quarto.yml").write_text("project: {type: book}\n")
    env = {**os.environ, "EFFGEN_ROOT": str(project), "EFFGEN_DATA": str(data_root()), "EFFGEN_PROGRESS": "0"}
    execute(tmp_path / "first.ipynb", env)

    run_dir = project / "runs" / "smoke" / "03-tuning"
    smoke = yaml.safe_load((ROOT / "params" / "smoke" / "03-tuning.yml").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    study = optuna.load_study(study_name="effgen-03-tuning-smoke", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == smoke["n_trials"]
    assert metrics["headline"][0]["key"] == "tuned_val_acc"
    assert metrics["headline"][0]["value"] == pytest.approx(100 * study.best_value)
    assert metrics["provenance"]["profile"] == "smoke"
    assert load_best(run_dir / "best.yml").steps == smoke["steps"]

    # Raising the target continues the same study instead of starting over.
    execute(tmp_path / "second.ipynb", env, "-p", "n_trials", str(smoke["n_trials"] + 1))
    study = optuna.load_study(study_name="effgen-03-tuning-smoke", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    again = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(again) == smoke["n_trials"] + 1
    assert {t.number: t.value for t in finished} == {t.number: t.value for t in again if t.number in
                                                      {f.number for f in finished}}
