"""The pilot study's winner: picked from the pilots' FIDs, run at the paper's full budget, and taken
apart at the pilots' length.

* ``pick_winner``: the pilot with the lowest FID averaged over its seeds, provided that mean is below
  the control's (``P0``, the corrected DCGAN, whose full run chapter 04 has already made);
* ``winner_run_config``: the winner's recipe on chapter 04's budget (steps, "epoch", batch size,
  seed), its schedule scaled as ``pilots.compressed`` scales it (unchanged at 50,000 steps);
* ``winner_ablation``: the winner's pilot with each piece of its recipe removed in turn
  (``ablation.leave_one_out_configs``: hinge loss, spectral norm, unequal rates, the rate decay),
  run and scored as pilots. Its EMA is not retrained: the pilot's raw generator is that run, scored
  by ``run_pilot(..., raw=True)``.

Chapter 06 calls these, and ``effgen jobs gan winner`` (``effgen.book.jobs.gan_runs``) and
``effgen jobs pilots --ablate`` (``effgen.book.jobs.pilot_runs``) run the same configs ahead of it into its
run folder.
"""
from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from effgen.gan.ablation import PIECES, leave_one_out_configs
from effgen.gan.config import GanConfig, run_folder
from effgen.gan.pilots import compressed, full_length_configs, pilot_table

CONTROL = "P0"
WINNER_PREFIX = "winner"
# Published CIFAR-10 FIDs of larger networks (both above this budget's million parameters), cited by
# chapter 06: Mimicry's DCGAN, 10,000 images per side (Lee & Town 2020), and SN-GAN's ResNet (Miyato et al. 2018).
MIMICRY_DCGAN_FID = 28.95
SNGAN_RESNET_FID = 21.7
TARGET_FID = 25.0  # the goal set for the pilot study (10,000 generated against the 10,000 test images): between the two


def mean_fids(results: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Pilot name -> its FID averaged over the seeds it ran, from ``run_pilot`` results."""
    by_pilot: dict[str, list[float]] = defaultdict(list)
    for result in results:
        by_pilot[result["pilot"]].append(float(result["fid"]))
    return {name: statistics.fmean(fids) for name, fids in by_pilot.items()}


def pick_winner(results: Iterable[Mapping[str, Any]]) -> str | None:
    """The pilot with the lowest mean FID if it is not the control and beats it; else None.

    Without a control among the results, the best pilot wins outright.
    """
    means = mean_fids(results)
    candidates = {name: fid for name, fid in means.items() if name != CONTROL}
    if not candidates:
        return None
    best = min(candidates, key=candidates.__getitem__)
    return best if CONTROL not in means or candidates[best] < means[CONTROL] else None


def best_generator(fids: Mapping[str, float], reference: str, noise: float | None) -> str:
    """The generator with the lowest FID among those that beat ``reference`` by more than ``noise`` (the seed
    noise of one recipe); ``reference`` itself when none does, or when the noise is unknown."""
    if noise is None or noise != noise:  # NaN: no recipe ran twice, so no beat can be told from noise
        return reference
    beating = {label: fid for label, fid in fids.items() if fids[reference] - fid > noise}
    return min(beating, key=beating.__getitem__) if beating else reference


def scored_pilots(out: Path, pilots: Iterable[str], steps: int) -> list[dict[str, Any]]:
    """The results of the pilots named in ``pilots`` scored at ``steps`` under ``out`` (ablation runs and
    pilots of another length left out), one per pilot and seed."""
    table = pilot_table(out)
    if not len(table):
        return []
    return table[table["pilot"].isin(list(pilots)) & (table["steps"] == steps)].to_dict("records")


def scored_winner(out: Path, pilots: Iterable[str], steps: int) -> str | None:
    """``pick_winner`` over ``scored_pilots(out, pilots, steps)``."""
    return pick_winner(scored_pilots(out, pilots, steps))


def winner_run_config(name: str, *, steps: int, epoch_steps: int, batch_size: int, seed: int,
                      checkpoint_every: int, sample_every: int) -> GanConfig:
    """Pilot ``name``'s recipe on a DCGAN run's budget, as ``modern_run_config`` builds the modern run."""
    config = compressed(full_length_configs(seed)[name], steps)
    return dataclasses.replace(config, epoch_steps=epoch_steps, batch_size=batch_size,
                               checkpoint_every=min(checkpoint_every, steps),
                               sample_every=min(sample_every, steps))


def winner_folder(out: Path, name: str, config: GanConfig) -> Path:
    """``winner-P3-<key>`` under ``out``: the full-length run of pilot ``name``."""
    return run_folder(out, f"{WINNER_PREFIX}-{name}", config)


def winner_ablation(name: str, pilot_config: GanConfig) -> dict[str, GanConfig]:
    """Pilot name -> config: ``pilot_config`` (pilot ``name``'s) with each piece it uses removed in turn,
    named ``"P3-no-decay"``, ``"P3-no-hinge"`` and so on. The EMA is left to the pilot's raw generator.
    """
    pieces = tuple(piece for piece in PIECES if piece != "ema")
    return {f"{name}-{label.replace(' ', '-')}": config
            for label, config in leave_one_out_configs(pilot_config, pieces).items()}


def removed_piece(ablation_name: str) -> str:
    """``"P3-no-decay"`` -> ``"decay"``: which piece an ablation run removed."""
    return ablation_name.split("-no-", 1)[1]
