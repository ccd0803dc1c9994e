"""What a GAN's losses do not say: how far D separates, if it overfits, how hard each net is pushed.

Logged every ``diagnostics_every`` steps into ``diagnostics.csv`` (one row each), after the
step's updates, on the step's own batches:

* ``d_real`` and ``d_fake``: D's mean raw output (logit, or hinge/WGAN score) on the step's
  training images and generated images, and ``d_gap`` = ``d_real - d_fake``. A hinge D whose
  gap stays far below its margin of 1 is too weak to teach G anything.
* ``d_test``: D's mean raw output on a fixed batch of held-out images (NaN when the caller gave
  none). ``d_real - d_test`` growing means D memorises the training images.
* ``lr_g``, ``lr_d``: the rates the step used.
* ``grad_norm_g``, ``grad_norm_d``: the L2 norm of all of G's (D's) weight gradients of the step.

D runs in train mode, as it trains, on the images as they are (no DiffAugment). Its buffers
(BatchNorm running statistics, spectral norm's power-iteration vectors) are restored afterwards,
and no random stream is drawn from, so a run with diagnostics trains exactly as one without.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

DIAGNOSTIC_COLUMNS = ("step", "d_real", "d_fake", "d_gap", "d_test", "lr_g", "lr_d",
                      "grad_norm_g", "grad_norm_d")


def gradient_norm(module: nn.Module) -> float:
    """L2 norm of every parameter gradient of ``module`` together (0.0 when there is none)."""
    grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


@contextmanager
def buffers_kept(module: nn.Module) -> Iterator[None]:
    """Run a block that may update ``module``'s buffers, then put every buffer back as it was."""
    saved = [(buffer, buffer.detach().clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


@torch.no_grad()
def mean_output(discriminator: nn.Module, images: torch.Tensor | None) -> float:
    """D's mean raw output on ``images`` in train mode, its buffers untouched; NaN for None."""
    if images is None:
        return math.nan
    with buffers_kept(discriminator):
        return float(discriminator(images).float().mean())


def diagnostics_row(step: int, discriminator: nn.Module, generator: nn.Module, real: torch.Tensor,
                    fake: torch.Tensor, held_out: torch.Tensor | None,
                    rates: tuple[float, float]) -> tuple[float, ...]:
    """One row of ``DIAGNOSTIC_COLUMNS`` for step ``step`` (1-based), after its updates."""
    d_real = mean_output(discriminator, real)
    d_fake = mean_output(discriminator, fake.detach())
    return (float(step), d_real, d_fake, d_real - d_fake, mean_output(discriminator, held_out),
            rates[0], rates[1], gradient_norm(generator), gradient_norm(discriminator))


HINGE_MARGIN = 1.0
CONSTANT_HINGE_LOSS = 2.0  # a hinge D whose output is a constant c scores max(0, 1 - c) + max(0, 1 + c) >= 2
WEAK_GAP = 0.25 * HINGE_MARGIN  # a real-minus-generated gap below a quarter of the margin: D barely separates


def hinge_reading(loss_d: float, gap: float) -> str:
    """What a hinge D's mean loss and mean real-minus-generated output gap over a stretch of training say
    about it, as a sentence for the book (it starts with "D's"): weak (gap below ``WEAK_GAP``) or separating."""
    numbers = (f"D's hinge loss averages {loss_d:.2f} (a D whose output is constant scores "
               f"{CONSTANT_HINGE_LOSS:.2f}) and its mean output on real images exceeds that on generated ones by "
               f"{gap:.3f}, against a hinge margin of {HINGE_MARGIN:.0f}")
    if gap < WEAK_GAP:
        return f"{numbers}: D barely separates real from generated images, so it teaches G little."
    return f"{numbers}: D does separate the two, so a weak D is not what the history shows."
