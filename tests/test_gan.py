"""effgen.gan: exact parameter counts, recipes and their settings, schedule, budget, resume, sampling."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from effgen.errors import BudgetError, DataError, ParamsError
from effgen.gan import (
    PRESETS,
    Discriminator,
    FCDiscriminator,
    FCGenerator,
    GanConfig,
    Generator,
    LayerNormCritic,
    config_from_dict,
    generated_images,
    layer_table,
    load_generator,
    lr_at,
    lr_decays,
    preset,
    to_unit_range,
    train_gan,
)
from effgen.gan.augment import flip_and_crop
from effgen.gan.config import changed_settings
from effgen.gan.trainer import Trainer


def images(n: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def tiny(name: str, **overrides) -> GanConfig:
    """A recipe at a size that trains in well under a second."""
    settings = {"steps": 8, "batch_size": 4, "sample_every": 4, "checkpoint_every": 100, "n_fixed": 4,
                "epoch_steps": 2, "step_size": 2}
    settings.update(overrides)
    return preset(name, **settings)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- models

def test_parameter_counts_are_the_papers() -> None:
    assert count(Generator()) == 303_776
    assert count(Discriminator()) == 663_296
    assert count(Generator()) + count(Discriminator()) == 967_072


def test_no_layer_has_a_bias_except_batchnorm_shift() -> None:
    for model in (Generator(), Discriminator()):
        for layer in model.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                assert layer.bias is None


def test_shapes_and_layer_table() -> None:
    g, d = Generator(), Discriminator()
    z = torch.randn(5, 100)
    out = g(z)
    assert out.shape == (5, 3, 32, 32) and out.abs().max() <= 1
    assert d(out).shape == (5,)
    g_rows = layer_table(g, (1, 100, 1, 1))
    d_rows = layer_table(d, (1, 3, 32, 32))
    assert sum(r["params"] for r in g_rows) == 303_776
    assert sum(r["params"] for r in d_rows) == 663_296
    assert [r["output"] for r in g_rows if "ConvTranspose" in r["type"]] == [
        (96, 4, 4), (64, 8, 8), (48, 16, 16), (3, 32, 32)]
    assert [r["output"] for r in d_rows if r["type"].startswith("Conv2d")] == [
        (64, 16, 16), (128, 8, 8), (256, 4, 4), (1, 1, 1)]
    assert g_rows[0]["type"] == "ConvTranspose2d 100->96, k4 s1 p0"


def test_baselines_fit_the_budget() -> None:
    assert count(Generator()) + count(LayerNormCritic()) == 967_072
    fc = count(FCGenerator()) + count(FCDiscriminator())
    assert fc < 1_000_000
    assert FCGenerator()(torch.randn(3, 100, 1, 1)).shape == (3, 3, 32, 32)
    assert FCDiscriminator()(torch.zeros(3, 3, 32, 32)).shape == (3,)


# ---------------------------------------------------------------- configuration

def test_faithful_preset_has_the_originals_quirks() -> None:
    f = PRESETS["faithful"]
    assert (f.data_range, f.shuffle, f.dcgan_init, f.lr_schedule, f.sample_mode, f.loss) == (
        "zero_one", False, False, "original", "train", "sigmoid_bce")
    c = PRESETS["corrected"]
    assert (c.data_range, c.shuffle, c.dcgan_init, c.lr_schedule, c.sample_mode, c.loss) == (
        "minus_one_one", True, True, "per_epoch", "eval", "logits_bce")
    for r in (f, c):
        assert (r.g_lr, r.d_lr, r.beta1, r.beta2, r.step_size, r.gamma) == (7.508e-4, 4.540e-4, 0.5, 0.99, 6, 0.2078)
        assert (r.steps, r.batch_size, r.epoch_steps) == (50_000, 64, 1_000)


def test_from_dict_starts_from_the_named_recipe() -> None:
    config = config_from_dict({"recipe": "faithful", "steps": 10, "g_lr": 1})
    assert config.recipe == "faithful" and config.shuffle is False
    assert config.steps == 10 and config.g_lr == 1.0 and isinstance(config.g_lr, float)
    assert config_from_dict({}) == PRESETS["corrected"]


@pytest.mark.parametrize("values, message", [
    ({"stepz": 3}, "stepz: unknown key (got 3)"),
    ({"steps": "100"}, "steps: input should be a valid integer"),
    ({"steps": 10.0}, "steps: input should be a valid integer"),
    ({"steps": True}, "steps: input should be a valid integer"),
    ({"shuffle": 1}, "shuffle: input should be a valid boolean"),
    ({"g_lr": "fast"}, "g_lr: input should be a valid number"),
    ({"g_lr": float("nan")}, "g_lr: input should be a finite number"),
    ({"gamma": float("inf")}, "gamma: input should be a finite number"),
    ({"recipe": "stylegan"}, "recipe: unknown GAN recipe 'stylegan'"),
    ({"recipe": 3}, "recipe: input should be a valid string"),
    ({"loss": "softplus"}, "loss: input should be 'sigmoid_bce'"),
    ({"steps": 0}, "steps: input should be greater than or equal to 1"),
    ({"beta2": 1.0}, "beta2: input should be less than 1"),
    ({"recipe": "corrected", "loss": "wgan_gp"}, "loss: the WGAN-GP loss needs a critic without BatchNorm"),
    ({"recipe": "rebalanced", "loss": "wgan_gp"}, "critic without BatchNorm"),
    ({"precision": "fp16"}, "precision: input should be 'fp32' or 'bf16'"),
    ({"lr_schedule": "linear"}, "lr_decay_end: the linear schedule decays to 0 at lr_decay_end"),
    ({"lr_schedule": "cosine", "lr_decay_start": 10, "lr_decay_end": 10}, "after lr_decay_start (10)"),
    ({"lr_decay_end": 100}, "belong to the linear and cosine schedules"),
    ({"ema_bn_passes": 10}, "ema_bn_passes: re-estimates the EMA generator's BatchNorm"),
    ({"diffaugment": "flip"}, "diffaugment: the DiffAugment policy 'flip': unknown part"),
])
def test_from_dict_rejects_bad_values_in_one_line(values: dict, message: str) -> None:
    with pytest.raises(ParamsError) as caught:
        config_from_dict(values, source="params/paper/04-dcgan.yml")
    text = str(caught.value)
    assert text.startswith("params/paper/04-dcgan.yml: ") and message in text and "\n" not in text


def test_presets_name_their_errors_and_configs_refuse_bad_values_directly() -> None:
    with pytest.raises(ParamsError, match=r"^GAN settings: batch_size: input should be greater"):
        preset("corrected", batch_size=0)
    with pytest.raises(ValueError):  # pydantic's ValidationError, for code that builds one directly
        GanConfig(steps=-1)
    with pytest.raises(ValueError):
        dataclasses.replace(PRESETS["corrected"], ema_decay=1.0)  # replace validates again
    assert dataclasses.asdict(PRESETS["modern"])["loss"] == "hinge"


def test_budget_is_checked_before_any_compute() -> None:
    too_long = preset("corrected", steps=50_001)
    with pytest.raises(BudgetError, match="50,001 steps"):
        train_gan(too_long, torch.zeros(1))  # the bad images would raise DataError if reached
    train_gan(preset("corrected", steps=1, batch_size=4, n_fixed=2), images(8), show_progress=False)


def test_bad_images_are_reported() -> None:
    with pytest.raises(DataError, match="shape"):
        train_gan(tiny("corrected"), torch.zeros(16, 1, 28, 28))
    with pytest.raises(DataError, match=r"\[-1, 1\]"):
        train_gan(tiny("corrected"), torch.full((16, 3, 32, 32), 255.0))
    with pytest.raises(DataError, match="one batch"):
        train_gan(tiny("corrected"), images(2))


# ---------------------------------------------------------------- learning-rate schedule

def test_original_schedule_decays_once_at_step_36000() -> None:
    faithful, corrected = PRESETS["faithful"], PRESETS["corrected"]
    decays = [lr_decays(s, faithful) for s in range(50_000)]
    assert decays.index(1) == 36_000 and max(decays) == 1
    per_epoch = [lr_decays(s, corrected) for s in range(50_000)]
    assert [per_epoch.index(k) for k in range(1, 9)] == [6_000 * k for k in range(1, 9)]
    assert lr_at(36_000, faithful) == pytest.approx((7.508e-4 * 0.2078, 4.540e-4 * 0.2078))


@pytest.mark.parametrize("name", ["faithful", "corrected"])
def test_steplr_as_stepped_matches_the_closed_form(name: str) -> None:
    # epochs of 1 step and step_size 2: faithful decays every 4 steps, corrected every 2.
    config = tiny(name, steps=8, epoch_steps=1, step_size=2, gamma=0.5)
    run = train_gan(config, images(), show_progress=False)
    expected = np.array([lr_at(s, config) for s in range(8)])
    np.testing.assert_allclose(run.history[["lr_g", "lr_d"]].to_numpy(), expected, rtol=1e-12)
    assert run.history.lr_g.nunique() == (2 if name == "faithful" else 4)


# ---------------------------------------------------------------- data handling

def test_faithful_trains_on_zero_one_and_corrected_on_minus_one_one() -> None:
    data = images(16)
    faithful = Trainer(tiny("faithful", batch_size=8), data, torch.device("cpu"))
    corrected = Trainer(tiny("corrected", batch_size=8), data, torch.device("cpu"))
    f_batch, c_batch = faithful._real_batch(), corrected._real_batch()
    assert f_batch.min() >= 0 and c_batch.min() < 0
    # No shuffle: 16 images make two batches, and the second pass repeats the first exactly.
    second = faithful._real_batch()
    assert torch.equal(faithful._real_batch(), f_batch) and torch.equal(faithful._real_batch(), second)
    # ... in a mixed order, not the stored one (image folders come sorted by class).
    assert not torch.equal(f_batch, (data[:8] + 1) / 2)
    c_second = corrected._real_batch()
    assert not (torch.equal(corrected._real_batch(), c_batch) and torch.equal(corrected._real_batch(), c_second))


def test_flip_and_crop_moves_pixels_only() -> None:
    data = images(64)
    plain = flip_and_crop(data, torch.Generator().manual_seed(0), padding=0)
    for before, after in zip(data, plain):
        assert torch.equal(after, before) or torch.equal(after, before.flip(-1))
    assert any(not torch.equal(a, b) for a, b in zip(data, plain))
    shifted = flip_and_crop(data, torch.Generator().manual_seed(1), padding=4)
    assert shifted.shape == data.shape
    assert torch.equal(shifted, flip_and_crop(data, torch.Generator().manual_seed(1), padding=4))
    # Every output pixel is an input pixel or the black fill.
    values = set(data.flatten().tolist()) | {-1.0}
    assert set(shifted.flatten().tolist()) <= values


# ---------------------------------------------------------------- checkpoint and resume

def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name, overrides", [
    ("faithful", {}),
    ("corrected", {"augment": True}),
    ("wgan_gp", {"n_critic": 2, "steps": 4}),
])
def test_resumed_run_matches_an_uninterrupted_one(tmp_path: Path, name: str, overrides: dict) -> None:
    config = tiny(name, **overrides)
    data = images()
    whole = train_gan(config, data, tmp_path / "whole", show_progress=False)
    half = config.steps // 2
    first = train_gan(config, data, tmp_path / "split", stop_at=half, show_progress=False)
    assert first.step == half and not first.finished
    assert not (tmp_path / "split" / "generator.pt").exists()
    resumed = train_gan(config, data, tmp_path / "split", show_progress=False)
    assert resumed.resumed_from == half and resumed.finished
    assert np.array_equal(whole.history.to_numpy(), resumed.history.to_numpy())
    for a, b in ((whole.generator, resumed.generator), (whole.discriminator, resumed.discriminator)):
        for key, value in _state(a).items():
            assert torch.equal(value, b.state_dict()[key]), key
    assert sorted(p.name for p in (tmp_path / "split" / "samples").iterdir()) == [
        "step-000004.png"] + (["step-000008.png"] if config.steps == 8 else [])


def test_crash_resumes_from_the_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny("corrected", checkpoint_every=3)
    data = images()
    whole = train_gan(config, data, show_progress=False)
    original_step = Trainer.step

    def crash_at_six(self: Trainer) -> None:
        if len(self.rows) == 5:
            raise KeyboardInterrupt
        original_step(self)

    monkeypatch.setattr(Trainer, "step", crash_at_six)
    with pytest.raises(KeyboardInterrupt):
        train_gan(config, data, tmp_path, show_progress=False)
    monkeypatch.setattr(Trainer, "step", original_step)
    resumed = train_gan(config, data, tmp_path, show_progress=False)
    assert resumed.resumed_from == 3
    assert np.array_equal(whole.history.to_numpy(), resumed.history.to_numpy())


def test_finished_run_reloads_and_changed_settings_are_refused(tmp_path: Path) -> None:
    config = tiny("corrected")
    data = images()
    first = train_gan(config, data, tmp_path, show_progress=False, provenance={"dataset": "cifar10"})
    again = train_gan(config, data, tmp_path, show_progress=False)
    assert again.resumed_from == config.steps and again.seconds < 1
    assert np.array_equal(first.history.to_numpy(), again.history.to_numpy())
    with pytest.raises(ParamsError, match="g_lr"):
        train_gan(dataclasses.replace(config, g_lr=1e-3), data, tmp_path, show_progress=False)
    with pytest.raises(ParamsError, match="trained on cifar10, not mnist"):
        train_gan(config, data, tmp_path, show_progress=False, provenance={"dataset": "mnist"})
    with pytest.raises(ParamsError, match="more than"):
        train_gan(dataclasses.replace(config, steps=4), data, tmp_path, show_progress=False)
    longer = train_gan(dataclasses.replace(config, steps=10), data, tmp_path, show_progress=False)
    assert longer.resumed_from == 8 and longer.step == 10
    payload = torch.load(tmp_path / "generator.pt", weights_only=True)
    extra = payload["extra"]
    assert (extra["recipe"], extra["steps"], extra["seed"], extra["dataset"], extra["output_range"]) == (
        "corrected", 10, 0, "cifar10", "minus_one_one")
    assert isinstance(load_generator(tmp_path / "generator.pt"), Generator)


# ---------------------------------------------------------------- sampling

def test_generated_images_are_seeded_batched_and_in_unit_range() -> None:
    g = Generator()
    g.train()
    running = g.net[1].running_mean.clone()
    a = generated_images(g, 10, seed=3, output_range="minus_one_one", batch_size=4)
    b = generated_images(g, 10, seed=3, output_range="minus_one_one", batch_size=10)
    assert a.shape == (10, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert torch.allclose(a, b, atol=1e-6)
    assert g.training and torch.equal(g.net[1].running_mean, running)  # mode restored, stats untouched
    batch_stats = generated_images(g, 10, seed=3, bn_mode="train")
    assert not torch.allclose(batch_stats, a) and torch.equal(g.net[1].running_mean, running)
    assert not torch.allclose(generated_images(g, 10, seed=4), a)


def test_to_unit_range() -> None:
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert torch.equal(to_unit_range(x, "minus_one_one"), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    assert torch.equal(to_unit_range(x, "zero_one"), torch.tensor([0.0, 0.0, 0.0, 0.5, 1.0]))
    with pytest.raises(ParamsError):
        to_unit_range(x, "zero_255")


def test_run_folder_changes_with_settings_but_not_with_the_budget(tmp_path) -> None:
    from effgen.gan import preset, run_folder

    base = preset("corrected", steps=100)
    assert run_folder(tmp_path, "corrected", base) == run_folder(tmp_path, "corrected", preset("corrected", steps=400))
    assert run_folder(tmp_path, "corrected", base) != run_folder(tmp_path, "corrected", preset("corrected", steps=100,
                                                                                               g_lr=1e-4))
    assert run_folder(tmp_path, "corrected", base).parent == tmp_path


def test_bf16_precision_rounds_the_forward_passes_and_leaves_fp32_runs_alone(tmp_path: Path) -> None:
    from effgen.gan import run_folder

    fp32, bf16 = tiny("corrected"), tiny("corrected", precision="bf16")
    # fp32 is the value every stored run was made with: same folder, and a checkpoint without the key resumes.
    stored = {k: v for k, v in fp32.as_dict().items() if k != "precision"}
    assert changed_settings(stored, fp32) == [] and changed_settings(stored, bf16) == ["precision"]
    assert run_folder(tmp_path, "c", fp32) != run_folder(tmp_path, "c", bf16)
    runs = {}
    for name, config in (("fp32", fp32), ("bf16", bf16), ("fp32 again", fp32)):
        trainer = Trainer(config, images(), torch.device("cpu"))
        trainer.step()
        runs[name] = trainer
    fp32_row, bf16_row = runs["fp32"].rows[0], runs["bf16"].rows[0]
    assert torch.equal(fp32_row, runs["fp32 again"].rows[0])
    assert not torch.equal(fp32_row, bf16_row)  # autocast took effect
    assert torch.allclose(fp32_row, bf16_row, rtol=0.05, atol=0.02)  # and only the rounding changed
    weights = [*runs["bf16"].generator.parameters(), *runs["bf16"].discriminator.parameters()]
    assert all(w.dtype == torch.float32 for w in weights)
    assert all(w.grad.dtype == torch.float32 for w in weights if w.grad is not None)
