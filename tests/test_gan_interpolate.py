"""Latent paths: endpoints, norms, shapes, and rendering through a generator."""
from __future__ import annotations

import pytest
import torch

from effgen.gan import interpolate as I
from effgen.gan.models import Generator


def test_lerp_endpoints_and_midpoint() -> None:
    a, b = torch.zeros(4), torch.ones(4)
    path = I.lerp(a, b, 5)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert torch.allclose(path[2], torch.full((4,), 0.5))


def test_slerp_stays_on_the_shell() -> None:
    a, b = I.latent_pairs(1, 100, seed=0)
    path = I.slerp(a[0], b[0], 7)
    assert torch.allclose(path[0], a[0], atol=1e-5) and torch.allclose(path[-1], b[0], atol=1e-5)
    expected = torch.linspace(0, 1, 7) * (b[0].norm() - a[0].norm()) + a[0].norm()
    assert torch.allclose(path.norm(dim=1), expected, atol=1e-4)
    # the linear path's midpoint falls inside the shell; slerp's does not
    assert I.lerp(a[0], b[0], 7)[3].norm() < 0.85 * path[3].norm()


def test_slerp_of_parallel_vectors_is_the_line() -> None:
    a = torch.ones(3)
    assert torch.allclose(I.slerp(a, 2 * a, 3), I.lerp(a, 2 * a, 3))


def test_latents_shape_and_render() -> None:
    starts, ends = I.latent_pairs(2, 100, seed=1)
    latents = I.interpolation_latents(starts, ends, 5, "slerp")
    assert latents.shape == (10, 100, 1, 1)
    torch.manual_seed(0)
    generator = Generator().train()
    images = I.render_latents(generator, latents, "minus_one_one")
    assert images.shape == (10, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert generator.training  # the caller's mode is restored
    with pytest.raises(ValueError):
        I.interpolation_latents(starts, ends, 5, "cubic")
