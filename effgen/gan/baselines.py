"""The two designs the paper tried and dismissed before settling on DCGAN + StepLR (§4).

* A fully connected GAN: the "original GAN" whose samples the author found too noisy.
* A WGAN-GP critic [Gulrajani et al. 2017]: the paper's DCGAN discriminator with its
  BatchNorm swapped for a per-sample layer norm, because the gradient penalty is defined per
  sample and batch statistics would couple the samples. It keeps the DCGAN generator, so
  G + critic has exactly the DCGAN's 967,072 parameters.

Both fit the paper's < 1,000,000-parameter budget; the training loop in ``effgen.gan.loop``
runs them through the same data, logging and checkpointing as the DCGAN recipes.
"""
from __future__ import annotations

import torch
from torch import nn

from effgen.gan.models import LATENT_DIM

IMAGE_SHAPE = (3, 32, 32)
IMAGE_PIXELS = 3 * 32 * 32


class FCGenerator(nn.Module):
    """z (N, 100) -> image (N, 3, 32, 32) in [-1, 1], through two hidden layers."""

    def __init__(self, latent_dim: int = LATENT_DIM, hidden: tuple[int, int] = (128, 128)) -> None:
        super().__init__()
        h1, h2 = hidden
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.net = nn.Sequential(
            nn.Linear(latent_dim, h1),  # (N, 128)
            nn.ReLU(inplace=True),
            nn.Linear(h1, h2),  # (N, 128)
            nn.ReLU(inplace=True),
            nn.Linear(h2, IMAGE_PIXELS),  # (N, 3072)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.flatten(1)).view(-1, *IMAGE_SHAPE)  # (N, 3, 32, 32)

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.randn(n, self.latent_dim, 1, 1, generator=generator).to(device)


class FCDiscriminator(nn.Module):
    """image (N, 3, 32, 32) -> real/fake logit (N,)."""

    def __init__(self, hidden: tuple[int, int] = (128, 64), slope: float = 0.2) -> None:
        super().__init__()
        h1, h2 = hidden
        self.net = nn.Sequential(
            nn.Flatten(),  # (N, 3072)
            nn.Linear(IMAGE_PIXELS, h1),  # (N, 128)
            nn.LeakyReLU(slope, inplace=True),
            nn.Linear(h1, h2),  # (N, 64)
            nn.LeakyReLU(slope, inplace=True),
            nn.Linear(h2, 1),  # (N, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).flatten()  # (N,)


class LayerNormCritic(nn.Module):
    """The DCGAN discriminator with layer norm (GroupNorm with one group) for WGAN-GP.

    image (N, 3, 32, 32) -> unbounded critic score (N,).
    """

    def __init__(self, widths: tuple[int, int, int] = (64, 128, 256), slope: float = 0.2) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.net = nn.Sequential(
            nn.Conv2d(3, w1, 4, 2, 1, bias=False),  # (N, 64, 16, 16)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w1, w2, 4, 2, 1, bias=False),  # (N, 128, 8, 8)
            nn.GroupNorm(1, w2),  # normalises each sample over (C, H, W)
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w2, w3, 4, 2, 1, bias=False),  # (N, 256, 4, 4)
            nn.GroupNorm(1, w3),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(w3, 1, 4, 1, 0, bias=False),  # (N, 1, 1, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).flatten()  # (N,)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """Mean of (||grad critic(x_hat)|| - 1)^2 at random points between real and fake samples.

    ``generator`` draws the mixing weights on the CPU, so a resumed run mixes identically.
    """
    mix = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    between = (mix * real + (1 - mix) * fake.detach()).requires_grad_(True)
    scores = critic(between)
    (grads,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
