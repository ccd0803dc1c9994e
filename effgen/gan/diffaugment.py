"""Differentiable Augmentation for data-efficient GAN training [Zhao et al. 2020, "DiffAugment"].

The same random transformation family is applied to *every* image the discriminator sees,
real and generated, in the discriminator step and in the generator step. Because the
transformations are differentiable, the generator's gradient passes through them, and the
generator is never asked to draw augmented images (unlike augmenting real images alone,
which leaks the augmentation into the samples: see the padded crops of chapter 04).

Policies, as in the authors' reference code (images in [-1, 1], fill value 0):

* ``translation``: shift each image by up to 1/8 of its size (4 pixels at 32x32) in each
  direction, filling the uncovered border with zeros;
* ``cutout``: zero one square of half the image size (16x16) at a random centre per image;
* ``color``: random brightness (+U(-0.5, 0.5)), saturation (x U(0, 2)) and contrast (x U(0.5, 1.5)).

A policy is a comma-separated list applied in the order ``color``, ``translation``,
``cutout`` (the reference order), e.g. ``"translation,cutout"``; ``""`` switches it off.
Random draws come from a CPU ``torch.Generator`` and are moved to the images' device, so
a resumed run augments exactly as an uninterrupted one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from effgen.errors import ParamsError

POLICIES = ("color", "translation", "cutout")  # also the order they are applied in
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ``("translation", "cutout")`` in application order; ParamsError if unknown."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = sorted(set(names) - set(POLICIES))
    if unknown:
        raise ParamsError(f"DiffAugment policy {policy!r}: unknown part(s) {', '.join(unknown)}; "
                          f"use a comma-separated subset of {', '.join(POLICIES)}, or '' for none")
    if len(set(names)) != len(names):
        raise ParamsError(f"DiffAugment policy {policy!r} names a transformation twice")
    return tuple(p for p in POLICIES if p in names)


def diff_augment(images: torch.Tensor, policy: str, generator: torch.Generator) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W): ``images`` transformed by ``policy``, differentiably."""
    for name in parse_policy(policy):
        images = _TRANSFORMS[name](images, generator)
    return images


def _uniform(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """(N, 1, 1, 1) uniform [0, 1) draws from the CPU stream, on ``like``'s device and dtype."""
    return torch.rand(n, 1, 1, 1, generator=generator).to(device=like.device, dtype=like.dtype)


def rand_color(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = images.shape[0]
    images = images + (_uniform(n, generator, images) - 0.5)  # brightness
    mean = images.mean(dim=1, keepdim=True)
    images = (images - mean) * (_uniform(n, generator, images) * 2) + mean  # saturation
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (_uniform(n, generator, images) + 0.5) + mean  # contrast


def rand_translation(images: torch.Tensor, generator: torch.Generator,
                     ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by integers in [-s, s] (s = ratio * size, rounded) rows and columns; zeros fill in."""
    n, _, height, width = images.shape
    shift_h, shift_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_h, shift_h + 1, (n, 1, 1), generator=generator).to(images.device)
    dx = torch.randint(-shift_w, shift_w + 1, (n, 1, 1), generator=generator).to(images.device)
    # Source pixel of output (i, j) is (i + dy, j + dx) in the image padded by one zero pixel;
    # indices past the edge are clamped onto that zero border.
    rows = (torch.arange(height, device=images.device)[None, :, None] + dy + 1).clamp(0, height + 1)  # (N, H, 1)
    cols = (torch.arange(width, device=images.device)[None, None, :] + dx + 1).clamp(0, width + 1)  # (N, 1, W)
    padded = F.pad(images, (1, 1, 1, 1))  # (N, C, H + 2, W + 2)
    batch = torch.arange(n, device=images.device)[:, None, None]  # (N, 1, 1)
    # Advanced indexing puts the indexed dims first: (N, H, W, C), then back to channels first.
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def rand_cutout(images: torch.Tensor, generator: torch.Generator, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one (ratio * H) x (ratio * W) square per image, centred anywhere (clipped at the edges)."""
    n, _, height, width = images.shape
    size_h, size_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    cy = torch.randint(0, height + (1 - size_h % 2), (n, 1, 1), generator=generator).to(images.device)
    cx = torch.randint(0, width + (1 - size_w % 2), (n, 1, 1), generator=generator).to(images.device)
    rows = torch.arange(height, device=images.device)[None, :, None]  # (1, H, 1)
    cols = torch.arange(width, device=images.device)[None, None, :]  # (1, 1, W)
    top, left = cy - size_h // 2, cx - size_w // 2
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)  # (N, H, W)
    return images * (~inside)[:, None].to(images.dtype)


_TRANSFORMS = {"color": rand_color, "translation": rand_translation, "cutout": rand_cutout}
