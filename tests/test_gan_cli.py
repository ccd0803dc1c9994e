"""``effgen train gan``: a run from a YAML file on a user image folder, resume, and clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effgen.commands import main


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        folder = tmp_path / "tree" / "train" / cls
        folder.mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tmp_path / "tree"


def write_params(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_train_gan_runs_and_resumes(tmp_path: Path, image_tree: Path, capsys: pytest.CaptureFixture) -> None:
    params = write_params(tmp_path / "gan.yml", f"recipe: faithful\nsteps: 2\nbatch_size: 4\nn_fixed: 4\n"
                                                 f"dataset: 'folder:{image_tree}'\n")
    out = tmp_path / "run"
    assert main(["train", "gan", "--params", str(params), "--out", str(out), "--device", "cpu"]) == 0
    assert "faithful: 2/2 steps (2 this call" in capsys.readouterr().out
    assert {"checkpoint.pt", "history.csv", "generator.pt", "config.json"} <= {p.name for p in out.iterdir()}
    params.write_text(params.read_text().replace("steps: 2", "steps: 3"))
    assert main(["train", "gan", "--params", str(params), "--out", str(out), "--device", "cpu"]) == 0
    assert "3/3 steps (1 this call" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ("stepz: 3\n", "gan.yml: stepz: unknown key"),
    ("steps: many\n", "gan.yml: steps: input should be a valid integer (got 'many')"),
    ("g_lr: .nan\n", "gan.yml: g_lr: input should be a finite number"),
    ("steps: 60000\n", "over the paper's budget"),
    ("dataset: 3\n", "dataset must be str"),
    ("[1, 2]\n", "gan.yml: a parameters file must be a mapping of keys to values, got list"),
    ("steps: [\n", "gan.yml: not valid YAML (expected the node content"),
])
def test_bad_parameters_fail_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, text: str,
                                         message: str) -> None:
    params = write_params(tmp_path / "gan.yml", text)
    assert main(["train", "gan", "--params", str(params), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_missing_params_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "gan", "--params", str(tmp_path / "nope.yml"), "--out", str(tmp_path)]) == 2
    assert "nope.yml: no such parameters file" in capsys.readouterr().err
