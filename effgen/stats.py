"""Is a gap between two settings larger than seed noise? Student-t tests over a handful of seeds.

The chapters train each setting with 1-5 seeds. With so few, the normal approximation
("two standard errors") is far from its nominal 95%: the t critical value on 2 degrees of
freedom is 4.30, not 1.96. Every comparison here therefore uses Student's t with the actual
degrees of freedom, and says which test it ran:

- **paired t-test**, when both sides ran the same seeds. A seed fixes the initial weights and
  the batch order, so the per-seed differences remove that shared part of the noise; df = n - 1
  (``scipy.stats.ttest_rel``).
- **Welch's t-test** otherwise (different seeds, or different numbers of them), with the
  Welch-Satterthwaite degrees of freedom (``scipy.stats.ttest_ind(equal_var=False)``).

A test that cannot be run (one seed on a side, or seeds that agree exactly, so the noise
cannot be estimated) gives the verdict ``"cannot tell"`` and a reason, never a made-up p-value.
"""
from __future__ import annotations

import contextlib
import math
import statistics
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from scipy import stats as _scipy

from effgen.errors import EffgenError

LEVEL = 0.95  # confidence level of every interval; the test's two-sided alpha is 1 - LEVEL

# Verdicts, from the first side's point of view.
AHEAD, BEHIND, WITHIN, CANNOT = "yes", "no", "within noise", "cannot tell"


@dataclass(frozen=True)
class Comparison:
    """The difference ``a - b`` of two settings over seeds, and whether it is told from noise."""

    test: str  # "paired t-test", "Welch's t-test" or "none"
    n_a: int  # seeds of side a (the pairs, for a paired test)
    n_b: int
    mean_a: float
    mean_b: float
    diff: float  # mean of a minus mean of b (a paired test: the mean per-seed difference, the same number)
    se: float | None  # standard error of diff
    t: float | None
    df: float | None
    p: float | None  # two-sided
    ci: tuple[float, float] | None  # LEVEL confidence interval of diff
    level: float
    alpha: float  # the threshold p was held against (Bonferroni-adjusted where several tests ask one question)
    verdict: str  # AHEAD, BEHIND, WITHIN or CANNOT
    reason: str = ""  # why no test could be run; "" when one was

    @property
    def tested(self) -> bool:
        return self.p is not None

    def describe(self, unit: str = " points", digits: int = 2) -> str:
        """One clause for prose: the test, its numbers, or why there is none."""
        if not self.tested:
            return f"no test is possible: {self.reason}"
        low, high = self.ci  # type: ignore[misc]
        df = f"{self.df:.0f}" if float(self.df).is_integer() else f"{self.df:.1f}"  # type: ignore[arg-type]
        seeds = (f"{self.n_a} seed pairs" if self.test == "paired t-test"
                 else f"{self.n_a} and {self.n_b} seeds")
        return (f"{self.test} over {seeds}: difference {self.diff:+.{digits}f}{unit}, "
                f"{self.level:.0%} CI [{low:+.{digits}f}, {high:+.{digits}f}], "
                f"t = {self.t:.2f} on {df} df, {p_clause(self.p)}")  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_p(p: float) -> str:
    """p to two significant digits, or "< 0.001"."""
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def p_clause(p: float) -> str:
    """"p = 0.046", or "p < 0.001" (never "p = < 0.001")."""
    text = format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


@dataclass(frozen=True)
class Prediction:
    """Where one new run of a setting should fall, given ``n`` earlier seeds of it."""

    n: int
    mean: float
    low: float
    high: float
    level: float

    def place(self, value: float) -> str:
        """"inside", "above" or "below" the interval."""
        return "above" if value > self.high else "below" if value < self.low else "inside"


def prediction_interval(values: Sequence[float], level: float = LEVEL) -> Prediction | None:
    """The ``level`` prediction interval for one more seed: mean ± t(n-1) · s · sqrt(1 + 1/n).

    It asks whether a single run of a changed setting falls where another seed of the unchanged one
    would: the one-seed comparison that a t-test cannot make. None with fewer than 2 values.
    """
    values = _values(values, "values")
    if len(values) < 2:
        return None
    level, _ = _level(level, None)
    n, mean, sd = len(values), statistics.fmean(values), statistics.stdev(values)
    half = float(_scipy.t.ppf(0.5 + level / 2, n - 1)) * sd * math.sqrt(1 + 1 / n)
    return Prediction(n, mean, mean - half, mean + half, level)


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL, alpha: float | None = None) -> Comparison:
    """Welch's unequal-variance t-test of mean(a) - mean(b), df from Welch-Satterthwaite."""
    a, b = _values(a, "a"), _values(b, "b")
    level, alpha = _level(level, alpha)
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    diff = mean_a - mean_b
    if len(a) < 2 or len(b) < 2:
        return _untested("Welch's t-test", len(a), len(b), mean_a, mean_b, level, alpha,
                         _one_seed_reason(len(a), len(b)))
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    if se == 0.0:
        return _untested("Welch's t-test", len(a), len(b), mean_a, mean_b, level, alpha,
                         "every seed gave the same result on both sides, so the seed noise cannot be estimated")
    with _quiet():
        result = _scipy.ttest_ind(a, b, equal_var=False)
    return _tested("Welch's t-test", len(a), len(b), mean_a, mean_b, diff, se, result, level, alpha)


def paired(a: Sequence[float], b: Sequence[float], level: float = LEVEL, alpha: float | None = None) -> Comparison:
    """Paired t-test of the per-seed differences a[i] - b[i] (the same seed at index i on both sides)."""
    a, b = _values(a, "a"), _values(b, "b")
    if len(a) != len(b):
        raise EffgenError(f"a paired test needs the same seeds on both sides, got {len(a)} and {len(b)} values")
    level, alpha = _level(level, alpha)
    mean_a, mean_b = statistics.fmean(a), statistics.fmean(b)
    diffs = [x - y for x, y in zip(a, b)]
    if len(diffs) < 2:
        return _untested("paired t-test", len(a), len(b), mean_a, mean_b, level, alpha,
                         _one_seed_reason(len(a), len(b)))
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    if se == 0.0:
        return _untested("paired t-test", len(a), len(b), mean_a, mean_b, level, alpha,
                         "the per-seed differences are all equal, so the seed noise cannot be estimated")
    with _quiet():
        result = _scipy.ttest_rel(a, b)
    return _tested("paired t-test", len(a), len(b), mean_a, mean_b, statistics.fmean(diffs), se, result,
                   level, alpha)


SeedKey = TypeVar("SeedKey", int, str)  # a seed as trained (int) or as read back from JSON (str)


def compare_seeds(a: Mapping[SeedKey, float], b: Mapping[SeedKey, float], level: float = LEVEL,
                  alpha: float | None = None) -> Comparison:
    """Compare two settings given as {seed: value}: paired when both ran the same seeds, else Welch.

    The choice follows the design (which seeds ran), never the data, so it cannot be tuned to
    give the smaller p-value.
    """
    if not a or not b:
        raise EffgenError("each side of a comparison needs at least one seed")
    if set(a) == set(b):
        seeds = sorted(a)
        return paired([a[s] for s in seeds], [b[s] for s in seeds], level, alpha)
    return welch(list(a.values()), list(b.values()), level, alpha)


def _tested(test: str, n_a: int, n_b: int, mean_a: float, mean_b: float, diff: float, se: float, result: Any,
            level: float, alpha: float) -> Comparison:
    """A Comparison from scipy's two-sided t-test ``result`` (t, df, p and its ``level`` interval)."""
    p = float(result.pvalue)
    low, high = result.confidence_interval(confidence_level=level)
    verdict = WITHIN if p >= alpha else (AHEAD if diff > 0 else BEHIND)
    return Comparison(test=test, n_a=n_a, n_b=n_b, mean_a=mean_a, mean_b=mean_b, diff=diff, se=se,
                      t=float(result.statistic), df=float(result.df), p=p, ci=(float(low), float(high)),
                      level=level, alpha=alpha, verdict=verdict)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence scipy's "precision loss ... nearly identical" warning: seeds that agree to many digits on one
    side are a result here, not a mistake, and the warning would land in a chapter's output."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        yield


def _untested(test: str, n_a: int, n_b: int, mean_a: float, mean_b: float, level: float, alpha: float,
              reason: str) -> Comparison:
    return Comparison(test="none", n_a=n_a, n_b=n_b, mean_a=mean_a, mean_b=mean_b, diff=mean_a - mean_b,
                      se=None, t=None, df=None, p=None, ci=None, level=level, alpha=alpha, verdict=CANNOT,
                      reason=reason)


def _one_seed_reason(n_a: int, n_b: int) -> str:
    return (f"with {min(n_a, n_b)} seed on one side there is no spread between seeds to set the gap against"
            if min(n_a, n_b) == 1 else "no seeds to compare")


def _values(values: Sequence[float], side: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise EffgenError(f"side {side} of a comparison has no values")
    if any(not math.isfinite(v) for v in out):
        raise EffgenError(f"side {side} of a comparison holds a non-finite value: {out}")
    return out


def _level(level: float, alpha: float | None) -> tuple[float, float]:
    if not 0.0 < level < 1.0:
        raise EffgenError(f"confidence level {level} must lie strictly between 0 and 1")
    alpha = round(1.0 - level, 12) if alpha is None else alpha  # 0.05, not 0.050000000000000044
    if not 0.0 < alpha < 1.0:
        raise EffgenError(f"alpha {alpha} must lie strictly between 0 and 1")
    return level, alpha


def leave_one_out(changes: Mapping[str, float], metric: str = "FID", lower_is_better: bool = True,
                  digits: int = 1) -> str:
    """One sentence on a leave-one-out ablation: ``changes[piece]`` is the metric without the piece minus
    the metric with everything, so for a lower-is-better metric a positive change means the piece helped.
    Changes are shown with ``digits`` decimals (one: a one-seed FID's precision).

    The sentence is built from the signs, so it cannot call a piece the costliest when every removal helped.
    """
    if not changes:
        return ""
    sign = 1.0 if lower_is_better else -1.0
    helped = {piece: change for piece, change in changes.items() if sign * change > 0}
    hurt = {piece: change for piece, change in changes.items() if sign * change < 0}

    def extreme(group: dict[str, float], verb: str, role: str) -> str:
        most = max(group, key=lambda piece: abs(group[piece]))
        if len(group) == 1:
            return f"only removing {most} {verb} the {metric} ({group[most]:+.{digits}f}), so {role}"
        return f"removing {most} {verb} the {metric} most ({group[most]:+.{digits}f}), so {role} most"

    parts = []
    if helped:
        parts.append(extreme(helped, "worsens", "it helps"))
    if hurt:
        parts.append(extreme(hurt, "improves", "it hurts"))
    total, better = len(changes), len(hurt)
    tally = (f"{len(helped)} of the {total} removals make the {metric} worse and {better} "
             f"{'makes' if better == 1 else 'make'} it better"
             + ("; every removal improves it, so the full recipe is the worst of the runs" if better == total else
                "; every removal worsens it, so each piece earns its place" if len(helped) == total else ""))
    sentence = "; ".join(parts + [tally])
    return sentence[0].upper() + sentence[1:] + "."
