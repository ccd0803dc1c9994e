"""Step-budgeted GAN training: train, checkpoint, resume or reload one run in its folder.

An "epoch" is the original's 1,000 optimisation steps (``epoch_steps``), not a pass over the
data. The run checkpoints its whole state (``effgen.gan.trainer.Trainer.state_dict``) every
``checkpoint_every`` steps, so an interrupted run resumes bit for bit, and a finished run is
reloaded instead of trained again, from its checkpoint or, once the freeze has dropped that, from
its generator file and tables (``effgen.gan.run_files``).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from effgen.budget import BudgetReport
from effgen.checkpoints import atomic_torch_save, exclusive_run, load_module_state, read_checkpoint
from effgen.errors import CheckpointError, DataError, ParamsError
from effgen.gan.config import GanConfig, changed_settings
from effgen.gan.generator_files import (
    load_generator,
    read_generator_file,
    savable_kind,
    save_generator,
)
from effgen.gan.networks import build_models, check_gan_budget
from effgen.gan.run_files import (
    empty_diagnostics,
    existing_samples,
    read_diagnostics,
    read_history,
    save_grid,
    write_tables,
)
from effgen.gan.trainer import Trainer
from effgen.runtime import progress, seed_everything

CHECKPOINT_KEYS = ("config", "step", "generator", "discriminator", "opt_g", "opt_d", "schedulers",
                   "batches", "noise", "augment_rng", "history", "dataset")
_DAMAGE = (KeyError, IndexError, RuntimeError, ValueError, TypeError, AttributeError)


@dataclass
class GanRun:
    """What a finished (or stopped) run leaves: models, history and where its files are."""

    config: GanConfig
    generator: nn.Module
    discriminator: nn.Module
    history: pd.DataFrame  # one row per step: trainer.HISTORY_COLUMNS
    run_dir: Path | None
    budget: BudgetReport
    resumed_from: int  # the step this call started from (0: a fresh run)
    seconds: float  # wall time this call spent training
    samples: dict[int, Path] = field(default_factory=dict)  # step -> fixed-noise grid PNG
    dataset: str = ""  # provenance["dataset"] of the images it trained on, "" when not given
    # The trained weights themselves. ``generator`` is the EMA copy when ``config.ema_decay`` > 0
    # (the one to sample and score), and the same object as this one otherwise.
    raw_generator: nn.Module | None = None
    # One row per ``diagnostics_every`` steps: DIAGNOSTIC_COLUMNS (empty for older runs).
    diagnostics: pd.DataFrame = field(default_factory=empty_diagnostics)

    def __post_init__(self) -> None:
        if self.raw_generator is None:
            self.raw_generator = self.generator

    @property
    def step(self) -> int:
        return len(self.history)

    @property
    def finished(self) -> bool:
        return self.step >= self.config.steps

    @property
    def generator_path(self) -> Path | None:
        """``generator.pt``: the EMA generator when the run keeps one, else the trained one."""
        return self.run_dir / "generator.pt" if self.run_dir else None

    @property
    def raw_generator_path(self) -> Path | None:
        """``generator-raw.pt`` (un-averaged weights) beside an EMA, else ``generator.pt``."""
        if not self.run_dir:
            return None
        return self.run_dir / ("generator-raw.pt" if self.config.ema_decay > 0 else "generator.pt")


def _validate_images(images: torch.Tensor, config: GanConfig) -> None:
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, 32, 32):
        raise DataError("GAN training needs images of shape (N, 3, 32, 32), "
                        f"got {tuple(images.shape)}")
    if images.shape[0] < config.batch_size:
        raise DataError(f"{images.shape[0]} images cannot fill one batch of {config.batch_size}")
    if not images.is_floating_point() or images.min() < -1.0001 or images.max() > 1.0001:
        raise DataError("GAN training expects float images scaled to [-1, 1] "
                        "(as effgen.data returns them)")


def _validate_held_out(held_out: torch.Tensor | None) -> None:
    if held_out is None:
        return
    if held_out.dim() != 4 or tuple(held_out.shape[1:]) != (3, 32, 32) or len(held_out) < 2:
        raise DataError(f"held-out images for D's diagnostics must be (N >= 2, 3, 32, 32), "
                        f"got {tuple(held_out.shape)}")


def train_gan(config: GanConfig, images: torch.Tensor, run_dir: Path | None = None,
              device: torch.device | str = "cpu", *, stop_at: int | None = None,
              provenance: Mapping[str, Any] | None = None, show_progress: bool = True,
              keep_raw_generator: bool = True, held_out: torch.Tensor | None = None) -> GanRun:
    """Train (or resume, or just reload) one GAN run on ``images`` (N, 3, 32, 32) in [-1, 1].

    With ``run_dir`` the run keeps ``checkpoint.pt`` (full state) and the files of
    ``effgen.gan.run_files``. With an EMA (``ema_decay`` > 0) ``generator.pt`` and
    ``GanRun.generator`` hold the EMA weights, and ``generator-raw.pt`` and
    ``GanRun.raw_generator`` the trained ones. Calling again with the same config continues from
    the checkpoint; a finished run is reloaded without training. Only the settings in
    ``config.RESUMABLE_CHANGES`` may change between calls. ``keep_raw_generator=False`` skips
    ``generator-raw.pt`` for a caller that scores only the EMA generator; reloaded without it,
    the run's ``raw_generator`` is its EMA one. ``held_out``, a fixed batch of images the run does
    not train on (in [-1, 1]), adds D's output on them to the diagnostics; it changes no result.
    ``stop_at`` ends this call early after checkpointing that step, as an interruption would.
    One process at a time trains in ``run_dir`` (``effgen.checkpoints.exclusive_run``).
    """
    device = torch.device(device)
    budget = check_gan_budget(config)  # raises BudgetError before any data moves
    _validate_images(images, config)
    _validate_held_out(held_out)
    with exclusive_run(run_dir):
        return _train_gan(config, images, run_dir, device, budget, stop_at, provenance,
                          show_progress, keep_raw_generator, held_out)


def _train_gan(config: GanConfig, images: torch.Tensor, run_dir: Path | None, device: torch.device,
               budget: BudgetReport, stop_at: int | None, provenance: Mapping[str, Any] | None,
               show_progress: bool, keep_raw_generator: bool,
               held_out: torch.Tensor | None) -> GanRun:
    if run_dir is not None:
        if frozen := _reload_frozen_run(config, Path(run_dir), device, budget, provenance):
            return frozen
    trainer = Trainer(config, images, device, held_out)
    dataset = str((provenance or {}).get("dataset", ""))
    checkpoint = run_dir / "checkpoint.pt" if run_dir else None  # None: nothing is saved
    if run_dir and checkpoint and checkpoint.exists():
        # Onto the CPU whatever the device: RNG states must stay CPU ByteTensors (see checkpoints).
        state = read_checkpoint(checkpoint, "GAN checkpoint", CHECKPOINT_KEYS)
        try:
            dataset = _resume(trainer, state, config, run_dir, dataset)
        except _DAMAGE as err:
            detail = " ".join(str(err).split())[:120]
            raise CheckpointError(f"{checkpoint}: a damaged GAN checkpoint ({type(err).__name__}: "
                                  f"{detail}); delete it to start afresh") from None
    resumed_from = len(trainer.rows)
    target = config.steps if stop_at is None else min(stop_at, config.steps)
    samples = existing_samples(run_dir)
    started = time.perf_counter()
    trainer.generator.train()
    trainer.discriminator.train()
    bar_options: dict[str, Any] = {} if show_progress else {"disable": True}
    bar = (progress(total=config.steps, initial=resumed_from, desc=config.recipe, **bar_options)
           if target > resumed_from else None)
    try:
        for step in range(resumed_from + 1, target + 1):
            trainer.step()
            if step % config.sample_every == 0 or step == config.steps:
                grid = trainer.sample_fixed()
                if run_dir:
                    samples[step] = run_dir / "samples" / f"step-{step:06d}.png"
                    save_grid(grid, samples[step])
            if checkpoint and (step % config.checkpoint_every == 0 or step == target):
                atomic_torch_save({**trainer.state_dict(), "dataset": dataset}, checkpoint)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    run = GanRun(config=config, generator=trainer.sampling_generator,
                 discriminator=trainer.discriminator, history=trainer.history(), run_dir=run_dir,
                 budget=budget, resumed_from=resumed_from, seconds=seconds, samples=samples,
                 dataset=dataset, raw_generator=trainer.generator,
                 diagnostics=trainer.diagnostics_frame())
    if run_dir:
        _write_outputs(run, keep_raw_generator)
    return run


def seconds_per_step(config: GanConfig, images: torch.Tensor, device: torch.device | str = "cpu",
                     steps: int = 5, warmup: int = 2) -> float:
    """Wall-clock seconds of one step of ``config`` on ``device``, after ``warmup`` untimed steps.

    The first steps pay for allocation and kernel selection, so a short ``train_gan`` run's
    ``seconds`` overstates the steady rate. Nothing is written and no run folder is touched.
    """
    if steps < 1 or warmup < 0:
        raise ParamsError("seconds_per_step needs steps >= 1 and warmup >= 0, "
                          f"not {steps} and {warmup}")
    check_gan_budget(config)
    _validate_images(images, config)
    trainer = Trainer(config, images, torch.device(device))
    for _ in range(warmup):
        trainer.step()
    _synchronize(trainer.device)
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    _synchronize(trainer.device)
    return (time.perf_counter() - started) / steps


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reload_frozen_run(config: GanConfig, run_dir: Path, device: torch.device, budget: BudgetReport,
                       provenance: Mapping[str, Any] | None) -> GanRun | None:
    """A finished run kept without ``checkpoint.pt``, reloaded untrained; else None.

    The freeze (``effgen.book.freeze``) drops a finished run's checkpoint.

    Such a folder holds ``history.csv``, ``config.json``, the sample grids and the generator's
    weights in ``generator.pt``, which training wrote when the run finished. The generator and
    the history come back; the discriminator is freshly built from the seed, *not* restored,
    and the run cannot be continued to more steps.
    """
    weights = run_dir / "generator.pt"
    tables = all((run_dir / name).is_file() for name in ("history.csv", "config.json"))
    if (run_dir / "checkpoint.pt").exists() or not weights.is_file() or not tables:
        return None
    if changed := changed_settings(json.loads((run_dir / "config.json").read_text()), config):
        raise ParamsError(f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
                          "choose another run folder or delete it to start afresh")
    history = read_history(run_dir)
    if len(history) != config.steps:
        raise ParamsError(f"{run_dir} holds a finished {len(history):,}-step run kept without its "
                          f"training state, which cannot become a {config.steps:,}-step run; ask "
                          f"for {len(history):,} steps, or delete the folder to train afresh")
    payload = read_generator_file(weights)
    saved_dataset = str(payload.get("extra", {}).get("dataset", ""))
    state = payload["state_dict"]
    dataset = str((provenance or {}).get("dataset", ""))
    if dataset and saved_dataset and dataset != saved_dataset:
        raise ParamsError(f"{run_dir} holds a run trained on {saved_dataset}, not {dataset}; "
                          "choose another run folder or delete it to start afresh")
    seed_everything(config.seed)
    generator, discriminator = build_models(config)
    raw_generator = None
    if config.ema_decay > 0 and (run_dir / "generator-raw.pt").is_file():
        # generator.pt holds the EMA weights; the trained ones are kept beside them.
        raw_generator = load_generator(run_dir / "generator-raw.pt", device).train()
    load_module_state(generator, state, weights, "generator")
    generator.to(device).train()
    discriminator.to(device).train()
    return GanRun(config=config, generator=generator, discriminator=discriminator, history=history,
                  run_dir=run_dir, budget=budget, resumed_from=len(history), seconds=0.0,
                  samples=existing_samples(run_dir), dataset=dataset or saved_dataset,
                  raw_generator=raw_generator, diagnostics=read_diagnostics(run_dir))


def _resume(trainer: Trainer, state: dict[str, Any], config: GanConfig, run_dir: Path,
            dataset: str) -> str:
    """Check a saved run against ``config``, load it into ``trainer``; returns the run's dataset."""
    if changed := changed_settings(state["config"], config):
        raise ParamsError(
            f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
            "choose another run folder or delete it to start afresh")
    if dataset and state["dataset"] and dataset != state["dataset"]:
        raise ParamsError(f"{run_dir} holds a run trained on {state['dataset']}, not {dataset}; "
                          "choose another run folder or delete it to start afresh")
    if state["step"] > config.steps:
        raise ParamsError(f"{run_dir} already holds {state['step']:,} steps, more than the "
                          f"{config.steps:,} asked for; ask for at least that many")
    trainer.load_state_dict(state)
    return dataset or str(state["dataset"])


def _write_outputs(run: GanRun, keep_raw_generator: bool = True) -> None:
    assert run.run_dir is not None
    write_tables(run.run_dir, run.history, run.diagnostics, run.config.as_dict())
    if run.finished and savable_kind(run.generator) is not None:
        save_generator(run.generator, run.run_dir / "generator.pt", extra=generator_metadata(run))
        # The trained weights beside the EMA ones.
        if keep_raw_generator and run.raw_generator is not None and run.raw_generator is not run.generator:
            save_generator(run.raw_generator, run.run_dir / "generator-raw.pt",
                           extra={**generator_metadata(run), "weights": "raw"})


def generator_metadata(run: GanRun) -> dict[str, Any]:
    """The ``extra`` stored with a generator checkpoint; chapter 05 reads it."""
    return {
        "recipe": run.config.recipe,
        "steps": run.step,
        "seed": run.config.seed,
        "dataset": run.dataset,
        "output_range": run.config.output_range,
        "sample_mode": run.config.sample_mode,
        "batch_size": run.config.batch_size,  # train-mode sampling normalises batches of this size
        "augment": run.config.augment,
        "architecture": run.config.architecture,
        "params_g_plus_d": run.budget.params,
        "weights": "ema" if run.raw_generator is not run.generator else "raw",
        "ema_decay": run.config.ema_decay,
        # Only where it applies, so the files of runs made before it keep their bytes.
        **({"ema_bn_passes": run.config.ema_bn_passes} if run.config.ema_bn_passes else {}),
    }
