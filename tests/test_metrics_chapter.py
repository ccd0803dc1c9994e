"""Chapter 05: its parameter files validate, and (slow) it executes end to end on tiny stand-ins.

The slow test gives the chapter untrained generators and a 2-class, 40-image folder dataset, so it
checks plumbing (artifacts, caching, figures, metrics.json) and asserts no FID value of meaning.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effgen.gan.models import Generator, dcgan_init_, save_generator
from effgen.metrics import inception_weights as iw
from effgen.runner import plan

REPO = Path(__file__).resolve().parent.parent
CHAPTER = "05-evaluation"


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_parameter_files_validate(profile: str) -> None:
    jobs = plan(REPO, profile, [CHAPTER])
    assert [job.name for job in jobs] == [CHAPTER]


def _fake_chapter_04(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    for recipe, output_range, seed in (("corrected", "minus_one_one", 1), ("faithful", "zero_one", 2)):
        torch.manual_seed(seed)
        generator = Generator()
        dcgan_init_(generator)
        save_generator(generator, run_dir / f"generator-{recipe}.pt",
                       {"recipe": recipe, "steps": 0, "seed": seed, "dataset": "cifar10", "output_range": output_range})
    data = {"dataset": "cifar10", "requested": "cifar100", "stand_in": True, "reason": "test stand-in",
            "split": "train", "detail": "40 random images"}
    (run_dir / "metrics.json").write_text(json.dumps({
        "metrics": {"generators": {"corrected": "generator-corrected.pt", "faithful": "generator-faithful.pt"},
                    "dataset": "cifar10"},
        "provenance": {"data": data}}))


def _fake_cifar(folder: Path, per_class: int = 20) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            (folder / split / label).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / split / label / f"{i:04d}.png")


@pytest.mark.slow
@pytest.mark.skipif(iw.fid_helper_torchscript_path() is None and not iw.pytorch_fid_weights_path().is_file(),
                    reason="no FID Inception weights available offline")
def test_chapter_executes_on_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from effgen.runner import execute

    root = tmp_path / "project"
    (root / "chapters").mkdir(parents=True)
    shutil.copy(REPO / "chapters" / f"{CHAPTER}.ipynb", root / "chapters")
    (root / "params" / "smoke").mkdir(parents=True)
    shutil.copy(REPO / "params" / "smoke" / f"{CHAPTER}.yml", root / "params" / "smoke")
    (root / "_quarto.yml").write_text(f"book:\n  chapters:\n    - chapters/{CHAPTER}.ipynb\n")
    _fake_chapter_04(root / "runs" / "smoke" / "04-dcgan")
    _fake_cifar(root / "data" / "cifar10")
    monkeypatch.setenv("EFFGEN_ROOT", str(root))
    monkeypatch.setenv("EFFGEN_DATA", str(root / "data"))
    runs = execute(plan(root, "smoke", [CHAPTER]), root, log=lambda _: None)
    assert runs[0].ok
    metrics = json.loads((root / "runs" / "smoke" / CHAPTER / "metrics.json").read_text())
    (fid_entry,) = [h for h in metrics["headline"] if h["key"] == "fid_test"]
    assert fid_entry["n"] == 32 and np.isfinite(fid_entry["value"])
    assert metrics["provenance"]["data"]["stand_in"] is True
    assert len(list((root / "data" / "fid-stats").glob("*.npz"))) == 4  # test, train, two generators
    executed = (root / "_build" / "smoke" / "chapters" / f"{CHAPTER}.ipynb").read_text()
    assert "a stand-in" in executed and "rank-deficient" in executed
