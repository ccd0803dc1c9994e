"""The paper's limits, enforced before compute starts and reported beside every result, and where a
model's parameters sit (``layer_table``)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

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


def layer_table(model: nn.Module, input_shape: tuple[int, ...], names: list[str] | None = None,
                describe: Callable[[nn.Module], str] | None = None) -> list[dict[str, Any]]:
    """One row per layer: its dotted name, ``type``, ``output`` shape for one input (without the batch
    dimension) and ``params`` count.

    ``names`` picks the modules, in that order; by default every leaf layer, in the order the forward
    pass first reaches it. ``type`` is ``describe(layer)``, by default :func:`describe_layer`. Measured by
    one forward pass on zeros of ``input_shape`` (batch dimension included) with hooks; the model's
    train/eval mode is restored.
    """
    modules = dict(model.named_modules())
    if unknown := [name for name in names or () if name not in modules]:
        raise ValueError(f"no module named {unknown} in {type(model).__name__}")
    watched = names if names is not None else [name for name, module in modules.items()
                                               if not any(True for _ in module.children())]
    shapes: dict[str, tuple[int, ...]] = {}  # filled in the order the forward pass reaches the layers

    def record(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            shapes.setdefault(name, tuple(output.shape[1:]))  # returning a value would replace the output
        return hook

    hooks = [modules[name].register_forward_hook(record(name)) for name in watched]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, device=next(model.parameters()).device))
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    describe = describe or describe_layer
    return [{"layer": name, "type": describe(modules[name]), "output": shapes[name],
             "params": count_params(modules[name])} for name in (names if names is not None else shapes)]


def describe_layer(layer: nn.Module) -> str:
    """A short label: ``ConvTranspose2d 100->96, k4 s1 p0``, ``BatchNorm2d 96``, ``LeakyReLU 0.2``"""
    kind = type(layer).__name__
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        return (f"{kind} {layer.in_channels}->{layer.out_channels}, k{layer.kernel_size[0]} "
                f"s{layer.stride[0]} p{layer.padding[0]}")
    if isinstance(layer, nn.BatchNorm2d):
        return f"{kind} {layer.num_features}"
    if isinstance(layer, nn.GroupNorm):
        return f"{kind} {layer.num_groups} group, {layer.num_channels}"
    if isinstance(layer, nn.Linear):
        return f"{kind} {layer.in_features}->{layer.out_features}"
    if isinstance(layer, nn.LeakyReLU):
        return f"{kind} {layer.negative_slope:g}"
    return kind


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
