"""``effgen train classifier`` and ``effgen evaluate classifier`` end to end, on a tiny official-format folder."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from effgen.commands import main

REPO = Path(__file__).resolve().parent.parent


def official_folder(folder: Path, n: int = 120) -> Path:
    """The six bare .npy files of the official release (no provenance.json), class-balanced."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        y = np.arange(n, dtype=np.int64) % 20
        x = rng.uniform(-0.42, 2.82, size=(n, 3, 28, 28)).astype(np.float32)
        x[:, 0] = (y / 19 * 3.2 - 0.42)[:, None, None].astype(np.float32)  # learnable: class as brightness
        np.save(folder / f"{split}_x.npy", x, allow_pickle=False)
        np.save(folder / f"{split}_y.npy", y, allow_pickle=False)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("cli")
    data = official_folder(root / "addnist")
    params = root / "params.yml"
    params.write_text("model: paper\nsteps: 6\nsteps_per_epoch: 3\nbatch_size: 16\nseed: 1\n")
    out = root / "run"
    capture = root / "stdout.json"
    code = _main_to_file(["train", "classifier", "--params", str(params), "--out", str(out),
                          "--data", str(data), "--device", "cpu"], capture)
    assert code == 0
    return data, out, json.loads(capture.read_text())


def _main_to_file(argv: list[str], path: Path) -> int:
    import contextlib

    with open(path, "w") as handle, contextlib.redirect_stdout(handle):
        return main(argv)


def test_train_writes_a_resumable_run_and_prints_a_summary(trained) -> None:
    _data, out, summary = trained
    assert {"checkpoint.pt", "weights.pt", "history.csv", "config.yml", "test.json"} <= {p.name for p in out.iterdir()}
    assert summary["params"] == 86_692 and summary["steps"] == 6 and summary["test_n"] == 120
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["stand_in"] is False  # a bare official-format folder is taken as the official release


def test_evaluate_scores_any_official_format_folder(trained, capsys: pytest.CaptureFixture[str]) -> None:
    data, out, summary = trained
    assert main(["evaluate", "classifier", "--checkpoint", str(out / "checkpoint.pt"), "--data", str(data),
                 "--device", "cpu"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n"] == 120 and scores["params"] == 86_692 and scores["split"] == "test"
    assert scores["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert main(["evaluate", "classifier", "--checkpoint", str(out / "weights.pt"), "--data", str(data),
                 "--device", "cpu"]) == 0  # the finished run's weights alone, as the run store freezes it
    assert json.loads(capsys.readouterr().out) == scores
    assert main(["evaluate", "classifier", "--checkpoint", str(out), "--data", str(data), "--split", "valid",
                 "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "valid"


def test_unknown_key_exits_2_with_one_line_before_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "p.yml"
    params.write_text("learning_rate: 0.1\n")
    code = main(["train", "classifier", "--params", str(params), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "learning_rate" in err and "allowed keys" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_over_budget_exits_2_naming_the_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "p.yml"
    params.write_text("steps: 20000\n")
    code = main(["train", "classifier", "--params", str(params), "--out", str(tmp_path / "run"),
                 "--data", str(tmp_path / "not-read"), "--device", "cpu"])
    assert code == 2 and "over_budget_reason" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_evaluate_reports_missing_inputs_clearly(trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out, _ = trained
    assert main(["evaluate", "classifier", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(data)]) == 1
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["evaluate", "classifier", "--checkpoint", str(out), "--data", str(tmp_path / "nodata"),
                 "--device", "cpu"]) == 1
    assert "no such AddNIST folder" in capsys.readouterr().err


def test_entry_point_lists_the_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "effgen", "evaluate", "classifier", "--help"],
                            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "--checkpoint" in result.stdout
