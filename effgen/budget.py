"""The paper's limits, enforced before compute starts and reported beside every result."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from effgen.errors import BudgetError


@dataclass(frozen=True)
class Limits:
    max_params: int  # strict: params must be < max_params
    max_steps: int  # inclusive: steps must be <= max_steps
    batch_size: int = 64  # the paper's batch: max_steps x batch_size images is the data a run may see

    @property
    def max_images(self) -> int:
        return self.max_steps * self.batch_size


CLASSIFIER_LIMITS = Limits(max_params=100_000, max_steps=10_000)
GAN_LIMITS = Limits(max_params=1_000_000, max_steps=50_000)


@dataclass(frozen=True)
class BudgetReport:
    params: int
    steps: int
    max_params: int
    max_steps: int
    over_budget: bool
    reason: str  # why an over-budget run was allowed, "" otherwise
    # Images seen (steps x batch) against the paper's steps x 64: a larger batch keeps the step limit
    # but spends more data and compute per step, so such a run is marked, not refused.
    images: int | None = None
    max_images: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def more_images(self) -> bool:
        return self.images is not None and self.max_images is not None and self.images > self.max_images

    @property
    def flag(self) -> str:
        """Marker for tables: a dagger when over the limits on purpose, a double dagger when within the
        step limit but over the paper's images seen (a larger batch), empty otherwise."""
        return "†" if self.over_budget else "‡" if self.more_images else ""


def count_params(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def check_budget(params: int, steps: int, limits: Limits, over_budget_reason: str = "",
                 batch_size: int | None = None) -> BudgetReport:
    """Raise ``BudgetError`` unless the run fits ``limits`` or states why it may exceed them.

    The paper's scalability runs (20k steps, a fourth IR block) break the limits deliberately;
    they pass a non-empty ``over_budget_reason`` and every table marks them. ``batch_size`` records the
    images the run sees, which the report compares with the paper's ``max_steps x batch_size``.
    """
    problems = []
    if params >= limits.max_params:
        problems.append(f"{params:,} parameters (limit < {limits.max_params:,})")
    if steps > limits.max_steps:
        problems.append(f"{steps:,} steps (limit <= {limits.max_steps:,})")
    if problems and not over_budget_reason:
        raise BudgetError(
            "over the paper's budget: " + " and ".join(problems)
            + "; set over_budget_reason to run it deliberately"
        )
    return BudgetReport(
        params=params,
        steps=steps,
        max_params=limits.max_params,
        max_steps=limits.max_steps,
        over_budget=bool(problems),
        reason=over_budget_reason if problems else "",
        images=steps * batch_size if batch_size is not None else None,
        max_images=limits.max_images if batch_size is not None else None,
    )
