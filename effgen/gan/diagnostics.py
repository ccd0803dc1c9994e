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
from dataclasses import dataclass

import pandas as pd
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


@dataclass(frozen=True)
class Memorisation:
    """D's output on its training batch minus that on held-out test images, over a run's last stretch."""

    first_step: int  # the stretch: rows that logged d_test, from first_step to last_step
    last_step: int
    rows: int
    train_minus_test: float  # mean over the rows
    ci: tuple[float, float] | None  # 95 % paired t-interval; None with fewer than two rows or all alike
    gap: float  # mean d_gap (training minus generated) over the same rows, for scale
    logged_from: int  # the first step at which d_test was logged at all


SMALL_SHARE = 0.1  # memorisation bounded below this share of D's real-minus-generated gap reads as negligible


def memorisation(diagnostics: pd.DataFrame, last_fraction: float = 0.25) -> Memorisation | None:
    """``Memorisation`` over the steps in the last ``last_fraction`` of the run that logged ``d_test``; None
    if none did."""
    if "d_test" not in diagnostics or diagnostics.empty:
        return None
    logged = diagnostics.dropna(subset=["d_test"])
    late = logged[logged["step"] >= (1 - last_fraction) * diagnostics["step"].max()]
    if late.empty:
        return None
    # imported here: the training loop imports this module and needs no scipy
    from effgen.stats import paired

    # a paired t-interval over the logged steps: each step pairs the training batch with the held-out one
    compared = paired(late["d_real"].tolist(), late["d_test"].tolist())
    return Memorisation(int(late["step"].min()), int(late["step"].max()), len(late), compared.diff, compared.ci,
                        float(late["d_gap"].mean()), int(logged["step"].min()))


def memorisation_reading(found: Memorisation | None, every: int) -> str:
    """What ``memorisation`` says, as sentences for the book; ``every``: the run's ``diagnostics_every``."""
    if found is None:
        return "This run did not log D's output on held-out images, so it cannot show whether D memorises."
    logged = (f" (the run logged it from step {found.logged_from:,} on, every {every:,} steps)"
              if found.logged_from > every else "")
    interval = (f" (95 % CI [{found.ci[0]:+.2f}, {found.ci[1]:+.2f}] over {found.rows} logged steps)"
                if found.ci else f" ({found.rows} logged steps, too few or too alike for an interval)")
    numbers = (f"From step {found.first_step:,} to {found.last_step:,}{logged}, D's mean output on its training batch "
               f"minus that on a fixed batch of held-out test images is "
               f"{found.train_minus_test:+.2f}{interval}, while it separates training from generated images by "
               f"{found.gap:.2f}. D has just been updated on that training batch, so the difference leans towards "
               "memorisation. ")
    if found.ci is None:
        return numbers + "The logged steps cannot tell whether D scores training images above unseen ones."
    low, high = found.ci
    if low > 0:
        return numbers + ("D scores training images above unseen ones: it has begun to memorise the training set, "
                          "the condition that DiffAugment treats.")
    if high < 0:
        return numbers + "D scores unseen test images above its training batch: no sign that it memorises."
    if high < SMALL_SHARE * found.gap:
        return numbers + (f"D scores training and unseen images alike, to within {high:.2f}, less than "
                          f"{SMALL_SHARE:.0%} of its gap: whatever it memorises is small beside how easily it tells "
                          "generated images apart. These diagnostics do not point to over-fitting, the condition "
                          "DiffAugment treats.")
    return numbers + "The logged steps cannot tell whether D scores training images above unseen ones."


# The panels chapter 06 plots for a run's diagnostics: (column, title); ``with_train_minus_test`` adds the second.
DIAGNOSTIC_PANELS = (("d_gap", "D gap (train - fake)"), ("d_train_minus_test", "D: train - held-out"),
                     ("grad_norm_g", "|grad G|"), ("grad_norm_d", "|grad D|"))


def with_train_minus_test(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """``diagnostics`` with ``d_train_minus_test``: D's output on its training batch minus that on held-out images."""
    return diagnostics.assign(d_train_minus_test=diagnostics["d_real"] - diagnostics["d_test"])
