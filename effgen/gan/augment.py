"""Batch-level augmentation of real images: random horizontal flips and padded random crops.

These are the common CIFAR transforms (flip, then a 32x32 crop from the image padded by
4 black pixels), applied to a whole batch at once on its device. The paper tried
"transformations" and found they hurt image quality (§4); the chapter measures that.
The random choices come from a CPU ``torch.Generator``, so a resumed run augments identically.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def flip_and_crop(images: torch.Tensor, generator: torch.Generator, padding: int = 4,
                  fill: float = -1.0) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H, W): each image flipped with p = 0.5, then shifted by up to ``padding``.

    ``fill`` is the padding value: -1 is black for images in [-1, 1].
    """
    n, _, height, width = images.shape
    flip = torch.rand(n, generator=generator) < 0.5
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    device = images.device
    flip, offsets = flip.to(device), offsets.to(device)
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if padding == 0:
        return images
    padded = F.pad(images, (padding,) * 4, value=fill)  # (N, C, H + 2p, W + 2p)
    rows = offsets[:, 0, None] + torch.arange(height, device=device)  # (N, H)
    cols = offsets[:, 1, None] + torch.arange(width, device=device)  # (N, W)
    batch = torch.arange(n, device=device)[:, None, None]
    # Advanced indexing puts the indexed dims first: (N, H, W, C), then back to channels first.
    crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


def border_gap(images: torch.Tensor, width: int = 4) -> float:
    """Mean brightness of the centre minus that of the outer ``width``-pixel ring, for images in [0, 1].

    Padded crops show the discriminator real images with black bands at their edges; a
    generator that learns them draws darker borders, and this number grows. Compare it
    with the value for real images.
    """
    mask = torch.ones(images.shape[-2:], dtype=torch.bool)
    mask[width:-width, width:-width] = False
    pixels = images.mean(dim=1)  # (N, H, W) grey
    return float(pixels[:, ~mask].mean() - pixels[:, mask].mean())
