"""An exponential moving average (EMA) of G's weights [Karras et al. 2018; Yazıcı et al. 2019].

After every generator update, each EMA tensor moves towards the live one:
``ema = d * ema + (1 - d) * live``. The decay warms up as TensorFlow's
``ExponentialMovingAverage(num_updates=...)`` does, ``d_t = min(decay, (1 + t) / (10 + t))``
after t updates, so a short run is not dominated by its first, untrained weights: with
``decay`` 0.999 the average spans ~45 steps after 400 updates and ~1,000 at the paper's 50,000.

BatchNorm: the running mean and variance are floating-point buffers and are averaged the
same way (as timm's ``ModelEmaV2`` does), so the EMA generator carries running statistics
that track its averaged weights; integer buffers (``num_batches_tracked``) are copied. The EMA
copy never trains: it is used in eval mode for samples and FID.

Averaged statistics lag, though: they average the live network's statistics over the same
window as the weights, while the activations of the averaged weights are not the average of the
live networks' activations. Early in a run the EMA generator's activation variance was 0.74-0.86
of its stored running variance. ``recompute_batchnorm`` re-estimates the statistics of the
averaged weights themselves from fresh latents, as stochastic weight averaging does
[Izmailov et al. 2018], before the EMA generator draws samples or is saved.
"""
from __future__ import annotations

import copy
from typing import Any

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


def ema_decay_at(updates: int, decay: float) -> float:
    """The decay used by update number ``updates`` (1-based).

    min(decay, (1 + t) / (10 + t)) with t = updates - 1.
    """
    t = max(updates - 1, 0)
    return min(decay, (1 + t) / (10 + t))


class ModelEma:
    """A frozen copy of ``model`` that follows it by an exponential moving average."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def _pairs(self, live: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor],
                                               list[torch.Tensor], list[torch.Tensor]]:
        ema_state, live_state = self.model.state_dict(), live.state_dict()
        if ema_state.keys() != live_state.keys():
            raise ValueError("the EMA copy and the live model have different state-dict keys")
        floats = [k for k, v in ema_state.items() if v.is_floating_point()]
        others = [k for k, v in ema_state.items() if not v.is_floating_point()]
        return ([ema_state[k] for k in floats], [live_state[k].detach() for k in floats],
                [ema_state[k] for k in others], [live_state[k] for k in others])

    @torch.no_grad()
    def update(self, live: nn.Module) -> float:
        """Move every float tensor of the copy towards ``live``'s; returns the decay used."""
        self.updates += 1
        decay = ema_decay_at(self.updates, self.decay)
        ema_floats, live_floats, ema_other, live_other = self._pairs(live)
        torch._foreach_lerp_(ema_floats, live_floats, 1.0 - decay)
        for target, source in zip(ema_other, live_other):
            target.copy_(source)
        return decay

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
