"""``effgen fid``: argument checks before work, JSON output, and the folder / stats / generator sides."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effgen.commands import main
from effgen.gan import Generator, save_generator
from effgen.metrics import inception_weights as iw
from effgen.metrics.fid import FidStats, frechet_distance

needs_weights = pytest.mark.skipif(
    iw.fid_helper_torchscript_path() is None and not iw.pytorch_fid_weights_path().is_file(),
    reason="no FID Inception weights available offline")


def _stats(path: Path, seed: int, n: int = 40) -> FidStats:
    features = np.random.default_rng(seed).normal(size=(n, 2048)).astype(np.float32)
    stats = FidStats.from_features(features, {"dataset": f"toy{seed}"})
    stats.save(path)
    return stats


def test_bad_side_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["fid", str(tmp_path / "missing.npz"), "cifar10:test"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("effgen: error:") and "file not found" in err
    assert main(["fid", str(tmp_path / "nothing-here"), "x:y"]) == 1


def test_n_below_two_is_a_parameter_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fid", "a:test", "b:test", "-n", "1"]) == 2
    assert "-n must be at least 2" in capsys.readouterr().err


def test_two_stats_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b = _stats(tmp_path / "a.npz", 0), _stats(tmp_path / "b.npz", 1)
    assert main(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fid"] == pytest.approx(frechet_distance(a, b))
    assert result["n_real"] == result["n_fake"] == 40
    assert any("rank-deficient" in note for note in result["notes"])


@needs_weights
def test_folder_against_itself_and_generator(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    folder = tmp_path / "pngs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    assert main(["fid", str(folder), str(folder), "--device", "cpu"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["n_real"] == same["n_fake"] == 6
    assert abs(same["fid"]) < 1e-3  # identical sets; the second side came from the stats cache
    assert len(list((tmp_path / "data" / "fid-stats").glob("*.npz"))) == 1

    torch.manual_seed(0)
    checkpoint = tmp_path / "g.pt"
    save_generator(Generator(), checkpoint, {"output_range": "minus_one_one", "recipe": "test"})
    assert main(["fid", str(folder), str(checkpoint), "-n", "6", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_fake"] == 6 and result["fid"] > 1.0  # random G output differs from noise PNGs
