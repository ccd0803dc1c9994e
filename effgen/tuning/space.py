"""The search space, and the rule that narrows it from one round to the next.

The paper narrowed its Optuna search space "after every fifty trials" by hand. Here a round
is ``trials_per_round`` finished trials, and the next round's bounds follow from the best
trials of the round before by a fixed rule (:func:`narrow`), so the narrowing is reproducible
and can be tested. Everything here is pure: no Optuna study, no training.

The rule, per numeric dimension, in log space for ``log`` dimensions:

1. take the ``k`` best complete trials of the last round, ``k = max(min_top, ceil(top_fraction * n))``
   with ``n`` its complete trials (all of them when ``n < min_top``; no narrowing when ``n == 0``);
2. span their values, and pad that span by ``margin`` times the old width on each side;
3. widen it symmetrically to at least ``min_keep`` times the old width;
4. shift it, without changing its width, to lie inside the old bounds (cut it only if wider).

Bounds therefore never grow, a round never leaves the previous round's box, and a dimension
whose best trials disagree keeps (almost) its whole width.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import optuna

from effgen.errors import ParamsError

# Classifier settings a study may search; the rest of ClassifierConfig is held fixed. The SE
# reduction ratio is left out: it must divide the channel counts (a power of two), ratios below
# the paper's 4 break the 100,000-parameter limit, and larger ones only shrink the model.
TUNABLE: dict[str, type] = {
    "lr": float,
    "weight_decay": float,
    "dropout": float,
    "batch_size": int,
    # the training recipe of chapter 06 (effgen.classifier.recipe); lr_schedule, a choice, is held fixed
    "label_smoothing": float,
    "ema_decay": float,
    "augment_rotate": float,
    "augment_translate": float,
}


@dataclass(frozen=True)
class Bound:
    """One dimension of the search space: ``[low, high]``, sampled log-uniformly when ``log``."""

    name: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            problems.append(f"needs finite low <= high, got [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            problems.append(f"is log-scaled, so low must be > 0, got {self.low}")
        if self.integer and (self.low != int(self.low) or self.high != int(self.high)):
            problems.append(f"is an integer, so its bounds must be whole numbers, got [{self.low}, {self.high}]")
        if problems:
            raise ParamsError(f"search space {self.name!r} " + " and ".join(problems))

    def to_unit(self, value: float) -> float:
        """The coordinate the narrowing works in: log for log dimensions."""
        return math.log(value) if self.log else float(value)

    def from_unit(self, value: float) -> float:
        return math.exp(value) if self.log else value

    @property
    def width(self) -> float:
        return self.to_unit(self.high) - self.to_unit(self.low)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.integer:
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def suggest(self, trial: optuna.Trial) -> float | int:
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SearchSpace = dict[str, Bound]


def parse_space(spec: Mapping[str, Any]) -> SearchSpace:
    """``{"lr": {"low": 1e-4, "high": 3e-2, "log": true}, ...}`` -> bounds, checked against TUNABLE."""
    if not isinstance(spec, Mapping) or not spec:
        raise ParamsError(f"space must be a non-empty mapping of parameter -> {{low, high, log}}, got {spec!r}")
    space: SearchSpace = {}
    for name, entry in spec.items():
        if name not in TUNABLE:
            raise ParamsError(f"space: {name!r} cannot be tuned; choose from {', '.join(TUNABLE)}")
        if not isinstance(entry, Mapping):
            raise ParamsError(f"space: {name!r} must be a mapping with low, high and optionally log")
        unknown = sorted(set(entry) - {"low", "high", "log"})
        if unknown or "low" not in entry or "high" not in entry:
            raise ParamsError(f"space: {name!r} takes keys low, high, log; got {sorted(entry)}")
        low, high, log = entry["low"], entry["high"], entry.get("log", False)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise ParamsError(f"space: {name!r} low and high must be numbers, got {low!r}, {high!r}")
        if not isinstance(log, bool):
            raise ParamsError(f"space: {name!r} log must be true or false, got {log!r}")
        space[name] = Bound(name, float(low), float(high), log, integer=TUNABLE[name] is int)
    return space


def space_to_dict(space: SearchSpace) -> dict[str, dict[str, Any]]:
    return {name: {"low": b.low, "high": b.high, "log": b.log} for name, b in space.items()}


@dataclass(frozen=True)
class NarrowingRule:
    """The constants of :func:`narrow` (see the module docstring for the rule itself)."""

    top_fraction: float = 0.2
    min_top: int = 3
    margin: float = 0.05
    min_keep: float = 0.25

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.top_fraction <= 1:
            problems.append(f"top_fraction {self.top_fraction} must be in (0, 1]")
        if self.min_top < 1:
            problems.append(f"min_top {self.min_top} must be >= 1")
        if not 0 <= self.margin <= 1:
            problems.append(f"margin {self.margin} must be in [0, 1]")
        if not 0 < self.min_keep <= 1:
            problems.append(f"min_keep {self.min_keep} must be in (0, 1]")
        if problems:
            raise ParamsError("narrowing rule: " + "; ".join(problems))

    def n_top(self, n_complete: int) -> int:
        return min(n_complete, max(self.min_top, math.ceil(self.top_fraction * n_complete)))


def top_trials(values: Sequence[float], rule: NarrowingRule, maximize: bool = True) -> list[int]:
    """Indices of the ``k`` best values (ties keep the earlier trial first)."""
    order = sorted(range(len(values)), key=lambda i: (-values[i] if maximize else values[i], i))
    return order[: rule.n_top(len(values))]


def narrow_bound(bound: Bound, top_values: Sequence[float], rule: NarrowingRule) -> Bound:
    """Steps 2-4 of the rule for one dimension, given the values of the best trials."""
    if not top_values:
        return bound
    old_low, old_high = bound.to_unit(bound.low), bound.to_unit(bound.high)
    width = old_high - old_low
    units = [bound.to_unit(v) for v in top_values]
    low = min(units) - rule.margin * width
    high = max(units) + rule.margin * width
    short = rule.min_keep * width - (high - low)
    if short > 0:
        low, high = low - short / 2, high + short / 2
    if high - low >= width:
        return bound
    if low < old_low:
        low, high = old_low, old_low + (high - low)
    elif high > old_high:
        low, high = old_high - (high - low), old_high
    # An edge that lands on the old one keeps its exact value (no exp(log(x)) round-off).
    new_low = bound.low if low <= old_low else bound.from_unit(low)
    new_high = bound.high if high >= old_high else bound.from_unit(high)
    if bound.integer:
        # Round outwards so the best trials' values stay inside, then back into the old box.
        new_low = max(bound.low, math.floor(new_low + 1e-9))
        new_high = min(bound.high, math.ceil(new_high - 1e-9))
    else:
        new_low, new_high = max(bound.low, new_low), min(bound.high, new_high)
    return Bound(bound.name, float(new_low), float(new_high), bound.log, bound.integer)


def narrow(space: SearchSpace, trials: Sequence[tuple[Mapping[str, Any], float]], rule: NarrowingRule,
           maximize: bool = True) -> SearchSpace:
    """The next round's space from the last round's complete trials ``[(params, value), ...]``."""
    if not trials:
        return dict(space)
    best = [trials[i][0] for i in top_trials([value for _, value in trials], rule, maximize)]
    return {name: narrow_bound(bound, [p[name] for p in best if name in p], rule)
            for name, bound in space.items()}
