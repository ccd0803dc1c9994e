"""Chapter 05: its parameter files validate, and (slow) the smoke book's execution of it.

The smoke book's generators trained for a few steps on a stand-in, so the slow test checks plumbing
(artifacts, caching, figures, metrics.json) and asserts no FID value of meaning.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, SMOKE_BOOK

from effgen.metrics import inception_weights as iw
from effgen.runner import plan

CHAPTER = "05-evaluation"


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_parameter_files_validate(profile: str) -> None:
    jobs = plan(REPO, profile, [CHAPTER])
    assert [job.name for job in jobs] == [CHAPTER]


@pytest.mark.slow
@SMOKE_BOOK
@pytest.mark.skipif(iw.fid_helper_torchscript_path() is None and not iw.pytorch_fid_weights_path().is_file(),
                    reason="no FID Inception weights available offline")
def test_chapter_executes_on_smoke(smoke_book: Path) -> None:
    root = smoke_book
    metrics = json.loads((root / "runs" / "smoke" / CHAPTER / "metrics.json").read_text())
    (fid_entry,) = [h for h in metrics["headline"] if h["key"] == "fid_test"]
    n_fid = yaml.safe_load((REPO / "params" / "smoke" / f"{CHAPTER}.yml").read_text())["n_fid"]
    assert fid_entry["n"] == n_fid and np.isfinite(fid_entry["value"])
    assert metrics["provenance"]["data"]["stand_in"] is True
    # test, train, and six generator sets: the faithful generator twice (train and eval mode); chapter 06
    # adds its own to the same cache later
    written = (root / "runs" / "smoke" / CHAPTER / "metrics.json").stat().st_mtime
    cached = [p for p in (root / "data" / "fid-stats").glob("*.npz") if p.stat().st_mtime <= written]
    assert len(cached) == 8
    fid = metrics["metrics"]["fid"]
    assert list(fid) == ["faithful, train mode", "faithful, eval mode", "corrected", "corrected + flips/crops",
                         "FC-GAN", "WGAN-GP"]
    assert fid["faithful, train mode"]["sampling"] == {"bn_mode": "train", "batch_size": 16, "output_range": "zero_one",
                                                       "recorded_mode": "train", "architecture": "dcgan"}
    assert fid["faithful, eval mode"]["sampling"]["bn_mode"] == "eval"
    assert fid["faithful, train mode"]["fid_test"] != fid["faithful, eval mode"]["fid_test"]
    assert all(np.isfinite(row["fid_test"]) and row["n"] == n_fid for row in fid.values())
    assert metrics["metrics"]["generators_missing"] == []
    executed = (root / "_build" / "smoke" / "chapters" / f"{CHAPTER}.ipynb").read_text()
    assert "a stand-in" in executed and "rank-deficient" in executed
    for text in ("| FC-GAN", "| WGAN-GP", "| corrected + flips/crops", "| faithful, train mode", "| faithful, eval mode",
                 "the floor", "sampled two ways"):
        assert text in executed, text
    weights = root / "data" / "weights"
    assert [p.name for p in weights.iterdir()] == [iw.CONVERTED_WEIGHTS_NAME] or iw.pytorch_fid_weights_path().is_file()
