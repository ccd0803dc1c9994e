"""The GAN's EMA generator: ``effgen.runtime.ModelEma`` of G's weights, and its BatchNorm statistics.

The EMA copy averages BatchNorm's running statistics along with the weights. Averaged statistics
lag, though: they average the live network's statistics over the same window as the weights, while
the activations of the averaged weights are not the average of the live networks' activations.
Early in a run the EMA generator's activation variance was 0.74-0.86 of its stored running variance.
``recompute_batchnorm`` re-estimates the statistics of the averaged weights themselves from fresh
latents, as stochastic weight averaging does [Izmailov et al. 2018], before the EMA generator draws
samples or is saved.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from effgen.gan.models import LATENT_DIM


def recompute_batchnorm(generator: nn.Module, passes: int, batch_size: int, seed: int,
                        device: torch.device | str = "cpu") -> nn.Module:
    """A copy of ``generator`` in eval mode whose BatchNorm running statistics are re-estimated.

    The copy's statistics are reset and then averaged with equal weight (BatchNorm's
    ``momentum=None``) over ``passes`` forward passes in train mode, each of ``batch_size``
    latents drawn from a stream seeded by ``seed``, without gradients. ``generator`` itself is
    not changed, and the same arguments give the same statistics.
    """
    model = copy.deepcopy(generator)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if passes < 1 or not norms:
        return model.eval()
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: every pass counts the same
    latent_dim = getattr(generator, "latent_dim", LATENT_DIM)
    noise = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            # Drawn on the CPU stream, so the statistics do not depend on the device.
            model(torch.randn(batch_size, latent_dim, 1, 1, generator=noise).to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return model.eval()
