"""The DCGAN family: the authors' generator and discriminator (SPEC §3), and a rebalanced G.

The paper's pair has 303,776 + 663,296 params. No layer has a bias: every convolution is
followed by BatchNorm, or is the output layer, and the original left biases off throughout.
The discriminator returns *logits*; the faithful recipe applies the original's sigmoid + BCE,
the corrected one a stable logits loss.

FID measures G alone, yet the paper's budget gives G under a third of its parameters. The
``RebalancedGenerator`` moves parameters from D to G inside the same budget: a 160-channel 4x4
stem, one more up-sampling stage so that the last transposed convolution is not the RGB
layer, and a 3x3 convolution to RGB that smooths the checkerboard a stride-2 output layer
leaves. Beside the paper's D at widths 48/96/192 (``Discriminator((48, 96, 192))``) the pair
has 601,603 + 374,592 params.
"""
from __future__ import annotations

import torch
from torch import nn

LATENT_DIM = 100


class Generator(nn.Module):
    """z (N, 100, 1, 1) -> image (N, 3, 32, 32) in [-1, 1]."""

    def __init__(self, latent_dim: int = LATENT_DIM,
                 widths: tuple[int, int, int] = (96, 64, 48)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.latent_dim = latent_dim
        self.widths = widths
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, w1, 4, 1, 0, bias=False),  # (N, 96, 4, 4)
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w1, w2, 4, 2, 1, bias=False),  # (N, 64, 8, 8)
            nn.BatchNorm2d(w2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w2, w3, 4, 2, 1, bias=False),  # (N, 48, 16, 16)
            nn.BatchNorm2d(w3),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w3, 3, 4, 2, 1, bias=False),  # (N, 3, 32, 32)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:  # accept flat (N, 100) latents as well as (N, 100, 1, 1)
            z = z[:, :, None, None]
        return self.net(z)

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, 1, 1, generator=generator)
        return z.to(device)


class RebalancedGenerator(nn.Module):
    """z (N, 100, 1, 1) -> image (N, 3, 32, 32) in [-1, 1]: wide stem, four stages, 3x3 to RGB."""

    def __init__(self, latent_dim: int = LATENT_DIM,
                 widths: tuple[int, int, int, int] = (160, 96, 48, 32)) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.latent_dim = latent_dim
        self.widths = widths
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, w1, 4, 1, 0, bias=False),  # (N, 160, 4, 4)
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w1, w2, 4, 2, 1, bias=False),  # (N, 96, 8, 8)
            nn.BatchNorm2d(w2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w2, w3, 4, 2, 1, bias=False),  # (N, 48, 16, 16)
            nn.BatchNorm2d(w3),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w3, w4, 4, 2, 1, bias=False),  # (N, 32, 32, 32)
            nn.BatchNorm2d(w4),
            nn.ReLU(inplace=True),
            # The one bias: no BatchNorm follows, so it is the only per-colour offset.
            nn.Conv2d(w4, 3, 3, 1, 1),  # (N, 3, 32, 32)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:  # accept flat (N, 100) latents as well as (N, 100, 1, 1)
            z = z[:, :, None, None]
        return self.net(z)


class Discriminator(nn.Module):
    """image (N, 3, 32, 32) -> real/fake logit (N,).

    ``batchnorm=False`` is the SN-DCGAN shape (architecture ``dcgan_sn``): the same convolutions
    without BatchNorm, each with a bias instead (662,977 params), for spectral normalisation
    to replace the batch statistics.
    """

    def __init__(self, widths: tuple[int, int, int] = (64, 128, 256), slope: float = 0.2,
                 batchnorm: bool = True) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.widths = widths
        bias = not batchnorm

        def norm(channels: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(channels)] if batchnorm else []

        self.net = nn.Sequential(
            nn.Conv2d(3, w1, 4, 2, 1, bias=bias),  # (N, 64, 16, 16)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w1, w2, 4, 2, 1, bias=bias),  # (N, 128, 8, 8)
            *norm(w2),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w2, w3, 4, 2, 1, bias=bias),  # (N, 256, 4, 4)
            *norm(w3),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w3, 1, 4, 1, 0, bias=bias),  # (N, 1, 1, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).flatten()  # (N,) logits


def dcgan_init_(module: nn.Module) -> None:
    """The DCGAN paper's N(0, 0.02) convolutions and N(1, 0.02) BatchNorm scales (corrected)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
