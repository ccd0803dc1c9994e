"""Rebalanced and small-SNGAN recipes: budget, shapes, schedules, diagnostics, EMA BN, pilots."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from effgen.budget import GAN_LIMITS, count_params
from effgen.data import gan_dataset
from effgen.errors import DataError
from effgen.gan import (
    DIAGNOSTIC_COLUMNS,
    PRESETS,
    Discriminator,
    GanConfig,
    RebalancedGenerator,
    StandardCnnDiscriminator,
    build_models,
    check_gan_budget,
    config_from_dict,
    dcgan_init_,
    generator_extra,
    layer_table,
    load_generator,
    lr_at,
    pilots,
    preset,
    recompute_batchnorm,
    run_folder,
    save_generator,
    train_gan,
)
from effgen.gan.causes import cause_tests
from effgen.gan.diagnostics import hinge_reading, memorisation, memorisation_reading
from effgen.gan.pilots import (
    PILOT_NAMES,
    compressed,
    full_length_configs,
    pilot_configs,
    pilot_folder,
)
from effgen.gan.schedules import annealed_by, decay_factor
from effgen.gan.trainer import Trainer
from effgen.metrics import inception_weights as iw


def images(n: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def tiny(name: str, **overrides) -> GanConfig:
    """A recipe at a size that trains in about a second; its decay window fits its steps."""
    settings = {"steps": 6, "batch_size": 4, "sample_every": 3, "checkpoint_every": 100,
                "n_fixed": 4, "epoch_steps": 2, "diagnostics_every": 2}
    config = preset(name, **settings)
    if config.lr_schedule in ("linear", "cosine"):
        overrides = {"lr_decay_start": min(config.lr_decay_start, 2), "lr_decay_end": 6,
                     "ema_bn_passes": min(config.ema_bn_passes, 3), **overrides}
    return dataclasses.replace(config, **overrides)


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- architectures and budget

@pytest.mark.parametrize("name, g_params, d_params", [
    ("rebalanced", 601_603, 374_592),
    ("sngan_small", 601_603, 368_513),
])
def test_recipes_fit_the_budget_counted_from_the_built_models(name: str, g_params: int,
                                                              d_params: int) -> None:
    generator, discriminator = build_models(PRESETS[name])
    assert (count_params(generator), count_params(discriminator)) == (g_params, d_params)
    budget = check_gan_budget(PRESETS[name])
    assert budget.params == g_params + d_params < GAN_LIMITS.max_params and not budget.over_budget
    assert budget.steps == GAN_LIMITS.max_steps


def test_shapes_of_the_new_networks() -> None:
    g = RebalancedGenerator()
    out = g(torch.randn(3, 100, 1, 1))
    assert out.shape == (3, 3, 32, 32) and out.abs().max() <= 1
    assert g(torch.randn(3, 100)).shape == (3, 3, 32, 32)
    rows = layer_table(g, (1, 100, 1, 1))
    assert [r["output"] for r in rows if r["type"].startswith(("ConvTranspose2d", "Conv2d"))] == [
        (160, 4, 4), (96, 8, 8), (48, 16, 16), (32, 32, 32), (3, 32, 32)]
    d = StandardCnnDiscriminator()
    assert d(out).shape == (3,)
    d_rows = layer_table(d, (1, 3, 32, 32))
    assert [r["output"] for r in d_rows if r["type"].startswith("Conv2d")] == [
        (16, 32, 32), (32, 16, 16), (32, 16, 16), (64, 8, 8), (64, 8, 8), (128, 4, 4), (128, 4, 4)]
    assert d_rows[1]["type"] == "LeakyReLU 0.1" and d_rows[-1]["output"] == (1,)
    bn_d = Discriminator((48, 96, 192))
    bn_rows = layer_table(bn_d, (1, 3, 32, 32))
    assert [r["output"] for r in bn_rows if r["type"].startswith("Conv2d")] == [
        (48, 16, 16), (96, 8, 8), (192, 4, 4), (1, 1, 1)]


def test_presets_hold_the_recipes() -> None:
    a, b = PRESETS["rebalanced"], PRESETS["sngan_small"]
    assert (a.loss, a.g_lr, a.d_lr, a.lr_schedule, a.lr_decay_start, a.lr_decay_end) == (
        "logits_bce", 7.508e-4, 4.540e-4, "linear", 25_000, 50_000)
    assert (a.ema_decay, a.spectral_norm, a.ema_bn_passes > 0) == (0.999, False, True)
    assert (b.loss, b.spectral_norm, b.g_lr, b.d_lr, b.beta1, b.beta2, b.n_critic) == (
        "hinge", True, 2e-4, 2e-4, 0.0, 0.9, 1)
    assert (b.lr_schedule, b.lr_decay_start, b.lr_decay_end, b.ema_decay) == (
        "linear", 0, 50_000, 0.999)
    assert config_from_dict({"recipe": "sngan_small", "beta1": 0.5}).beta1 == 0.5


def test_rebalanced_generator_file_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = RebalancedGenerator(widths=(32, 16, 16, 8))
    dcgan_init_(g)
    save_generator(g, tmp_path / "g.pt", {"output_range": "minus_one_one"})
    loaded = load_generator(tmp_path / "g.pt")
    assert isinstance(loaded, RebalancedGenerator) and loaded.widths == (32, 16, 16, 8)
    assert torch.equal(loaded(torch.ones(2, 100)), g.eval()(torch.ones(2, 100)))


# ---------------------------------------------------------------- schedules

def test_linear_and_cosine_rates_in_closed_form() -> None:
    linear = preset("corrected", lr_schedule="linear", lr_decay_start=100, lr_decay_end=200)
    g_lr = linear.g_lr
    assert lr_at(0, linear)[0] == lr_at(100, linear)[0] == g_lr
    assert lr_at(150, linear) == pytest.approx((g_lr / 2, linear.d_lr / 2))
    assert lr_at(199, linear)[0] == pytest.approx(g_lr / 100)
    assert lr_at(200, linear) == lr_at(10_000, linear) == (0.0, 0.0)
    cosine = dataclasses.replace(linear, lr_schedule="cosine")
    assert lr_at(99, cosine)[0] == g_lr and lr_at(150, cosine)[0] == pytest.approx(g_lr / 2)
    assert lr_at(125, cosine)[0] == pytest.approx(g_lr * (1 + math.cos(math.pi / 4)) / 2)
    assert lr_at(200, cosine)[0] == pytest.approx(0.0, abs=1e-20)
    rates = [lr_at(s, cosine)[0] for s in range(0, 220, 5)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # never rises
    # StepLR schedules and a constant one are as before.
    assert lr_at(6_000, PRESETS["corrected"])[0] == pytest.approx(7.508e-4 * 0.2078)
    assert lr_at(40_000, PRESETS["modern"]) == (2e-4, 4e-4)


def test_annealed_by_is_the_first_step_below_a_share_of_the_base_rate() -> None:
    linear = preset("corrected", lr_schedule="linear", lr_decay_start=100, lr_decay_end=200, steps=300)
    assert annealed_by(linear, 0.5) == 151 and annealed_by(linear) == 200  # 199 still has 1 %
    steplr = PRESETS["corrected"]
    step = annealed_by(steplr)
    assert step is not None and decay_factor(step, steplr) < 0.01 <= decay_factor(step - 1, steplr)
    assert annealed_by(PRESETS["modern"]) is None  # a constant rate never anneals


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_the_loop_uses_lr_at(schedule: str) -> None:
    config = tiny("corrected", lr_schedule=schedule, lr_decay_start=2, lr_decay_end=6)
    run = train_gan(config, images(), show_progress=False)
    expected = np.array([lr_at(s, config) for s in range(config.steps)])
    np.testing.assert_allclose(run.history[["lr_g", "lr_d"]].to_numpy(), expected, rtol=1e-12)
    assert run.history.lr_g.iloc[0] == config.g_lr and run.history.lr_g.iloc[-1] < config.g_lr / 2


def test_new_settings_enter_the_run_key_only_when_set(tmp_path: Path) -> None:
    base = preset("corrected")
    changes = [{}, {"lr_schedule": "linear", "lr_decay_end": 50_000},
               {"lr_schedule": "cosine", "lr_decay_end": 50_000}, {"ema_decay": 0.999},
               {"ema_decay": 0.999, "ema_bn_passes": 10}, {"architecture": "rebalanced"}]
    keyed = {run_folder(tmp_path, "r", dataclasses.replace(base, **c)).name for c in changes}
    assert len(keyed) == 6
    # How often diagnostics are logged changes no result, so no key.
    rarely = dataclasses.replace(base, diagnostics_every=7)
    assert run_folder(tmp_path, "r", rarely) == run_folder(tmp_path, "r", base)


# ---------------------------------------------------------------- diagnostics

def test_diagnostics_are_logged_and_change_nothing(tmp_path: Path) -> None:
    config = tiny("sngan_small", diagnostics_every=1)
    held_out = images(8, seed=5)
    logged = train_gan(config, images(), tmp_path / "logged", show_progress=False,
                       held_out=held_out)
    quiet = train_gan(dataclasses.replace(config, diagnostics_every=1_000), images(),
                      show_progress=False)
    assert np.array_equal(logged.history.to_numpy(), quiet.history.to_numpy())
    for a, b in ((logged.generator, quiet.generator), (logged.discriminator, quiet.discriminator)):
        for key, value in _state(a).items():  # spectral norm's u and v included
            assert torch.equal(value, b.state_dict()[key]), key
    table = logged.diagnostics
    assert list(table.columns) == list(DIAGNOSTIC_COLUMNS) and list(table.step) == list(range(1, 7))
    np.testing.assert_allclose(table.d_gap, table.d_real - table.d_fake)
    np.testing.assert_allclose(table[["lr_g", "lr_d"]], logged.history[["lr_g", "lr_d"]])
    assert table.d_test.notna().all()
    assert (table.grad_norm_g > 0).all() and (table.grad_norm_d > 0).all()
    assert len(quiet.diagnostics) == 0
    # Written beside the history and read back with a finished run.
    again = train_gan(config, images(), tmp_path / "logged", show_progress=False)
    np.testing.assert_allclose(again.diagnostics.to_numpy(), table.to_numpy())
    (tmp_path / "logged" / "checkpoint.pt").unlink()  # as the freeze keeps a finished run
    frozen = train_gan(config, images(), tmp_path / "logged", show_progress=False)
    np.testing.assert_allclose(frozen.diagnostics.to_numpy(), table.to_numpy())


def test_without_held_out_images_d_test_is_missing_and_bad_ones_are_refused() -> None:
    run = train_gan(tiny("rebalanced"), images(), show_progress=False)
    assert len(run.diagnostics) == 3 and run.diagnostics.d_test.isna().all()
    with pytest.raises(DataError, match="held-out"):
        train_gan(tiny("rebalanced"), images(), show_progress=False,
                  held_out=torch.zeros(4, 1, 28, 28))


# ---------------------------------------------------------------- EMA with re-estimated BatchNorm

def _batchnorm_inputs(generator: nn.Module, z: torch.Tensor) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
             for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        generator.eval()(z)
    for hook in hooks:
        hook.remove()
    return seen


def test_recomputed_batchnorm_matches_the_statistics_of_fresh_samples() -> None:
    torch.manual_seed(0)
    g = RebalancedGenerator(widths=(32, 24, 16, 8))
    dcgan_init_(g)
    for norm in (m for m in g.modules() if isinstance(m, nn.BatchNorm2d)):
        norm.running_var.fill_(5.0)  # stale statistics, as a lagging average leaves them
    g.train()
    before = _state(g)
    fixed = recompute_batchnorm(g, passes=40, batch_size=64, seed=3)
    assert g.training and all(torch.equal(v, g.state_dict()[k]) for k, v in before.items())
    assert not fixed.training and fixed is not g
    again = recompute_batchnorm(g, passes=40, batch_size=64, seed=3)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in fixed.state_dict().items())
    # The inputs each BatchNorm sees for fresh latents have the statistics it now holds.
    fresh = torch.randn(4_000, 100, 1, 1, generator=torch.Generator().manual_seed(9))
    inputs = _batchnorm_inputs(fixed, fresh)
    norms = [m for m in fixed.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm, x in zip(norms, inputs):
        torch.testing.assert_close(norm.running_mean, x.mean((0, 2, 3)), rtol=0.05, atol=0.02)
        torch.testing.assert_close(norm.running_var, x.var((0, 2, 3)), rtol=0.08, atol=1e-3)
    kept = recompute_batchnorm(g, passes=0, batch_size=4, seed=0)
    assert kept.state_dict()["net.1.running_var"].eq(5).all()


def test_an_ema_run_samples_and_saves_its_generator_with_recomputed_bn(tmp_path: Path) -> None:
    config = tiny("rebalanced")
    trainer = Trainer(config, images(), torch.device("cpu"))
    for _ in range(config.steps):
        trainer.step()
    averaged = _state(trainer.ema.model)
    sampler = trainer.sampling_generator
    assert sampler is trainer.sampling_generator  # re-estimated once per step
    expected = recompute_batchnorm(trainer.ema.model, config.ema_bn_passes, config.batch_size,
                                   config.seed + 6)
    assert all(torch.equal(v, expected.state_dict()[k]) for k, v in sampler.state_dict().items())
    assert not torch.equal(sampler.state_dict()["net.1.running_var"], averaged["net.1.running_var"])
    # The EMA's own state goes on averaging, untouched.
    assert all(torch.equal(v, trainer.ema.model.state_dict()[k]) for k, v in averaged.items())
    run = train_gan(config, images(), tmp_path, show_progress=False)
    saved = load_generator(tmp_path / "generator.pt")
    assert generator_extra(tmp_path / "generator.pt")["ema_bn_passes"] == config.ema_bn_passes
    for key, value in sampler.state_dict().items():
        assert torch.equal(value, saved.state_dict()[key]), key
        assert torch.equal(value, run.generator.state_dict()[key]), key


@pytest.mark.parametrize("name", ["rebalanced", "sngan_small"])
def test_recipes_train_and_resume_bit_identically(tmp_path: Path, name: str) -> None:
    config = tiny(name)
    options = {"show_progress": False, "held_out": images(4, 7)}
    whole = train_gan(config, images(), tmp_path / "whole", **options)
    first = train_gan(config, images(), tmp_path / "split", stop_at=3, **options)
    assert first.step == 3
    resumed = train_gan(config, images(), tmp_path / "split", **options)
    assert resumed.resumed_from == 3 and resumed.finished
    assert np.array_equal(whole.history.to_numpy(), resumed.history.to_numpy())
    np.testing.assert_array_equal(whole.diagnostics.to_numpy(), resumed.diagnostics.to_numpy())
    for a, b in ((whole.generator, resumed.generator), (whole.raw_generator, resumed.raw_generator),
                 (whole.discriminator, resumed.discriminator)):
        for key, value in _state(a).items():
            assert torch.equal(value, b.state_dict()[key]), key
    assert whole.history.loss_d.notna().all() and np.isfinite(whole.history.loss_g).all()


# ---------------------------------------------------------------- pilots

def test_pilot_configs_compress_each_schedule() -> None:
    full, pilots = full_length_configs(), pilot_configs()
    assert list(pilots) == list(PILOT_NAMES)
    for name, config in pilots.items():
        assert config.steps == 12_500 and check_gan_budget(config).params < GAN_LIMITS.max_params
        assert config.sample_every == 1_250 and config.checkpoint_every == 250
        assert dataclasses.replace(config, steps=50_000) != full[name]  # compressed, not cut
    assert pilots["P0"].epoch_steps == 250 and pilots["P0"].lr_schedule == "per_epoch"
    assert lr_at(12_499, pilots["P0"])[0] == pytest.approx(lr_at(49_999, full["P0"])[0])
    p1 = pilots["P1"]
    assert (p1.lr_decay_start, p1.lr_decay_end, p1.ema_decay) == (6_250, 12_500, 0.999)
    assert (pilots["P1"].architecture, pilots["P2"].architecture) == ("dcgan", "rebalanced")
    assert (pilots["P3"].lr_decay_start, pilots["P3"].lr_decay_end) == (0, 12_500)
    assert (pilots["P4"].beta1, pilots["P4"].beta2) == (0.5, 0.999) and pilots["P3"].beta1 == 0.0
    folders = {pilot_folder(Path("runs"), n, c).name for n, c in pilots.items()}
    assert len(folders) == 5 and all(f.startswith("pilot-P") and "-seed0-" in f for f in folders)
    assert compressed(full["P3"], 1_000).lr_decay_end == 1_000
    assert [compressed(full["P3"], steps).sample_every for steps in (4, 10, 25)] == [4, 1, 2]  # >= 1 grid


needs_weights = pytest.mark.skipif(
    iw.fid_helper_torchscript_path() is None and not iw.pytorch_fid_weights_path().is_file(),
    reason="no FID Inception weights available offline")


@needs_weights
def test_a_pilot_trains_scores_once_and_is_listed(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(pilots, "HELD_OUT", 4)
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 6)):
        folder = tmp_path / "toy" / split / "a"
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    config = dataclasses.replace(compressed(full_length_configs()["P3"], 4), batch_size=4,
                                 n_fixed=4, ema_bn_passes=2, sample_every=2)
    out = tmp_path / "runs"
    toy = f"folder:{tmp_path / 'toy'}"
    data = gan_dataset(toy, "train")
    result = pilots.run_pilot("P3", config, out, data, n_fid=6)
    assert (result["pilot"], result["steps"], result["n_fake"]) == ("P3", 4, 6)
    assert result["dataset"] == toy and result["n_real"] == 6  # the whole test split
    assert result["fid"] > 0 and result["folder"].startswith("pilot-P3-seed0-")
    folder = out / result["folder"]
    assert {"generator.pt", "diagnostics.csv", "pilot.json"} <= {p.name for p in folder.iterdir()}
    assert [p.name for p in (folder / "samples").iterdir()] == ["step-000004.png"]  # the last grid only
    assert pd.read_csv(folder / "diagnostics.csv").d_test.notna().all()  # the held-out test batch
    monkeypatch.setattr(pilots, "score", lambda *a, **k: pytest.fail("scored a scored pilot again"))
    assert pilots.run_pilot("P3", config, out, data, n_fid=6) == result
    table = pilots.pilot_table(out)
    assert list(table.pilot) == ["P3"] and table.fid[0] == result["fid"]
    rows = pilots.pilot_diagnostics(out, [result])
    assert len(rows) and set(rows.pilot) == {"P3"} and set(rows.seed) == {0}
    monkeypatch.undo()
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(pilots, "HELD_OUT", 4)
    smaller = pilots.run_pilot("P3", config, out, data, n_fid=6, n_reference=5)  # another reference: scored anew
    assert smaller["n_real"] == 5 and smaller["fid"] != result["fid"]


# ---------------------------------------------------------------- the pilots' winner

def test_the_winner_is_the_best_mean_over_seeds_and_must_beat_the_control() -> None:
    from effgen.gan.winner import mean_fids, pick_winner

    results = [{"pilot": "P0", "fid": 100.0}, {"pilot": "P2", "fid": 84.0},
               {"pilot": "P3", "fid": 80.0}, {"pilot": "P3", "fid": 90.0}]
    assert mean_fids(results) == {"P0": 100.0, "P2": 84.0, "P3": 85.0}
    assert pick_winner(results) == "P2"  # P3's best seed is lower, its mean is not
    assert pick_winner([{"pilot": "P0", "fid": 80.0}, {"pilot": "P3", "fid": 90.0}]) is None
    assert pick_winner([{"pilot": "P0", "fid": 80.0}]) is None and pick_winner([]) is None
    assert pick_winner([{"pilot": "P4", "fid": 90.0}]) == "P4"  # no control scored: the best wins


def test_the_best_generator_must_beat_the_reference_beyond_seed_noise() -> None:
    from effgen.gan.winner import best_generator

    fids = {"corrected DCGAN": 37.08, "pilot P1 at full length": 37.02, "modern": 44.9}
    assert best_generator(fids, "corrected DCGAN", 3.8) == "corrected DCGAN"  # 0.06 better: cannot tell
    assert best_generator(fids, "corrected DCGAN", float("nan")) == "corrected DCGAN"
    assert best_generator(fids, "corrected DCGAN", None) == "corrected DCGAN"
    clear = {**fids, "pilot P1 at full length": 30.0, "pilot P2": 32.0}
    assert best_generator(clear, "corrected DCGAN", 3.8) == "pilot P1 at full length"


def test_the_winner_runs_its_full_schedule_on_chapter_04s_budget() -> None:
    from effgen.gan.winner import winner_folder, winner_run_config

    budget = {"steps": 50_000, "epoch_steps": 1_000, "batch_size": 64, "seed": 3,
              "checkpoint_every": 250, "sample_every": 5_000}
    config = winner_run_config("P3", **budget)
    full = full_length_configs(seed=3)["P3"]
    assert (config.lr_decay_start, config.lr_decay_end, config.ema_bn_passes) == (0, 50_000, 200)
    assert dataclasses.replace(config, sample_every=full.sample_every, checkpoint_every=full.checkpoint_every,
                               diagnostics_every=full.diagnostics_every) == full
    short = winner_run_config("P2", **{**budget, "steps": 6, "epoch_steps": 1})
    assert (short.steps, short.lr_decay_start, short.lr_decay_end, short.ema_bn_passes) == (6, 3, 6, 6)
    assert short.checkpoint_every == 6 and short.sample_every == 6
    assert winner_folder(Path("runs"), "P3", config).name.startswith("winner-P3-")


def test_the_winners_ablation_removes_each_piece_it_has_and_leaves_the_ema_to_its_raw_generator() -> None:
    from effgen.gan import ablation
    from effgen.gan.winner import removed_piece, winner_ablation

    p3 = pilot_configs()["P3"]
    runs = winner_ablation("P3", p3)
    assert list(runs) == ["P3-no-hinge", "P3-no-spectral_norm", "P3-no-decay"]  # equal rates: no "ttur"
    assert [removed_piece(name) for name in runs] == ["hinge", "spectral_norm", "decay"]
    for name, config in runs.items():
        piece = removed_piece(name)
        assert not ablation.addition_on(config, piece)
        assert [p for p in ablation.PIECES if ablation.addition_on(config, p)] == \
            [p for p in ablation.PIECES if ablation.addition_on(p3, p) and p != piece]
    constant = runs["P3-no-decay"]
    assert lr_at(12_499, constant) == lr_at(0, constant) == (p3.g_lr, p3.d_lr)
    assert list(winner_ablation("P1", pilot_configs()["P1"])) == ["P1-no-ttur", "P1-no-decay"]
    no_ema = ablation.without(p3, "ema")
    assert (no_ema.ema_decay, no_ema.ema_bn_passes) == (0.0, 0)  # a valid config, not a validation error
    modern = preset("modern")
    assert list(ablation.modern_ablation(modern)) == ["modern"] + [f"no {a}" for a in ablation.ADDITIONS]


def test_the_winner_job_needs_every_pilot_scored_and_a_winner(tmp_path: Path) -> None:
    import json

    from effgen.book.jobs.gan_runs import winner_runs
    from effgen.errors import ParamsError

    values = {"steps": 8, "epoch_steps": 2, "batch_size": 4, "seed": 0}
    beyond = {"pilots": ["P0", "P3"], "pilot_steps": 4, "gan_checkpoint_every": 4, "gan_sample_every": 8}

    def scored(name: str, fid: float, steps: int = 4, seed: int = 0) -> None:
        folder = tmp_path / f"pilot-{name}-seed{seed}-0000000{steps}"
        folder.mkdir()
        (folder / "pilot.json").write_text(json.dumps({"pilot": name, "seed": seed, "fid": fid, "steps": steps,
                                                       "params": 1, "folder": folder.name}))

    scored("P0", 100.0)
    with pytest.raises(ParamsError, match="P3 have no score"):
        winner_runs(values, beyond, tmp_path)
    scored("P3", 120.0)
    scored("P3-no-decay", 10.0)  # an ablation run is no candidate
    scored("P3", 10.0, steps=2)  # nor a pilot of another length
    with pytest.raises(ParamsError, match="no pilot beat the control"):
        winner_runs(values, beyond, tmp_path)
    scored("P3", 60.0, seed=1)
    (name, config), = winner_runs(values, beyond, tmp_path).items()  # P3's mean: 90 < 100
    assert name == "winner-P3" and config.steps == 8 and config.recipe == "sngan_small"


def test_the_pilots_command_lists_a_winners_ablation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from effgen.book.jobs import pilot_runs

    assert pilot_runs.main(["P3", "--ablate", "--list", "--out", str(tmp_path)]) == 0
    listed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("P")]
    assert listed == ["P3", "P3-no-hinge", "P3-no-spectral_norm", "P3-no-decay"]


def test_the_pilots_command_reseeds_the_best_as_chapter_06_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    calls = []
    fids = {"P0": 100.0, "P1": 90.0, "P2": 95.0}

    def fake_run(name, config, out, data, device, n_fid, raw):
        calls.append((name, config.seed, raw))
        return {"pilot": name, "seed": config.seed, "fid": fids[name] + config.seed, "steps": config.steps,
                "folder": pilot_folder(out, name, config).name}

    from effgen.book.jobs import pilot_runs

    monkeypatch.setattr(pilot_runs, "run_pilot", fake_run)
    monkeypatch.setattr(pilot_runs, "gan_dataset", lambda *a, **k: None)
    assert pilot_runs.main(["P0", "P1", "P2", "--reseed", "2", "--out", str(tmp_path)]) == 0
    assert calls == [("P0", 0, False), ("P1", 0, False), ("P2", 0, False), ("P1", 1, False), ("P2", 1, False)]


def test_the_hinge_reading_follows_the_gap() -> None:
    weak = hinge_reading(1.97, 0.04)  # the modern recipe's paper-budget run
    assert "1.97" in weak and "0.040" in weak and "barely separates" in weak
    strong = hinge_reading(0.88, 1.565)
    assert "does separate" in strong and "barely" not in strong


def diagnostics_frame(train_minus_test: list[float], logged_from: int) -> pd.DataFrame:
    """Rows every 1,000 steps; d_test logged from ``logged_from`` on, ``train_minus_test`` below d_real there."""
    steps = range(1000, 1000 * (len(train_minus_test) + 1), 1000)
    rows = [{**dict.fromkeys(DIAGNOSTIC_COLUMNS, 0.0), "step": step, "d_real": 5.0, "d_gap": 9.0,
             "d_test": 5.0 - diff if step >= logged_from else np.nan}
            for step, diff in zip(steps, train_minus_test)]
    return pd.DataFrame(rows, columns=list(DIAGNOSTIC_COLUMNS))


def test_the_memorisation_reading_follows_the_held_out_rows() -> None:
    assert memorisation(diagnostics_frame([1.0] * 8, logged_from=10**6)) is None
    assert "did not log" in memorisation_reading(None, 1000)
    noise = [0.3, -0.2, 0.1, -0.3, 0.2, -0.1, 0.25, -0.25]
    # the last quarter of the run is steps 9,000-12,000, but only 10,000 on logged d_test
    found = memorisation(diagnostics_frame([5.0] * 9 + [2.3, 1.8, 2.1], logged_from=10_000))
    assert found is not None and (found.logged_from, found.first_step, found.last_step) == (10_000, 10_000, 12_000)
    assert found.rows == 3 and found.train_minus_test == pytest.approx(6.2 / 3)
    assert found.gap == 9.0 and found.ci is not None and found.ci[0] > 0
    text = memorisation_reading(found, 1000)
    assert "from step 10,000 on" in text and "has begun to memorise" in text
    assert memorisation(diagnostics_frame([1.0] * 12, logged_from=0).assign(
        d_test=lambda d: d["d_test"].where(d["step"] < 6_000))) is None  # logged, but not late in the run
    unseen_higher = memorisation(diagnostics_frame([-2.0 + n for n in noise], logged_from=0), last_fraction=1.0)
    assert "no sign that it memorises" in memorisation_reading(unseen_higher, 1000)
    level = memorisation(diagnostics_frame(noise, logged_from=0), last_fraction=1.0)
    reading = memorisation_reading(level, 1000)  # bounded within +0.2 against a gap of 9: negligible
    assert "alike" in reading and "do not point to over-fitting" in reading and "logged it from" not in reading
    wide = memorisation(diagnostics_frame([10 * n for n in noise], logged_from=0), last_fraction=1.0)
    assert "cannot tell" in memorisation_reading(wide, 1000)  # within +2.1 against a gap of 9: cannot tell


def test_each_cause_is_read_against_seed_noise() -> None:
    tests = {test.fix: test for test in cause_tests(
        {"P0": 100.1, "P1": 36.9, "P2": 41.4, "P3": 45.0}, "P1", 36.9, {"decay": 12.0, "ema": -1.0},
        {"modern": 196.7, "no diffaugment": 150.0}, 5000)}
    rebalanced = tests["widths moved from D to G (P2)"]
    assert rebalanced.change == pytest.approx(4.5)
    assert rebalanced.reading(3.0) == "makes FID worse by 4.5 FID: ruled out as the cause"
    assert rebalanced.reading(6.0) == "4.5 FID worse, within seed noise (6.0): cannot tell"
    decay = tests["rates decayed linearly to 0"]
    assert (decay.with_fix, decay.without_fix) == (36.9, pytest.approx(48.9))
    assert decay.reading(3.0) == "helps by 12.0 FID, more than seed noise (3.0)"
    ema = tests["EMA with BatchNorm re-estimated before sampling"]
    assert ema.change == pytest.approx(1.0) and ema.reading(None) == "1.0 FID worse, one seed: cannot tell"
    assert [test.outcome(3.0) for test in tests.values()] == ["hurts", "helps", "hurts", "helps", "cannot tell"]
    assert tests["a deeper SN D (the SNGAN standard CNN, P3)"].reading(3.0).endswith("depth alone does not rescue it")
    assert tests["no DiffAugment"].change == pytest.approx(-46.7)
    assert tests["no DiffAugment"].reading(50.0) == "46.7 FID better, within seed noise (50.0, measured on the pilots): cannot tell"
    assert "5,000 steps" in tests["no DiffAugment"].tested_by
    assert tests["a deeper SN D (the SNGAN standard CNN, P3)"].change == pytest.approx(3.6)


def test_a_cause_without_its_runs_is_untested() -> None:
    tests = cause_tests({"P0": 360.7, "P3": 347.8}, None, None, {}, {}, 0)
    assert all(test.reading(23.2).startswith("not tested") for test in tests)  # P3's comparison needs P2
