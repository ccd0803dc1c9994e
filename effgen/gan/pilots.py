"""Pilot runs: which generator recipe earns a 50,000-step run, decided at a quarter of the budget.

A full run costs about an hour and a half of one core here, so candidates are compared at
12,500 steps first, each with its whole schedule compressed into those steps (its "epochs",
decay window and sample cadence scaled by a quarter), so that every pilot ends annealed as its
full run would:

* ``P0``: the corrected DCGAN, the control;
* ``P1``: P0 with the rates held for half the run and then decayed linearly to 0, and an EMA
  generator whose BatchNorm statistics are re-estimated before it draws;
* ``P2``: P1 with the parameters moved from D to G (the ``rebalanced`` preset);
* ``P3``: the SNGAN recipe at small width (the ``sngan_small`` preset);
* ``P4``: P3 with the DCGAN's Adam betas (0.5, 0.999) instead of SNGAN's (0, 0.9).

Each pilot is scored by FID: ``n_fid`` images from fixed latents against the statistics of the
whole 10,000-image test split of the data it trained on (content-cached under
``<data>/fid-stats``, so every pilot and chapter shares them). Runs go to chapter 06's run
folder of the paper profile by default, so the chapter finds and freezes them; a run resumes
from its checkpoint and a scored run is not scored again, so the same command continues after
an interruption (``effgen jobs pilots``, ``effgen.book.jobs.pilot_runs``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from effgen.checkpoints import atomic_write
from effgen.data import ImageSet, images
from effgen.gan.config import GanConfig, run_folder
from effgen.gan.loop import GanRun, train_gan
from effgen.gan.presets import PAPER_STEPS, preset
from effgen.gan.sampling import generated_images
from effgen.metrics import FidStats, cached_stats, frechet_distance, image_set_stats, subsample
from effgen.paths import data_root, runs_dir

PILOT_STEPS = 12_500
N_FID = 5_000
N_REFERENCE = 10_000  # the whole test split
HELD_OUT = 64  # one batch of test images for D's diagnostics
HELD_OUT_SEED = 1
FID_SEED = 0  # the latents every pilot is scored on
GRIDS = 10  # fixed-noise grids per run, as the paper profile's 50,000 steps draw every 5,000
DIAGNOSTIC_ROWS = 50
CHECKPOINT_EVERY = 250  # as the paper profile: a few minutes of one core between checkpoints
RESULT_FILE = "pilot.json"
PILOT_NAMES = ("P0", "P1", "P2", "P3", "P4")
PILOT_CHANGES = {  # what each pilot changes, for the chapter's table
    "P0": "the corrected DCGAN (control)",
    "P1": "P0, rates held for half the run then decayed linearly to 0, EMA generator",
    "P2": "P1 with the parameters moved from D to G (rebalanced widths)",
    "P3": "SNGAN standard-CNN D at small width, hinge loss, Adam (0, 0.9)",
    "P4": "P3 with Adam (0.5, 0.999)",
}


def full_length_configs(seed: int = 0) -> dict[str, GanConfig]:
    """The pilots at the paper's 50,000 steps: what a winner's full run would be."""
    held_then_linear: dict[str, Any] = {"lr_schedule": "linear", "lr_decay_start": PAPER_STEPS // 2,
                                        "lr_decay_end": PAPER_STEPS, "ema_decay": 0.999,
                                        "ema_bn_passes": preset("rebalanced").ema_bn_passes}
    return {
        "P0": preset("corrected", seed=seed),
        "P1": preset("corrected", seed=seed, **held_then_linear),
        "P2": preset("rebalanced", seed=seed),
        "P3": preset("sngan_small", seed=seed),
        "P4": preset("sngan_small", seed=seed, beta1=0.5, beta2=0.999),
    }


def compressed(config: GanConfig, steps: int) -> GanConfig:
    """``config`` shortened to ``steps``, its schedule scaled to fit (see the module docstring)."""
    scale = steps / config.steps

    def scaled(value: int) -> int:
        return max(1, round(value * scale))

    decay: dict[str, Any] = ({"lr_decay_start": round(config.lr_decay_start * scale),
                              "lr_decay_end": scaled(config.lr_decay_end)} if config.lr_decay_end else {})
    return dataclasses.replace(
        config, steps=steps, epoch_steps=scaled(config.epoch_steps), **decay,
        # fewer steps than GRIDS: one grid, at the end (an EMA pilot re-estimates BatchNorm for each)
        sample_every=steps // GRIDS or steps, checkpoint_every=min(CHECKPOINT_EVERY, steps),
        diagnostics_every=max(1, steps // DIAGNOSTIC_ROWS),
        # BatchNorm re-estimated over no more batches than the run trained on: the whole 200 from 12,500
        # steps up, and a few-step test run is not dominated by them
        ema_bn_passes=min(config.ema_bn_passes, steps))


def pilot_configs(steps: int = PILOT_STEPS, seed: int = 0) -> dict[str, GanConfig]:
    """``P0``..``P4`` compressed to ``steps``."""
    return {name: compressed(config, steps) for name, config in full_length_configs(seed).items()}


def pilot_folder(out: Path, name: str, config: GanConfig) -> Path:
    return run_folder(out, f"pilot-{name}-seed{config.seed}", config)


def default_out() -> Path:
    return runs_dir("paper", "06-beyond")


def reference_stats(dataset: str, device: torch.device | str = "cpu", n: int = N_REFERENCE) -> FidStats:
    """The Inception statistics of ``n`` test images (the whole split by default), cached and shared."""
    return image_set_stats(images(dataset, "test"), data_root() / "fid-stats", n=n, seed=FID_SEED, device=device)


def held_out_batch(dataset: str) -> torch.Tensor:
    """A fixed batch of test images in [-1, 1], shown to D for its diagnostics only."""
    return subsample(images(dataset, "test").images, HELD_OUT, HELD_OUT_SEED)


def score(run: GanRun, reference: FidStats, n: int = N_FID,
          device: torch.device | str = "cpu", raw: bool = False) -> float:
    """FID of ``n`` images of the run's generator (its raw one with ``raw``) from fixed latents."""
    generator = run.raw_generator if raw and run.raw_generator is not None else run.generator
    fake = generated_images(generator, n, FID_SEED, device, run.config.output_range)
    assert run.run_dir is not None
    label = {"dataset": "pilot", "split": run.run_dir.name + ("-raw" if raw else "")}
    return frechet_distance(cached_stats(fake, label, data_root() / "fid-stats", device), reference)


def run_pilot(name: str, config: GanConfig, out: Path, data: ImageSet, device: torch.device | str = "cpu",
              n_fid: int = N_FID, raw: bool = False, n_reference: int = N_REFERENCE) -> dict[str, Any]:
    """Train (or resume, or reload) one pilot on ``data``, score it once, and keep the result in its folder."""
    dataset = data.provenance["dataset"]
    folder = pilot_folder(out, name, config)
    result_path = folder / RESULT_FILE
    if result_path.is_file():
        done = json.loads(result_path.read_text())
        scored = (done.get("n_fake") == n_fid and done.get("steps") == config.steps
                  and done.get("n_real") == min(n_reference, len(images(dataset, "test"))))
        if scored and ("fid_raw" in done or not raw):
            keep_last_grid(folder)
            return done
    started = time.perf_counter()
    # generator-raw.pt only where it is scored: each is 2.4 MB more in chapter 06's frozen mirror.
    run = train_gan(config, data.images, folder, device, provenance=data.provenance,
                    show_progress=False, held_out=held_out_batch(dataset), keep_raw_generator=raw)
    reference = reference_stats(dataset, device, n_reference)
    result: dict[str, Any] = {
        "pilot": name, "folder": folder.name, "recipe": config.recipe, "seed": config.seed,
        "steps": run.step, "params": run.budget.params, "dataset": dataset,
        "n_fake": n_fid, "n_real": reference.n, "fid": score(run, reference, n_fid, device),
        "train_seconds_this_call": round(run.seconds, 1),
    }
    if raw:  # None: the run has no EMA, so its raw generator is the one scored
        has_ema = run.raw_generator is not run.generator
        result["fid_raw"] = score(run, reference, n_fid, device, raw=True) if has_ema else None
    result["seconds_this_call"] = round(time.perf_counter() - started, 1)
    atomic_write(result_path, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    keep_last_grid(folder)
    return result


def keep_last_grid(folder: Path) -> None:
    """Delete a scored pilot's sample grids but the last: the chapter shows none of them, and at ~150 kB
    each, ten per pilot would be most of chapter 06's frozen pilots."""
    grids = sorted((folder / "samples").glob("step-*.png"))
    for grid in grids[:-1]:
        grid.unlink()


def pilot_diagnostics(out: Path, results: list[dict[str, Any]]) -> pd.DataFrame:
    """The diagnostics rows (``effgen.gan.diagnostics``) of the given pilots, with their name and seed."""
    frames = []
    for result in results:
        path = Path(out) / result["folder"] / "diagnostics.csv"
        if path.is_file():
            frames.append(pd.read_csv(path).assign(pilot=result["pilot"], seed=result["seed"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def pilot_table(out: Path) -> pd.DataFrame:
    """Every scored pilot under ``out``, one row each, best FID first."""
    paths = sorted(Path(out).glob(f"pilot-*/{RESULT_FILE}"))
    rows = [json.loads(path.read_text()) for path in paths]
    if not rows:
        return pd.DataFrame(columns=["pilot", "seed", "fid", "steps", "params", "folder"])
    table = pd.DataFrame(rows).sort_values("fid", key=lambda fid: fid.fillna(math.inf))
    return table.reset_index(drop=True)
