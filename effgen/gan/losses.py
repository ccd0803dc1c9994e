"""The hinge GAN objective [Lim & Ye 2017; Miyato et al. 2018], on raw discriminator outputs.

D minimises E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]; G minimises -E[D(G(z))]. The
discriminator stops pushing a sample once it is classified with margin 1, which keeps its
outputs bounded where the BCE objective would keep sharpening them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_loss(real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
    """mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))."""
    return F.relu(1.0 - real_out).mean() + F.relu(1.0 + fake_out).mean()


def hinge_g_loss(fake_out: torch.Tensor) -> torch.Tensor:
    """-mean(D(G(z)))."""
    return -fake_out.mean()
