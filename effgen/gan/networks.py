"""The (generator, discriminator) pair a ``GanConfig`` names, and its count against the budget.

The budget is counted from the built networks, never from a table, so a change of width shows
in the count before any compute starts.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn

from effgen.budget import GAN_LIMITS, BudgetReport, check_budget, count_params
from effgen.gan.baselines import FCDiscriminator, FCGenerator, LayerNormCritic
from effgen.gan.config import GanConfig
from effgen.gan.models import Discriminator, Generator, RebalancedGenerator, dcgan_init_
from effgen.gan.resnet import ResNetDiscriminator, ResNetGenerator
from effgen.gan.sngan import StandardCnnDiscriminator
from effgen.gan.spectral import spectral_norm_

REBALANCED_D_WIDTHS = (48, 96, 192)

ARCHITECTURE_PAIRS: dict[str, Callable[[], tuple[nn.Module, nn.Module]]] = {
    "dcgan": lambda: (Generator(), Discriminator()),
    "dcgan_layernorm": lambda: (Generator(), LayerNormCritic()),
    "fc": lambda: (FCGenerator(), FCDiscriminator()),
    "dcgan_sn": lambda: (Generator(), Discriminator(batchnorm=False)),
    "resnet": lambda: (ResNetGenerator(), ResNetDiscriminator()),
    "rebalanced": lambda: (RebalancedGenerator(), Discriminator(REBALANCED_D_WIDTHS)),
    "sngan_small": lambda: (RebalancedGenerator(), StandardCnnDiscriminator()),
}
SELF_INITIALISED = ("resnet",)  # their constructors choose their own initialisation


def build_models(config: GanConfig) -> tuple[nn.Module, nn.Module]:
    """Fresh (generator, discriminator) for ``config``, seeded by the caller."""
    generator, discriminator = ARCHITECTURE_PAIRS[config.architecture]()
    if config.dcgan_init and config.architecture not in SELF_INITIALISED:
        dcgan_init_(generator)
        dcgan_init_(discriminator)
    if config.spectral_norm:
        spectral_norm_(discriminator)  # after initialisation: it reparametrises the weights
    return generator, discriminator


def check_gan_budget(config: GanConfig) -> BudgetReport:
    """Parameters of G + D and the step count against the paper's limits, before any compute."""
    generator, discriminator = build_models(dataclasses.replace(config, dcgan_init=False))
    return check_budget(count_params(generator, discriminator), config.steps, GAN_LIMITS)
