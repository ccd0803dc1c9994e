"""Chapter 04 end to end on the smoke profile: outputs chapter 05 relies on, and reuse on re-execution."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMOKE_BOOK, copy_chapter

from effgen.gan import (
    FCGenerator,
    generated_images,
    generator_extra,
    load_generator,
    saved_generators,
)

CHAPTER = "04-dcgan"


def execute(root: Path, data: Path, out: Path) -> None:
    env = {**os.environ, "EFFGEN_ROOT": str(root), "EFFGEN_DATA": str(data), "EFFGEN_PROGRESS": "0"}
    subprocess.run([sys.executable, "-m", "papermill", str(root / f"chapters/{CHAPTER}.ipynb"), str(out),
                    "-p", "profile", "smoke", "-f", str(root / f"params/smoke/{CHAPTER}.yml"), "--cwd", str(root)],
                   check=True, env=env, capture_output=True, timeout=600)


@pytest.mark.slow
@SMOKE_BOOK
def test_chapter_04_smoke(smoke_book: Path, tmp_path: Path) -> None:
    run_dir = smoke_book / "runs/smoke" / CHAPTER
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {h["key"]: h["value"] for h in metrics["headline"]}["gan_params"] == 967_072
    dataset = metrics["metrics"]["dataset"]
    for recipe, output_range in (("corrected", "minus_one_one"), ("faithful", "zero_one")):
        path = run_dir / metrics["metrics"]["generators"][recipe]
        extra = torch.load(path, weights_only=True)["extra"]
        assert (extra["recipe"], extra["output_range"], extra["dataset"], extra["seed"]) == (
            recipe, output_range, dataset, 0)
        assert extra["steps"] == metrics["metrics"]["steps"][recipe] > 0
        images = generated_images(load_generator(path), 4, seed=1, output_range=extra["output_range"])
        assert images.shape == (4, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    # Every run leaves a generator file chapter 05 can find: the two recipes, augmentation, both baselines.
    files = {**metrics["metrics"]["generators"], **metrics["metrics"]["other_generators"]}
    found = saved_generators({name: run_dir / relpath for name, relpath in files.items()})
    assert list(found) == ["faithful", "corrected", "corrected_augment", "fc_gan", "wgan_gp"]
    assert isinstance(load_generator(found["fc_gan"]), FCGenerator)
    faithful = generator_extra(found["faithful"])
    assert (faithful["sample_mode"], faithful["batch_size"]) == ("train", 16)  # params/smoke/04-dcgan.yml
    if metrics["provenance"]["data"]["stand_in"]:
        text = (smoke_book / "_build/smoke/chapters" / f"{CHAPTER}.ipynb").read_text()
        assert "a stand-in" in text and "callout-warning" in text

    # Re-executing (in a copy of the chapter) reuses the finished runs: no checkpoint is rewritten.
    root = copy_chapter(smoke_book, CHAPTER, tmp_path / "project")
    run_dir = root / "runs/smoke" / CHAPTER
    checkpoints = {p: p.stat().st_mtime_ns for p in run_dir.rglob("checkpoint.pt")}
    assert len(checkpoints) == 5
    execute(root, smoke_book / "data", tmp_path / "second.ipynb")
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("checkpoint.pt")} == checkpoints
