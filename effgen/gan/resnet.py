"""A small SNGAN-style ResNet generator and discriminator for 32x32 images.

The layout follows the CIFAR-10 ResNets of Miyato et al. (2018, spectral normalisation) and
Gulrajani et al. (2017): the generator maps z through a linear layer to a 4x4 map and three
up-sampling residual blocks to 32x32; the discriminator uses one "optimised" down-sampling
block on the image, one more down-sampling block and two plain blocks at 8x8, then a ReLU,
a sum over positions and a linear layer. Both are narrow (64 channels by default instead of
SNGAN's 256 / 128) so that G + D stay under the paper's 1,000,000 parameters:
340,099 + 264,769 = 604,868 at the default widths.

Spectral normalisation is not built in: ``effgen.gan.spectral.spectral_norm_`` wraps every
layer of any discriminator, so the same network trains with and without it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_LATENT_DIM = 100  # the DCGAN's, so both architectures draw the same latents


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


def _conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, 1, 0)


class GeneratorBlock(nn.Module):
    """(N, c_in, H, W) -> (N, c_out, 2H, 2W): pre-activation residual block with nearest up-sampling."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = _conv3x3(c_in, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.shortcut = _conv1x1(c_in, c_out)  # up-sampling blocks always learn their shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x))  # (N, c_in, H, W)
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # (N, c_in, 2H, 2W)
        h = self.conv1(h)  # (N, c_out, 2H, 2W)
        h = self.conv2(F.relu(self.bn2(h)))  # (N, c_out, 2H, 2W)
        skip = self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))  # (N, c_out, 2H, 2W)
        return h + skip


class ResNetGenerator(nn.Module):
    """z (N, 100) or (N, 100, 1, 1) -> image (N, 3, 32, 32) in [-1, 1].

    ``widths`` = channels at 4x4 (the linear layer's output), then after each up-sampling
    block (8x8, 16x16, 32x32).
    """

    def __init__(self, latent_dim: int = DEFAULT_LATENT_DIM,
                 widths: tuple[int, int, int, int] = (64, 64, 64, 64)) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"ResNetGenerator needs four widths (4x4, 8x8, 16x16, 32x32), got {widths}")
        self.latent_dim = latent_dim
        self.widths = tuple(widths)
        w4, w8, w16, w32 = widths
        self.linear = nn.Linear(latent_dim, w4 * 4 * 4)  # (N, w4 * 16) -> view (N, w4, 4, 4)
        self.blocks = nn.Sequential(
            GeneratorBlock(w4, w8),  # (N, w8, 8, 8)
            GeneratorBlock(w8, w16),  # (N, w16, 16, 16)
            GeneratorBlock(w16, w32),  # (N, w32, 32, 32)
        )
        self.bn = nn.BatchNorm2d(w32)
        self.out = _conv3x3(w32, 3)  # (N, 3, 32, 32), then tanh
        _init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.linear(z.flatten(1)).view(-1, self.widths[0], 4, 4)  # (N, w4, 4, 4)
        h = self.blocks(h)  # (N, w32, 32, 32)
        return torch.tanh(self.out(F.relu(self.bn(h))))  # (N, 3, 32, 32)

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.randn(n, self.latent_dim, 1, 1, generator=generator).to(device)


class DiscriminatorBlock(nn.Module):
    """(N, c_in, H, W) -> (N, c_out, H/2 or H, ...): pre-activation residual block, optional 2x2 average pool.

    ``first=True`` is SNGAN's "optimised" block for the image itself: no ReLU before the first
    convolution (the input is pixels), and the shortcut pools before its 1x1 convolution.
    """

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.downsample = downsample
        self.first = first
        self.conv1 = _conv3x3(c_in, c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        # A shortcut convolution only where the identity cannot be used.
        self.shortcut = _conv1x1(c_in, c_out) if (c_in != c_out or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv1(h)  # (N, c_out, H, W)
        h = self.conv2(F.relu(h))  # (N, c_out, H, W)
        if self.downsample:
            h = F.avg_pool2d(h, 2)  # (N, c_out, H/2, W/2)
        skip = x
        if self.first and self.shortcut is not None:  # the image's block always has one: 3 channels in
            skip = self.shortcut(F.avg_pool2d(skip, 2))  # pool, then 1x1: (N, c_out, H/2, W/2)
        elif self.shortcut is not None:
            skip = self.shortcut(skip)  # (N, c_out, H, W)
            if self.downsample:
                skip = F.avg_pool2d(skip, 2)  # (N, c_out, H/2, W/2)
        return h + skip


class ResNetDiscriminator(nn.Module):
    """image (N, 3, 32, 32) -> real/fake logit (N,). No normalisation layers (spectral norm is added outside)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.widths = (width,)
        self.blocks = nn.Sequential(
            DiscriminatorBlock(3, width, downsample=True, first=True),  # (N, w, 16, 16)
            DiscriminatorBlock(width, width, downsample=True),  # (N, w, 8, 8)
            DiscriminatorBlock(width, width, downsample=False),  # (N, w, 8, 8)
            DiscriminatorBlock(width, width, downsample=False),  # (N, w, 8, 8)
        )
        self.linear = nn.Linear(width, 1)  # (N, 1)
        _init_(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(image)).sum(dim=(2, 3))  # (N, w): SNGAN sums, not averages, over positions
        return self.linear(h).flatten()  # (N,) logits


def _init_(module: nn.Module) -> None:
    """Xavier-uniform weights (gain sqrt 2 in the residual paths, 1 for shortcuts and linear layers), zero biases.

    The initialisation of the public SNGAN / Mimicry CIFAR ResNets; ``GanConfig.dcgan_init``
    does not apply to these networks.
    """
    for name, layer in module.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            residual = isinstance(layer, nn.Conv2d) and layer.kernel_size == (3, 3) and not name.endswith("out")
            nn.init.xavier_uniform_(layer.weight, gain=math.sqrt(2) if residual else 1.0)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
