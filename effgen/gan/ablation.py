"""The on/off runs of the modern recipe's ablation: one ``GanConfig`` per switched piece.

Each of the modern recipe's five additions is one ``GanConfig`` switch. ``modern_ablation``
returns, for a base config (normally ``preset("modern", steps=..., ...)``), either the base
with each addition removed in turn (``direction="remove"``: leave-one-out, what each piece is
worth inside the recipe) or the recipe with every addition off plus each one switched on in
turn (``direction="add"``: what each piece does alone). Architecture, steps, batch size and
seed are the base's throughout, so every run in one dict costs the same per step.

"Off" means, per piece:

* hinge loss -> ``logits_bce`` (the corrected DCGAN's objective);
* spectral norm -> none (for ``dcgan_sn`` and ``resnet`` D then has no normalisation at all);
* two time-scale learning rates -> D trains at G's learning rate;
* DiffAugment -> D sees un-augmented images;
* EMA -> the run's generator is the trained one.

``leave_one_out_configs`` removes any of ``PIECES``: the five additions and ``decay`` (a linear or cosine
decay of the rates -> constant rates), which the modern recipe lacks and the pilots' recipes have;
chapter 06 takes its pilot study's winner apart with it (``effgen.gan.winner``).

``modern_run_config`` and ``ablation_run_configs`` build chapter 06's runs from chapter 04's
budget. They are the one place those configs are made: the chapter and ``effgen jobs gan``
(``effgen.book.jobs.gan_runs``, which trains them ahead of the chapter) both call them, so both land in
the same run folders.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from effgen.errors import ParamsError
from effgen.gan.config import DECAY_SCHEDULES, GanConfig
from effgen.gan.presets import preset

ADDITIONS = ("hinge", "spectral_norm", "ttur", "diffaugment", "ema")
PIECES = (*ADDITIONS, "decay")
DIRECTIONS = ("remove", "add")


def addition_on(config: GanConfig, addition: str) -> bool:
    """Whether ``config`` uses ``addition`` (one of ``PIECES``)."""
    return {
        "hinge": config.loss == "hinge",
        "spectral_norm": config.spectral_norm,
        "ttur": config.d_lr != config.g_lr,
        "diffaugment": bool(config.diffaugment),
        "ema": config.ema_decay > 0,
        "decay": config.lr_schedule in DECAY_SCHEDULES,
    }[_checked(addition)]


def without(config: GanConfig, addition: str) -> GanConfig:
    """``config`` with ``addition`` switched off (unchanged if it was off)."""
    every: dict[str, dict[str, Any]] = {
        "hinge": {"loss": "logits_bce"} if config.loss == "hinge" else {},
        "spectral_norm": {"spectral_norm": False},
        "ttur": {"d_lr": config.g_lr},
        "diffaugment": {"diffaugment": ""},
        "ema": {"ema_decay": 0.0, "ema_bn_passes": 0},
        "decay": ({"lr_schedule": "none", "lr_decay_start": 0, "lr_decay_end": 0}
                  if config.lr_schedule in DECAY_SCHEDULES else {}),
    }
    changes = every[_checked(addition)]
    return dataclasses.replace(config, **changes)


def with_addition(off: GanConfig, addition: str, on: GanConfig) -> GanConfig:
    """``off`` with ``addition`` switched on as ``on`` has it."""
    fields = {"hinge": ("loss",), "spectral_norm": ("spectral_norm",), "ttur": ("d_lr",),
              "diffaugment": ("diffaugment",), "ema": ("ema_decay", "ema_bn_passes"),
              "decay": ("lr_schedule", "lr_decay_start", "lr_decay_end")}[_checked(addition)]
    return dataclasses.replace(off, **{name: getattr(on, name) for name in fields})


def all_off(config: GanConfig) -> GanConfig:
    """``config`` with every addition switched off."""
    for addition in ADDITIONS:
        config = without(config, addition)
    return config


def modern_ablation(base: GanConfig, direction: str = "remove") -> dict[str, GanConfig]:
    """Run name -> config: the base, then one run per addition.

    ``remove``: ``{"modern": base, "no hinge": ..., "no spectral_norm": ..., "no ttur": ...,
    "no diffaugment": ..., "no ema": ...}``. ``add``: ``{"none": all off, "only hinge": ...,
    ..., "only ema": ...}``. An addition the base does not use is skipped.
    """
    if direction not in DIRECTIONS:
        raise ParamsError(f"ablation direction {direction!r}: choose one of {', '.join(DIRECTIONS)}")
    if direction == "remove":
        return {"modern": base, **leave_one_out_configs(base, ADDITIONS)}
    off = all_off(base)
    return {"none": off, **{f"only {a}": with_addition(off, a, base) for a in ADDITIONS if addition_on(base, a)}}


def leave_one_out_configs(base: GanConfig, pieces: tuple[str, ...] = PIECES) -> dict[str, GanConfig]:
    """``{"no hinge": ..., "no decay": ...}``: ``base`` with each of ``pieces`` that it uses removed in turn."""
    return {f"no {piece}": without(base, piece) for piece in pieces if addition_on(base, piece)}


def modern_run_config(architecture: str, *, steps: int, epoch_steps: int, batch_size: int, seed: int,
               checkpoint_every: int, sample_every: int) -> GanConfig:
    """The modern recipe on a DCGAN run's budget: its steps, "epoch", batch size and seed."""
    return preset("modern", architecture=architecture, steps=steps, epoch_steps=epoch_steps,
                  batch_size=batch_size, seed=seed, checkpoint_every=checkpoint_every,
                  sample_every=min(sample_every, steps))


def ablation_run_configs(modern: GanConfig, steps: int) -> dict[str, GanConfig]:
    """Ablation name -> config: ``modern`` cut to ``steps`` (one sample grid, at the end), then
    each addition removed in turn.

    "no ema" is not among them: the full run's raw generator is that run, so it is not trained twice.
    """
    base = dataclasses.replace(modern, steps=steps, sample_every=steps,
                               checkpoint_every=min(modern.checkpoint_every, steps))
    return {name: config for name, config in modern_ablation(base, "remove").items() if name != "no ema"}


def ablation_folder(name: str) -> str:
    """The run-folder prefix of an ablation run (``"no hinge"`` -> ``"ablation-no-hinge"``)."""
    return "ablation-" + name.replace(" ", "-")


def keeps_raw_generator(folder_prefix: str) -> bool:
    """Whether chapter 06's run under ``folder_prefix`` keeps ``generator-raw.pt``: the long modern run
    and the ablation's full-recipe run, whose raw weights the chapter scores (the "no ema" row), do;
    a leave-one-out run and the pilots' winner, scored by their EMA generators alone, do not (1.2 MB less
    each in ``_freeze/``)."""
    if folder_prefix.startswith("winner-"):
        return False
    return not folder_prefix.startswith("ablation-") or folder_prefix == ablation_folder("modern")


def _checked(addition: str) -> str:
    if addition not in PIECES:
        raise ParamsError(f"unknown addition {addition!r}; choose one of {', '.join(PIECES)}")
    return addition
