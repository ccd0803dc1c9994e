"""Named GAN recipes: every switch of a ``GanConfig`` fixed, so that a run is named by one word.

* ``faithful``: the authors' notebook as it ran (SPEC §3): images in [0, 1] against a tanh
  output, data never shuffled, PyTorch's default initialisation, sigmoid + ``BCELoss``,
  ``scheduler.step()`` called only once every ``step_size`` epochs (so StepLR, which itself
  waits ``step_size`` calls, first decays after step_size**2 epochs: step 36,000), and the
  fixed-noise samples drawn with G left in train mode.
* ``corrected``: the same networks and hyperparameters done as the paper describes and as
  DCGAN intends [Radford et al. 2016]: images in [-1, 1], shuffled batches, N(0, 0.02)
  initialisation, StepLR stepped once per epoch, sampling in eval mode, and the same
  objective through the numerically stable ``BCEWithLogitsLoss``.
* ``fc_gan`` and ``wgan_gp``: the baselines of ``effgen.gan.baselines``.
* ``modern``: hinge loss, spectral norm on every layer of D, two time-scale learning rates,
  DiffAugment on everything D sees and an EMA of G's weights, on the DCGAN shapes without D's
  BatchNorm (``dcgan_sn``) or on a small ResNet (``resnet``). ``effgen.gan.ablation`` lists
  its on/off runs.
* ``rebalanced``: the corrected DCGAN's objective and tuned rates with the parameters moved
  towards G (``RebalancedGenerator`` beside the paper's D at widths 48/96/192), the rates held
  for the first half and decayed linearly to 0 over the second (StepLR had annealed G's rate
  to 1 % of its start by step 18,000), and an EMA of G whose BatchNorm statistics are
  re-estimated before it draws.
* ``sngan_small``: the SNGAN recipe [Miyato et al. 2018] within the budget: the rebalanced G
  against a quarter-width standard-CNN D with spectral norm, hinge loss, 2e-4 for both
  networks, Adam (0, 0.9), one D step per G step, a linear decay to 0 from the first step,
  and the same EMA.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from effgen.errors import ParamsError
from effgen.gan.config import GanConfig, validated

PAPER_STEPS = 50_000
EMA_BN_PASSES = 200  # batches of 64: 12,800 latents, enough for a BatchNorm mean and variance

_BASE = GanConfig()
PRESETS: dict[str, GanConfig] = {
    "corrected": _BASE,
    "faithful": dataclasses.replace(
        _BASE, recipe="faithful", loss="sigmoid_bce", data_range="zero_one", shuffle=False,
        dcgan_init=False, lr_schedule="original", sample_mode="train"),
    # Goodfellow-style MLP GAN with the DCGAN paper's Adam settings.
    "fc_gan": dataclasses.replace(
        _BASE, recipe="fc_gan", architecture="fc", dcgan_init=False, lr_schedule="none",
        g_lr=2e-4, d_lr=2e-4, beta1=0.5, beta2=0.999),
    # Gulrajani et al.'s CIFAR settings: Adam(1e-4, 0, 0.9), five critic updates, lambda 10.
    "wgan_gp": dataclasses.replace(
        _BASE, recipe="wgan_gp", architecture="dcgan_layernorm", loss="wgan_gp", dcgan_init=False,
        lr_schedule="none", g_lr=1e-4, d_lr=1e-4, beta1=0.0, beta2=0.9, n_critic=5),
    # D's rate twice G's after Heusel et al. 2017, DiffAugment translation + cutout after Zhao
    # et al. 2020; no learning-rate decay. One D and one G update per step, like the DCGAN.
    "modern": dataclasses.replace(
        _BASE, recipe="modern", architecture="dcgan_sn", loss="hinge", spectral_norm=True,
        lr_schedule="none", g_lr=2e-4, d_lr=4e-4, beta1=0.5, beta2=0.999,
        diffaugment="translation,cutout", ema_decay=0.999),
    "rebalanced": dataclasses.replace(
        _BASE, recipe="rebalanced", architecture="rebalanced", lr_schedule="linear",
        lr_decay_start=PAPER_STEPS // 2, lr_decay_end=PAPER_STEPS, ema_decay=0.999,
        ema_bn_passes=EMA_BN_PASSES),
    "sngan_small": dataclasses.replace(
        _BASE, recipe="sngan_small", architecture="sngan_small", loss="hinge", spectral_norm=True,
        g_lr=2e-4, d_lr=2e-4, beta1=0.0, beta2=0.9, n_critic=1, lr_schedule="linear",
        lr_decay_start=0, lr_decay_end=PAPER_STEPS, ema_decay=0.999, ema_bn_passes=EMA_BN_PASSES),
}


def preset(name: str, *, source: str = "GAN settings", **overrides: Any) -> GanConfig:
    """A named recipe, with any settings overridden (``preset("corrected", augment=True)``).

    A bad override is one ``ParamsError`` line: ``SOURCE: key: problem (got value)``.
    """
    if name not in PRESETS:
        raise ParamsError(f"{source}: recipe: unknown GAN recipe {name!r}; "
                          f"choose one of {', '.join(PRESETS)}")
    return validated(lambda: dataclasses.replace(PRESETS[name], **overrides), source)


def config_from_dict(values: Mapping[str, Any], source: str = "GAN parameters") -> GanConfig:
    """Start from the preset named by ``values['recipe']`` (default corrected), then override.

    Unknown keys and wrong types raise ``ParamsError`` (one line, naming ``source``) before
    anything runs.
    """
    if not isinstance(values, Mapping):
        raise ParamsError(f"{source}: GAN parameters must be a mapping, "
                          f"not {type(values).__name__}")
    settings = dict(values)
    recipe = settings.pop("recipe", "corrected")
    if not isinstance(recipe, str):
        raise ParamsError(f"{source}: recipe: input should be a valid string (got {recipe!r})")
    return preset(recipe, source=source, **settings)
