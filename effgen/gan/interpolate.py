"""Paths through the generator's latent space: linear and spherical interpolation.

A 100-d Gaussian latent has norm close to sqrt(100) = 10 almost surely; the straight line between
two such points passes through lower-norm latents the generator rarely saw (the midpoint of two
independent draws has norm ~7). Spherical interpolation (slerp) keeps the norm on the shell.
"""
from __future__ import annotations

from pathlib import Path

import torch


def lerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """(D,), (D,) -> (steps, D): evenly spaced points on the segment from ``a`` to ``b``."""
    t = torch.linspace(0, 1, steps, dtype=a.dtype)[:, None]  # (steps, 1)
    return (1 - t) * a.flatten() + t * b.flatten()


def slerp(a: torch.Tensor, b: torch.Tensor, steps: int, eps: float = 1e-7) -> torch.Tensor:
    """(D,), (D,) -> (steps, D): points along the great-circle arc, with the norm interpolated linearly."""
    a, b = a.flatten(), b.flatten()
    norm_a, norm_b = a.norm(), b.norm()
    cos = torch.clamp((a @ b) / (norm_a * norm_b + eps), -1.0, 1.0)
    omega = torch.arccos(cos)
    t = torch.linspace(0, 1, steps, dtype=a.dtype)[:, None]  # (steps, 1)
    if omega.abs() < 1e-4:  # (anti-)parallel directions: the arc is a line
        return lerp(a, b, steps)
    direction = (torch.sin((1 - t) * omega) * (a / norm_a) + torch.sin(t * omega) * (b / norm_b)) / torch.sin(omega)
    return direction * ((1 - t) * norm_a + t * norm_b)


def latent_pairs(n_pairs: int, latent_dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed endpoints: two (n_pairs, latent_dim) Gaussian draws from one seeded generator."""
    rng = torch.Generator().manual_seed(seed)
    starts = torch.randn(n_pairs, latent_dim, generator=rng)
    ends = torch.randn(n_pairs, latent_dim, generator=rng)
    return starts, ends


def interpolation_latents(starts: torch.Tensor, ends: torch.Tensor, steps: int,
                          method: str = "slerp") -> torch.Tensor:
    """(P, D), (P, D) -> (P * steps, D, 1, 1): one row of ``steps`` latents per pair, ready for G."""
    path = {"lerp": lerp, "slerp": slerp}.get(method)
    if path is None:
        raise ValueError(f"unknown interpolation {method!r}; choose lerp or slerp")
    rows = [path(a, b, steps) for a, b in zip(starts, ends)]
    return torch.cat(rows)[:, :, None, None]


@torch.no_grad()
def render_latents(generator: torch.nn.Module, latents: torch.Tensor, output_range: str,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Latents -> images in [0, 1] on the CPU, with G in eval mode (running BatchNorm statistics)."""
    from effgen.gan.sampling import to_unit_range

    was_training = generator.training
    generator.eval()
    try:
        images = generator(latents.to(device)).float()
    finally:
        generator.train(was_training)
    return to_unit_range(images, output_range).cpu()


def checkpoint_output_range(path: Path) -> str:
    """How a saved generator's output maps to pixels ("minus_one_one" or "zero_one", from its metadata)."""
    from effgen.gan.generator_files import generator_extra

    return str(generator_extra(path).get("output_range", "minus_one_one"))
