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
import yaml
from PIL import Image

from effgen.gan import FCGenerator, Generator, dcgan_init_, save_generator
from effgen.metrics import inception_weights as iw
from effgen.runner import plan

REPO = Path(__file__).resolve().parent.parent
CHAPTER = "05-evaluation"


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_parameter_files_validate(profile: str) -> None:
    jobs = plan(REPO, profile, [CHAPTER])
    assert [job.name for job in jobs] == [CHAPTER]


GENERATORS = {  # what chapter 04 saves: its two recipes, then augmentation and the baselines in run folders
    "generator-faithful.pt": ("faithful", "zero_one", "train", False),
    "generator-corrected.pt": ("corrected", "minus_one_one", "eval", False),
    "corrected-augmented-0a1b2c3d/generator.pt": ("corrected", "minus_one_one", "eval", True),
    "fc_gan-0a1b2c3d/generator.pt": ("fc_gan", "minus_one_one", "eval", False),
    "wgan_gp-0a1b2c3d/generator.pt": ("wgan_gp", "minus_one_one", "eval", False),
}


def _fake_chapter_04(run_dir: Path) -> None:
    run_dir.mkdir(parents=True)
    for seed, (relpath, (recipe, output_range, sample_mode, augment)) in enumerate(GENERATORS.items()):
        torch.manual_seed(seed)
        generator = FCGenerator() if recipe == "fc_gan" else Generator()
        dcgan_init_(generator)
        save_generator(generator, run_dir / relpath,
                       {"recipe": recipe, "steps": 3, "seed": seed, "dataset": "cifar10", "output_range": output_range,
                        "sample_mode": sample_mode, "batch_size": 16, "augment": augment})
    data = {"dataset": "cifar10", "requested": "cifar100", "stand_in": True, "reason": "test stand-in",
            "split": "train", "detail": "40 random images"}
    (run_dir / "metrics.json").write_text(json.dumps({
        "metrics": {"generators": {"corrected": "generator-corrected.pt", "faithful": "generator-faithful.pt"},
                    "other_generators": {relpath.split("/")[0]: relpath for relpath in GENERATORS if "/" in relpath},
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
    n_fid = yaml.safe_load((REPO / "params" / "smoke" / f"{CHAPTER}.yml").read_text())["n_fid"]
    assert fid_entry["n"] == n_fid and np.isfinite(fid_entry["value"])
    assert metrics["provenance"]["data"]["stand_in"] is True
    # test, train, and six generator sets: the faithful generator twice (train and eval mode)
    assert len(list((root / "data" / "fid-stats").glob("*.npz"))) == 8
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
