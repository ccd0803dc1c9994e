"""The training-recipe tools of chapter 06: learning-rate schedules, an EMA of the weights, augmentation.

These are the tools small MNIST networks use to pass 99% [e.g. the OneCycle policy of Smith &
Topin 2019, label smoothing of Szegedy et al. 2016, weight averaging of Polyak & Juditsky 1992].
Each is switched by a :class:`~effgen.classifier.config.ClassifierConfig` field and is off by default.

Everything here is a function of ``(config, step)`` or carries its whole state in a state dict,
so a run resumed from a checkpoint continues exactly:

- :func:`lr_at` gives the learning rate of every step from the step number alone;
- :class:`WeightEMA` keeps the averaged copy of the model, saved beside the raw weights;
- :func:`augment_batch` draws its randomness from a generator seeded by ``(seed, step)``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from effgen.classifier.config import ClassifierConfig
from effgen.data.addnist_recipe import MNIST_MEAN, MNIST_STD
from effgen.runtime import ModelEma

ONECYCLE_WARMUP = 0.25  # fraction of the steps spent warming up (torch's OneCycleLR uses 0.3)
ONECYCLE_START_DIV = 25.0  # start at lr / 25, torch's default
ONECYCLE_END_DIV = 1e4  # end at lr / 25 / 1e4, torch's default
BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # a black MNIST pixel after AddNIST's normalisation, about -0.424


def lr_at(config: ClassifierConfig, step: int) -> float:
    """The learning rate of optimisation step ``step`` (0-based) of ``config.steps``.

    ``constant``: ``lr`` throughout. ``cosine``: ``lr`` annealed to 0 along half a cosine.
    ``onecycle``: torch's OneCycleLR with cosine annealing: from ``lr / 25`` up to ``lr`` over
    the first quarter of the steps, then down to ``lr / 2.5e5``.
    """
    if config.lr_schedule == "constant":
        return config.lr
    total = max(config.steps - 1, 1)
    t = min(max(step, 0), total) / total  # 0 .. 1
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if config.lr_schedule == "onecycle":
        start = config.lr / ONECYCLE_START_DIV
        end = start / ONECYCLE_END_DIV
        if t <= ONECYCLE_WARMUP:
            return _cos_between(start, config.lr, t / ONECYCLE_WARMUP)
        return _cos_between(config.lr, end, (t - ONECYCLE_WARMUP) / (1.0 - ONECYCLE_WARMUP))
    raise ValueError(f"unknown lr_schedule {config.lr_schedule!r}")


def _cos_between(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))


class WeightEMA(ModelEma):
    """The classifier's EMA of its weights (:class:`effgen.runtime.ModelEma`), saved beside the raw ones.

    Its decay ramp counts the update being made, ``d_t = min(decay, (1 + t) / (10 + t))`` after
    update ``t`` (1-based), one update ahead of the GAN's; kept so that stored runs repeat.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model, decay, offset=1)


def augment_generator(config: ClassifierConfig, step: int) -> torch.Generator:
    """The CPU generator of step ``step``'s augmentation: seeded by (run seed, step), so resuming needs no state."""
    seed = int(np.random.SeedSequence([config.seed, step, 6]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def augment_batch(x: Tensor, config: ClassifierConfig, step: int) -> Tensor:
    """Label-preserving augmentation of an AddNIST batch (N, 3, 28, 28), drawn for step ``step``.

    - ``augment_permute``: each image's three channels in a random order (the digit sum is the same);
    - ``augment_rotate`` / ``augment_translate``: each channel (each digit) rotated by up to that
      many degrees and shifted by up to that many pixels, independently, by bilinear resampling;
      pixels shifted in from outside are background (a black MNIST pixel, normalised).

    Returns ``x`` itself when nothing is switched on.
    """
    if not config.augments:
        return x
    n, c, h, w = x.shape
    generator = augment_generator(config, step)
    if config.augment_permute:
        order = torch.rand(n, c, generator=generator).argsort(dim=1).to(x.device)  # (N, 3) random permutations
        x = torch.gather(x, 1, order[:, :, None, None].expand(n, c, h, w))
    if config.augment_rotate > 0 or config.augment_translate > 0:
        m = n * c
        angle = (torch.rand(m, generator=generator) * 2 - 1) * math.radians(config.augment_rotate)
        shift = (torch.rand(m, 2, generator=generator) * 2 - 1) * config.augment_translate
        cos, sin = torch.cos(angle), torch.sin(angle)
        # affine_grid maps output coordinates in [-1, 1] to input coordinates; a shift of s pixels is 2s/size
        theta = torch.stack([torch.stack([cos, -sin, -2 * shift[:, 0] / w], 1),
                             torch.stack([sin, cos, -2 * shift[:, 1] / h], 1)], 1)  # (M, 2, 3)
        theta = theta.to(device=x.device, dtype=x.dtype)
        digits = x.reshape(m, 1, h, w) - BACKGROUND  # background 0, so padding with zeros pads background
        grid = F.affine_grid(theta, [m, 1, h, w], align_corners=False)
        digits = F.grid_sample(digits, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = (digits + BACKGROUND).reshape(n, c, h, w)
    return x
