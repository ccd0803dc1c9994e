"""The SNGAN "standard CNN" discriminator [Miyato et al. 2018, Table 3] at a quarter of its width.

Spectral normalisation with the hinge loss is published on this layout, not on the DCGAN's four
stride-2 convolutions: a 3x3 stride-1 convolution before each 4x4 stride-2 one doubles D's depth
at little cost in parameters. With spectral norm on the DCGAN-shaped D the hinge loss sat near
the 2.0 of a constant discriminator for most of a 50,000-step run, so D needs the depth more
than the width. Channels 16-32-32-64-64-128-128 (SNGAN: 64-64-128-128-256-256-512) give
368,513 parameters, biases included; LeakyReLU 0.1 as in SNGAN. Spectral norm is not built
in (``effgen.gan.spectral.spectral_norm_`` adds it), so the same network trains with and without.
"""
from __future__ import annotations

import torch
from torch import nn

STANDARD_WIDTHS = (16, 32, 32, 64, 64, 128, 128)


class StandardCnnDiscriminator(nn.Module):
    """image (N, 3, 32, 32) -> unbounded score (N,)."""

    def __init__(self, widths: tuple[int, ...] = STANDARD_WIDTHS, slope: float = 0.1) -> None:
        super().__init__()
        if len(widths) != 7:
            raise ValueError(f"the standard CNN has 7 convolutions, so 7 widths, not {len(widths)}")
        c1, c2, c3, c4, c5, c6, c7 = widths
        self.widths = tuple(widths)
        self.net = nn.Sequential(
            nn.Conv2d(3, c1, 3, 1, 1),  # (N, 16, 32, 32)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c1, c2, 4, 2, 1),  # (N, 32, 16, 16)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c2, c3, 3, 1, 1),  # (N, 32, 16, 16)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c3, c4, 4, 2, 1),  # (N, 64, 8, 8)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c4, c5, 3, 1, 1),  # (N, 64, 8, 8)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c5, c6, 4, 2, 1),  # (N, 128, 4, 4)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(c6, c7, 3, 1, 1),  # (N, 128, 4, 4)
            nn.LeakyReLU(slope, inplace=True),
            nn.Flatten(),  # (N, 2048)
            nn.Linear(c7 * 4 * 4, 1),  # (N, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).flatten()  # (N,) scores
