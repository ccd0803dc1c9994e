"""Learning-rate schedules of the GAN recipes, in closed form: ``lr_at(step, config)``.

``lr_at`` is the one statement of every schedule: the loop sets the linear and cosine rates from
it, and plots draw any schedule from it. The StepLR schedules (``per_epoch``, ``original``) are
still stepped by ``torch.optim.lr_scheduler.StepLR`` inside the loop, because StepLR multiplies
the rate by ``gamma`` once per decay and that rounding differs in the last bit from
``lr * gamma**k``; the stored runs were made that way and must resume bit for bit. A test holds
the two equal to 1e-12.

* ``per_epoch``: ``scheduler.step()`` after every epoch, so a decay every ``step_size`` epochs.
* ``original``: ``scheduler.step()`` only after every ``step_size``-th epoch. StepLR counts its
  own calls and decays every ``step_size`` of them, so the first decay comes after
  ``step_size**2`` epochs: with 6 and epochs of 1,000 steps, at step 36,000, and no other
  within 50,000 steps.
* ``linear``: constant until ``lr_decay_start``, then a straight line to 0 at ``lr_decay_end``
  (SNGAN's recipe decays from step 0: ``lr_decay_start`` 0).
* ``cosine``: constant until ``lr_decay_start``, then half a cosine down to 0 at ``lr_decay_end``.
* ``none``: constant.
"""
from __future__ import annotations

import bisect
import math

import torch

from effgen.gan.config import DECAY_SCHEDULES, GanConfig

STEPLR_SCHEDULES = ("per_epoch", "original")


def lr_decays(step: int, config: GanConfig) -> int:
    """How many times StepLR has decayed the rate before optimisation step ``step`` (0-based)."""
    epochs_done = step // config.epoch_steps
    if config.lr_schedule == "per_epoch":
        return epochs_done // config.step_size
    if config.lr_schedule == "original":
        return (epochs_done // config.step_size) // config.step_size
    return 0


def decay_factor(step: int, config: GanConfig) -> float:
    """The share of the base rates that step ``step`` (0-based) uses, in [0, 1]."""
    if config.lr_schedule in STEPLR_SCHEDULES:
        return config.gamma ** lr_decays(step, config)
    if config.lr_schedule not in DECAY_SCHEDULES or step < config.lr_decay_start:
        return 1.0
    window = config.lr_decay_end - config.lr_decay_start
    progress = min(1.0, (step - config.lr_decay_start) / window)
    if config.lr_schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_at(step: int, config: GanConfig) -> tuple[float, float]:
    """(generator, discriminator) learning rates used by step ``step`` (0-based)."""
    factor = decay_factor(step, config)
    return config.g_lr * factor, config.d_lr * factor


def annealed_by(config: GanConfig, share: float = 0.01) -> int | None:
    """The first step whose rates are below ``share`` of the base rates; None if no step's are.

    Every schedule here only ever lowers the rates, so the first such step is found by bisection.
    """
    step = bisect.bisect_left(range(config.steps), True, key=lambda s: decay_factor(s, config) < share)
    return step if step < config.steps else None


def set_rates(step: int, config: GanConfig, optimisers: tuple[torch.optim.Optimizer, ...]) -> None:
    """Give (G's, D's) optimiser the rates of step ``step`` under a linear or cosine schedule.

    StepLR schedules are left to StepLR, and a constant rate to the optimiser's own setting.
    """
    if config.lr_schedule not in DECAY_SCHEDULES:
        return
    for optimiser, rate in zip(optimisers, lr_at(step, config)):
        for group in optimiser.param_groups:
            group["lr"] = rate


def after_epoch(epoch: int, config: GanConfig,
                schedulers: list[torch.optim.lr_scheduler.StepLR]) -> None:
    """Call the StepLR schedulers as the recipe did at the end of epoch ``epoch`` (1-based)."""
    if config.lr_schedule == "per_epoch" or (
            config.lr_schedule == "original" and epoch % config.step_size == 0):
        for scheduler in schedulers:
            scheduler.step()
