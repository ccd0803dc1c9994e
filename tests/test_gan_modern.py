"""The modern GAN recipe: budget, spectral norm, hinge, DiffAugment, EMA, resume, CLI, run keys."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effgen.budget import GAN_LIMITS, count_params
from effgen.commands import main
from effgen.errors import CheckpointError, ParamsError
from effgen.gan import (
    ADDITIONS,
    PRESETS,
    GanConfig,
    Generator,
    ResNetDiscriminator,
    ResNetGenerator,
    ablation_folder,
    ablation_run_configs,
    check_gan_budget,
    config_from_dict,
    diff_augment,
    generated_images,
    hinge_d_loss,
    hinge_g_loss,
    keeps_raw_generator,
    load_generator,
    modern_ablation,
    modern_run_config,
    preset,
    run_folder,
    save_generator,
    seconds_per_step,
    train_gan,
)
from effgen.gan.ablation import addition_on
from effgen.gan.diffaugment import parse_policy, rand_cutout, rand_translation
from effgen.gan.networks import build_models
from effgen.gan.trainer import Trainer
from effgen.metrics import inception_weights as iw
from effgen.runtime import ModelEma, ema_decay_at


def images(n: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def tiny(architecture: str = "dcgan_sn", **overrides) -> GanConfig:
    settings = {"architecture": architecture, "steps": 6, "batch_size": 4, "sample_every": 3,
                "checkpoint_every": 100, "n_fixed": 4}
    settings.update(overrides)
    return preset("modern", **settings)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- budget and architectures

@pytest.mark.parametrize("architecture, g_params, d_params", [
    ("dcgan_sn", 303_776, 662_977),
    ("resnet", 340_099, 264_769),
])
def test_parameter_counts_fit_the_budget(architecture: str, g_params: int, d_params: int) -> None:
    config = preset("modern", architecture=architecture)
    generator, discriminator = build_models(config)
    assert (count_params(generator), count_params(discriminator)) == (g_params, d_params)
    budget = check_gan_budget(config)
    assert budget.params == g_params + d_params < GAN_LIMITS.max_params and not budget.over_budget
    # Spectral norm adds buffers, not parameters: the same count with it off.
    plain = build_models(dataclasses.replace(config, spectral_norm=False))
    assert count_params(*plain) == budget.params


def test_modern_preset_is_every_addition() -> None:
    modern = PRESETS["modern"]
    assert all(addition_on(modern, a) for a in ADDITIONS)
    assert (modern.loss, modern.spectral_norm, modern.diffaugment, modern.lr_schedule) == (
        "hinge", True, "translation,cutout", "none")
    assert modern.d_lr > modern.g_lr and 0 < modern.ema_decay < 1
    assert config_from_dict({"recipe": "modern", "architecture": "resnet"}).architecture == "resnet"


def test_resnet_shapes() -> None:
    g, d = ResNetGenerator(), ResNetDiscriminator()
    out = g(torch.randn(3, 100, 1, 1))
    assert out.shape == (3, 3, 32, 32) and out.abs().max() <= 1
    assert g(torch.randn(3, 100)).shape == (3, 3, 32, 32)
    assert d(out).shape == (3,)


def test_spectral_norm_keys_buffers_and_frozen_generator_step() -> None:
    trainer = Trainer(tiny(), images(8), torch.device("cpu"))
    d = trainer.discriminator
    keys = set(d.state_dict())
    assert {"net.0.parametrizations.weight.original", "net.0.parametrizations.weight.0._u",
            "net.0.parametrizations.weight.0._v", "net.0.bias"} <= keys
    assert not any(name.endswith("_u") for name, _ in d.named_parameters())
    # Every layer's largest singular value is ~1 after a few power iterations.
    d.train()
    for _ in range(20):
        d(images(4))
    weight = d.net[0].weight.detach().flatten(1)
    assert torch.linalg.matrix_norm(weight, ord=2) == pytest.approx(1.0, abs=0.05)
    # The G step (D frozen) leaves D's weights untouched and without gradients; u still iterates.
    trainer.generator.train()
    before = _state(d)
    d_step_grads: list[torch.Tensor] = []
    u_after_d_step: list[torch.Tensor] = []

    def record_instead_of_updating() -> None:  # keeps D's weights fixed so the G step can be checked
        d_step_grads.extend(p.grad.clone() for p in d.parameters())
        u_after_d_step.append(d.net[0].parametrizations.weight[0]._u.clone())

    trainer.opt_d.step = record_instead_of_updating
    trainer.step()
    # The G step added no gradient to D's weights and did not change them ...
    assert all(torch.equal(g, p.grad) for g, p in zip(d_step_grads, d.parameters()))
    after = _state(d)
    for key, value in before.items():
        if not key.endswith(("_u", "_v")):
            assert torch.equal(value, after[key]), key
    # ... but ran one more power iteration, and left D trainable again.
    assert not torch.equal(u_after_d_step[0], d.net[0].parametrizations.weight[0]._u)
    assert all(p.requires_grad for p in d.parameters())


# ---------------------------------------------------------------- losses and augmentation

def test_hinge_losses_on_known_logits() -> None:
    real = torch.tensor([2.0, 0.5, -1.0])  # margins: 0, 0.5, 2  -> mean 2.5 / 3
    fake = torch.tensor([-2.0, 0.0, 1.0])  # margins: 0, 1, 2    -> mean 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(2.5 / 3 + 1.0)
    assert hinge_g_loss(fake).item() == pytest.approx(1.0 / 3)
    assert hinge_d_loss(torch.full((4,), 3.0), torch.full((4,), -3.0)).item() == 0.0


def test_diffaugment_shapes_determinism_and_gradients() -> None:
    x = images(16).requires_grad_(True)
    policy = "color,translation,cutout"
    a = diff_augment(x, policy, torch.Generator().manual_seed(3))
    b = diff_augment(x, policy, torch.Generator().manual_seed(3))
    c = diff_augment(x, policy, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert parse_policy("cutout, translation") == ("translation", "cutout")
    assert diff_augment(x, "", torch.Generator()) is x
    with pytest.raises(ParamsError, match="unknown part"):
        parse_policy("translation,rotate")
    with pytest.raises(ParamsError, match="unknown part"):
        preset("modern", diffaugment="flip")


def test_translation_shifts_and_cutout_zeros_a_square() -> None:
    x = images(64).detach() + 3.0  # no zeros in the input: every zero below was put there
    shifted = rand_translation(x, torch.Generator().manual_seed(0))
    for before, after in zip(x, shifted):
        kept = after != 0
        assert kept.any()
        # Some shift (dy, dx) in [-4, 4]^2 maps the image onto its non-zero part.
        assert any(torch.equal(after[kept], torch.roll(before, (-dy, -dx), (1, 2))[kept])
                   for dy in range(-4, 5) for dx in range(-4, 5))
    cut = rand_cutout(x, torch.Generator().manual_seed(0))
    zeros = (cut == 0).all(dim=1)  # (N, H, W)
    counts = zeros.flatten(1).sum(1)
    assert counts.max() == 256 and counts.min() >= 64  # a 16x16 square, clipped at most to 8x8
    assert torch.equal(cut[~(cut == 0)], x[~(cut == 0)])


# ---------------------------------------------------------------- EMA

def test_ema_decay_warms_up_and_averages() -> None:
    assert ema_decay_at(1, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(401, 0.999) == pytest.approx(401 / 410)
    assert ema_decay_at(50_000, 0.999) == 0.999
    assert ema_decay_at(1, 0.999, offset=1) == pytest.approx(2 / 11)  # the classifier's ramp, one update ahead
    live = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = ModelEma(live, 0.5)
    start = live[0].weight.detach().clone()
    with torch.no_grad():
        live[0].weight.add_(1.0)
    live.train()(torch.randn(8, 2))  # moves BN running stats and num_batches_tracked
    decay = ema.update(live)
    assert torch.allclose(ema.model[0].weight, decay * start + (1 - decay) * live[0].weight)
    assert torch.equal(ema.model[1].num_batches_tracked, live[1].num_batches_tracked)
    assert not ema.model[0].weight.requires_grad


def test_ema_differs_from_raw_and_both_are_saved(tmp_path: Path) -> None:
    config = tiny()
    run = train_gan(config, images(), tmp_path, show_progress=False)
    assert run.generator is not run.raw_generator
    ema, raw = _state(run.generator), _state(run.raw_generator)
    assert ema.keys() == raw.keys()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if ema[k].is_floating_point())
    assert (run.generator_path, run.raw_generator_path) == (tmp_path / "generator.pt", tmp_path / "generator-raw.pt")
    for path, weights, module in ((run.generator_path, "ema", run.generator),
                                  (run.raw_generator_path, "raw", run.raw_generator)):
        loaded = load_generator(path)
        assert type(loaded) is type(module)
        assert torch.load(path, weights_only=True)["extra"]["weights"] == weights
        for key, value in _state(module).items():
            assert torch.equal(value, loaded.state_dict()[key]), key
        assert torch.allclose(generated_images(loaded, 4, 0), generated_images(module, 4, 0), atol=1e-6)
    again = train_gan(config, images(), tmp_path, show_progress=False)  # reload a finished run
    for key, value in ema.items():
        assert torch.equal(value, again.generator.state_dict()[key])


def test_a_frozen_ema_run_reloads_both_generators(tmp_path: Path) -> None:
    """The freeze keeps a finished run without checkpoint.pt; reloading must give back EMA and raw weights."""
    config = tiny()
    run = train_gan(config, images(), tmp_path, show_progress=False)
    ema, raw = _state(run.generator), _state(run.raw_generator)
    (tmp_path / "checkpoint.pt").unlink()
    again = train_gan(config, images(), tmp_path, show_progress=False)
    assert again.resumed_from == config.steps and again.generator is not again.raw_generator
    for key in ema:
        assert torch.equal(ema[key], again.generator.state_dict()[key]), key
        assert torch.equal(raw[key], again.raw_generator.state_dict()[key]), key
    (tmp_path / "generator-raw.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="generator-raw.pt"):
        train_gan(config, images(), tmp_path, show_progress=False)


def test_without_ema_the_generator_is_the_trained_one(tmp_path: Path) -> None:
    run = train_gan(tiny(ema_decay=0.0, steps=2), images(), tmp_path, show_progress=False)
    assert run.generator is run.raw_generator and run.raw_generator_path == tmp_path / "generator.pt"
    assert not (tmp_path / "generator-raw.pt").exists()


def test_resnet_generator_file_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = ResNetGenerator(widths=(32, 16, 16, 8))
    save_generator(g, tmp_path / "g.pt", {"output_range": "minus_one_one"})
    loaded = load_generator(tmp_path / "g.pt")
    assert isinstance(loaded, ResNetGenerator) and loaded.widths == (32, 16, 16, 8)
    assert torch.equal(loaded(torch.ones(2, 100)), g.eval()(torch.ones(2, 100)))
    save_generator(Generator(), tmp_path / "d.pt")
    assert isinstance(load_generator(tmp_path / "d.pt"), Generator)


# ---------------------------------------------------------------- resume and run folders

@pytest.mark.parametrize("architecture, steps", [("dcgan_sn", 6), ("resnet", 2)])  # ResNet steps are dear on CPU
def test_modern_run_resumes_bit_identically(tmp_path: Path, architecture: str, steps: int) -> None:
    config = tiny(architecture, steps=steps, sample_every=2)
    data = images()
    whole = train_gan(config, data, tmp_path / "whole", show_progress=False)
    half = steps // 2
    first = train_gan(config, data, tmp_path / "split", stop_at=half, show_progress=False)
    assert first.step == half and not (tmp_path / "split" / "generator.pt").exists()
    resumed = train_gan(config, data, tmp_path / "split", show_progress=False)
    assert resumed.resumed_from == half and resumed.finished
    assert isinstance(load_generator(tmp_path / "split" / "generator-raw.pt"), type(whole.raw_generator))
    assert np.array_equal(whole.history.to_numpy(), resumed.history.to_numpy())
    pairs = ((whole.generator, resumed.generator), (whole.raw_generator, resumed.raw_generator),
             (whole.discriminator, resumed.discriminator))
    for a, b in pairs:
        for key, value in _state(a).items():  # includes SN's u/v and the EMA's BN statistics
            assert torch.equal(value, b.state_dict()[key]), key


def test_existing_run_folder_keys_are_unchanged(tmp_path: Path) -> None:
    # Computed on the code before the modern recipe's settings existed (commit ff35654).
    assert run_folder(tmp_path, "faithful", preset("faithful")).name == "faithful-4abbcb85"
    assert run_folder(tmp_path, "corrected", preset("corrected")).name == "corrected-fc703855"
    assert run_folder(tmp_path, "corrected", preset("corrected", steps=2000, augment=True)).name == "corrected-b728a2ec"
    assert run_folder(tmp_path, "wgan_gp", preset("wgan_gp")).name == "wgan_gp-f1083edd"
    assert run_folder(tmp_path, "fc_gan", preset("fc_gan")).name == "fc_gan-b32ea36f"
    corrected = preset("corrected")
    for changed in ({"spectral_norm": True}, {"diffaugment": "cutout"}, {"ema_decay": 0.99}):
        assert run_folder(tmp_path, "x", dataclasses.replace(corrected, **changed)) != run_folder(tmp_path, "x", corrected)


def test_a_checkpoint_from_before_the_new_settings_still_resumes(tmp_path: Path) -> None:
    config = preset("corrected", steps=4, batch_size=4, n_fixed=4, checkpoint_every=100)
    train_gan(config, images(), tmp_path, stop_at=2, show_progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for key in ("spectral_norm", "diffaugment", "ema_decay"):
        del state["config"][key]
    torch.save(state, tmp_path / "checkpoint.pt")
    assert train_gan(config, images(), tmp_path, show_progress=False).resumed_from == 2


def test_ablation_switches_one_piece_at_a_time() -> None:
    base = preset("modern", steps=400)
    removed = modern_ablation(base)
    assert list(removed) == ["modern"] + [f"no {a}" for a in ADDITIONS]
    added = modern_ablation(base, "add")
    assert list(added) == ["none"] + [f"only {a}" for a in ADDITIONS]
    assert not any(addition_on(added["none"], a) for a in ADDITIONS)
    for a in ADDITIONS:
        assert not addition_on(removed[f"no {a}"], a)
        assert [b for b in ADDITIONS if addition_on(removed[f"no {a}"], b)] == [b for b in ADDITIONS if b != a]
        assert [b for b in ADDITIONS if addition_on(added[f"only {a}"], b)] == [a]
    names = {run_folder(Path("."), "r", c).name for c in (*removed.values(), *added.values())}
    assert len(names) == 12 and all(c.steps == 400 for c in removed.values())
    with pytest.raises(ParamsError):
        modern_ablation(base, "sideways")


def test_chapter_06_runs_take_the_dcgan_budget_and_the_ablation_its_own_length() -> None:
    modern = modern_run_config("dcgan_sn", steps=50_000, epoch_steps=1_000, batch_size=64, seed=3,
                               checkpoint_every=250, sample_every=5_000)
    assert modern == preset("modern", architecture="dcgan_sn", steps=50_000, epoch_steps=1_000, batch_size=64,
                            seed=3, checkpoint_every=250, sample_every=5_000)
    short = modern_run_config("dcgan_sn", steps=6, epoch_steps=1, batch_size=16, seed=0, checkpoint_every=3,
                              sample_every=5_000)
    assert short.sample_every == 6  # one grid at the end of a run shorter than the cadence
    ablation = ablation_run_configs(modern, 5_000)
    assert list(ablation) == ["modern"] + [f"no {a}" for a in ADDITIONS if a != "ema"]  # the raw G is "no ema"
    assert all((c.steps, c.sample_every, c.checkpoint_every, c.seed) == (5_000, 5_000, 250, 3)
               for c in ablation.values())
    assert ablation_run_configs(modern, 100)["modern"].checkpoint_every == 100
    assert ablation["no ttur"] == dataclasses.replace(ablation["modern"], d_lr=modern.g_lr)
    assert ablation_folder("no spectral_norm") == "ablation-no-spectral_norm"
    # Only the runs whose raw generator chapter 06 scores keep it: the long run and the full-recipe ablation.
    assert [keeps_raw_generator(ablation_folder(name)) for name in ablation] == [True, False, False, False, False]
    assert keeps_raw_generator("gan-modern")


def test_a_run_asked_not_to_keep_its_raw_generator_keeps_the_ema_one_only(tmp_path: Path) -> None:
    config = tiny()
    run = train_gan(config, images(), tmp_path, show_progress=False, keep_raw_generator=False)
    assert run.generator is not run.raw_generator  # in memory, this call still has both
    assert (tmp_path / "generator.pt").is_file() and not (tmp_path / "generator-raw.pt").exists()
    (tmp_path / "checkpoint.pt").unlink()  # as the freeze keeps a finished run
    again = train_gan(config, images(), tmp_path, show_progress=False, keep_raw_generator=False)
    assert again.resumed_from == config.steps and again.raw_generator is again.generator
    for key, value in _state(run.generator).items():
        assert torch.equal(value, again.generator.state_dict()[key]), key


# ---------------------------------------------------------------- command line

needs_weights = pytest.mark.skipif(
    iw.fid_helper_torchscript_path() is None and not iw.pytorch_fid_weights_path().is_file(),
    reason="no FID Inception weights available offline")


@needs_weights
def test_cli_trains_the_modern_recipe_and_scores_its_generator(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    rng = np.random.default_rng(0)
    folder = tmp_path / "tree" / "train" / "a"
    folder.mkdir(parents=True)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    params = tmp_path / "gan.yml"
    params.write_text(f"recipe: modern\narchitecture: resnet\nsteps: 2\nbatch_size: 4\nn_fixed: 4\n"
                      f"dataset: 'folder:{tmp_path / 'tree'}'\n")
    out = tmp_path / "run"
    assert main(["train", "gan", "--params", str(params), "--out", str(out), "--device", "cpu"]) == 0
    assert "modern: 2/2 steps" in capsys.readouterr().out
    assert {"checkpoint.pt", "generator.pt", "generator-raw.pt"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["architecture"] == "resnet"
    assert main(["fid", str(folder), str(out / "generator.pt"), "-n", "8", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_fake"] == 8 and result["fid"] > 0


def test_seconds_per_step_times_steady_steps_without_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    calls = []
    original = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda self: calls.append(1) or original(self))
    seconds = seconds_per_step(tiny(), images(8), steps=2, warmup=1)
    assert seconds > 0 and len(calls) == 3  # one untimed, two timed
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ParamsError, match="steps >= 1"):
        seconds_per_step(tiny(), images(8), steps=0)
