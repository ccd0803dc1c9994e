"""Saved generators are sampled as their recipe sampled (BatchNorm mode and batch size), by default."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from effgen.commands import main
from effgen.gan import (
    FCGenerator,
    Generator,
    dcgan_init_,
    generated_images,
    generator_extra,
    load_generator,
    preset,
    sample_saved_generator,
    sampling_for,
    save_generator,
    saved_generators,
    train_gan,
)
from effgen.metrics import fid as F


def _generator(path: Path, seed: int = 0, **extra: object) -> Path:
    torch.manual_seed(seed)
    generator = Generator()
    dcgan_init_(generator)
    save_generator(generator, path, {"recipe": "faithful", "output_range": "zero_one", **extra})
    return path


def test_recorded_train_mode_samples_batches_of_the_recipes_size(tmp_path: Path) -> None:
    path = _generator(tmp_path / "g.pt", sample_mode="train", batch_size=16)
    images, sampling, _ = sample_saved_generator(path, 40, seed=3)
    assert (sampling.bn_mode, sampling.batch_size, sampling.recorded_mode) == ("train", 16, "train")
    generator = load_generator(path)
    expected = generated_images(generator, 40, 3, output_range="zero_one", batch_size=16, bn_mode="train")
    assert torch.equal(images, expected)
    other_batches = generated_images(generator, 40, 3, output_range="zero_one", batch_size=40, bn_mode="train")
    assert not torch.allclose(images, other_batches)  # in train mode the batch size changes the images
    eval_images, eval_sampling, _ = sample_saved_generator(path, 40, seed=3, bn_mode="eval")
    assert eval_sampling.bn_mode == "eval" and eval_sampling.recorded_mode == "train"
    assert not torch.allclose(images, eval_images)
    assert torch.equal(eval_images, generated_images(generator, 40, 3, output_range="zero_one"))


def test_files_that_record_less_fall_back_to_the_original() -> None:
    assert sampling_for({}).bn_mode == "eval"
    assert sampling_for({"sample_mode": "train"}).batch_size == 64  # the original's batch
    assert sampling_for({"sample_mode": "eval"}, "train").batch_size == 64
    assert "batches of 64" in sampling_for({"sample_mode": "train"}).describe()
    assert "no BatchNorm" in sampling_for({"architecture": "fc"}).describe()
    with pytest.raises(Exception, match="choose one of"):
        sampling_for({}, "frozen")


def test_fc_generator_is_saved_by_its_run_and_found_beside_the_others(tmp_path: Path) -> None:
    images = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    config = preset("fc_gan", steps=2, batch_size=4, sample_every=2, checkpoint_every=2, n_fixed=4)
    run = train_gan(config, images, tmp_path / "fc_gan-12345678", show_progress=False)
    path = run.generator_path
    assert path is not None and path.is_file() and isinstance(load_generator(path), FCGenerator)
    extra = generator_extra(path)
    assert (extra["recipe"], extra["batch_size"], extra["augment"], extra["sample_mode"]) == ("fc_gan", 4, False, "eval")
    files = {
        "fc_gan-12345678": path,
        "corrected-augmented-9abc": _generator(tmp_path / "aug.pt", recipe="corrected"),  # no augment recorded
        "faithful": _generator(tmp_path / "f.pt"),
        "corrected": _generator(tmp_path / "c.pt", recipe="corrected", augment=False),
    }
    assert list(saved_generators(files)) == ["faithful", "corrected", "corrected_augment", "fc_gan"]


def test_fid_command_honours_and_reports_the_sample_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_features(images01, device="cpu", batch_size=50, desc=""):
        # Inception stand-in: the pixels themselves, so the FID only says whether images changed.
        flat = images01.flatten(1)[:, :2048].numpy()
        return np.ascontiguousarray(flat, dtype=np.float32)

    monkeypatch.setattr(F, "inception_features", fake_features)
    stats = F.FidStats.from_features(np.random.default_rng(0).normal(size=(40, 2048)).astype(np.float32))
    stats.save(tmp_path / "real.npz")
    generator = _generator(tmp_path / "g.pt", sample_mode="train", batch_size=8)
    results = {}
    for flag in ([], ["--sample-mode", "eval"], ["--sample-mode", "train"]):
        assert main(["fid", str(tmp_path / "real.npz"), str(generator), "-n", "24", "--device", "cpu", *flag]) == 0
        results[" ".join(flag) or "recorded"] = json.loads(capsys.readouterr().out)
    recorded = results["recorded"]
    assert recorded["fake_sampling"] == {"bn_mode": "train", "batch_size": 8, "output_range": "zero_one",
                                         "recorded_mode": "train", "architecture": "dcgan"}
    assert "real_sampling" not in recorded
    assert results["--sample-mode eval"]["fake_sampling"]["bn_mode"] == "eval"
    assert results["--sample-mode train"]["fid"] == recorded["fid"]
    assert results["--sample-mode eval"]["fid"] != recorded["fid"]


def test_image_grid_places_tiles_row_major_with_white_gaps_and_no_border() -> None:
    from effgen.gan.run_files import image_grid

    tiles = torch.stack([torch.full((3, 4, 5), i / 10) for i in range(5)])  # 5 tiles of 4x5, distinct shades
    grid = image_grid(tiles, columns=3, gap=2)
    assert grid.shape == (2 * 4 + 2, 3 * 5 + 2 * 2, 3) and grid.dtype == torch.uint8
    for index in range(5):
        row, column = divmod(index, 3)
        tile = grid[row * 6:row * 6 + 4, column * 7:column * 7 + 5]
        assert (tile == round(255 * index / 10)).all()
    assert (grid[4:6] == 255).all() and (grid[:, 5:7] == 255).all()  # the gaps
    assert (grid[6:, 14:] == 255).all()  # the missing sixth tile is blank
    assert image_grid(tiles[:1], columns=4).shape == (4, 4 * 5 + 3 * 2, 3)  # a short row keeps its width
