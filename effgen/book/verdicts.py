"""Verdicts on a claim from seeds: is a gap beyond seed noise, and if not, how many seeds would tell?

``effgen.stats`` runs the tests (paired or Welch t, prediction intervals); this module turns their
outcome into one of the summary page's verdict words, and adds the power rule that says how many
seeds a "cannot tell" would need.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scipy import stats as _scipy

from effgen import stats
from effgen.book.summary import fixed
from effgen.errors import EffgenError

HOLDS, PARTLY, FAILS = "holds", "partly", "does not hold"
CANNOT_TELL, UNTESTABLE = "cannot tell", "cannot be tested here"
VERDICTS = (HOLDS, PARTLY, FAILS, CANNOT_TELL, UNTESTABLE)
POWER = 0.8  # the power at which seeds_needed would detect the observed gap
MAX_SEEDS = 200  # beyond this many seeds per setting the answer is "more than"


def seeds_needed(diff: float, spread: float, paired: bool, level: float = stats.LEVEL,
                 power: float = POWER) -> int | None:
    """Seeds per setting at which a two-sided t-test at ``1 - level`` detects ``diff`` with ``power``.

    The observed gap and spread are taken as the truth: the smallest n with
    |diff| / (spread * sqrt(k / n)) >= t(1 - alpha/2, df) + t(power, df), where k = 1 and df = n - 1 for
    a paired design (``spread`` = the standard deviation of per-seed differences) and k = 2, df = 2n - 2
    otherwise (``spread`` = the pooled standard deviation). None when no n up to MAX_SEEDS would do, or
    when the gap or the spread is zero or unknown.
    """
    if not (math.isfinite(diff) and math.isfinite(spread)) or diff == 0 or spread <= 0:
        return None
    k = 1 if paired else 2
    for n in range(2, MAX_SEEDS + 1):
        df = n - 1 if paired else 2 * n - 2
        needed = float(_scipy.t.ppf(0.5 + level / 2, df) + _scipy.t.ppf(power, df))
        if abs(diff) / (spread * math.sqrt(k / n)) >= needed:
            return n
    return None


@dataclass(frozen=True)
class Outcome:
    """One test's verdict, what would settle it when it cannot tell, and the test itself for the record."""

    verdict: str
    need: str = ""  # "about 8 paired seeds would tell"; "" unless the verdict is CANNOT_TELL
    test: str = ""  # the test as prose: Comparison.describe(), or the prediction interval

    def short(self, part: str) -> str:
        """"part: verdict (need)", for a table cell."""
        return f"{part}: {self.verdict}" + (f" ({self.need})" if self.need else "")


def seeds_clause(a: Mapping[str, float], b: Mapping[str, float]) -> str:
    """How many seeds per setting would resolve the gap between ``a`` and ``b`` (``{seed: value}``)."""
    if set(a) == set(b) and len(a) >= 2:
        diffs = [a[s] - b[s] for s in a]
        spread, paired = sd_of(diffs), True
    elif len(a) >= 2 or len(b) >= 2:
        spreads = [sd_of(list(side.values())) for side in (a, b) if len(side) >= 2]
        spread, paired = math.sqrt(sum(s * s for s in spreads) / len(spreads)), False
    else:
        return "at least 2 seeds per setting, to measure the spread"
    diff = mean_of(a.values()) - mean_of(b.values())
    return need_text(seeds_needed(diff, spread, paired), paired)


def need_text(n: int | None, paired: bool = True) -> str:
    design = "paired seeds" if paired else "seeds per setting"
    if n is None:
        return f"more than {MAX_SEEDS} {design}, or none: the gap is too small or the spread is nil"
    return f"about {n} {design} would tell"


def compare(a: Mapping[str, float], b: Mapping[str, float]) -> stats.Comparison | None:
    """``stats.compare_seeds``; None when a side holds a value no test can take (a NaN)."""
    try:
        return stats.compare_seeds(a, b)
    except EffgenError:
        return None


def gain(a: Mapping[str, float], b: Mapping[str, float]) -> Outcome:
    """Is ``a`` ahead of ``b`` beyond seed noise? Holds, does not hold, or cannot tell and how many seeds would."""
    test = compare(a, b)
    if test is None:
        return Outcome(CANNOT_TELL, "values no test can take", "a value is not finite")
    if test.verdict == stats.AHEAD:
        return Outcome(HOLDS, test=test.describe())
    if test.verdict == stats.BEHIND:
        return Outcome(FAILS, test=test.describe())
    return Outcome(CANNOT_TELL, seeds_clause(a, b), test.describe() if test.tested else test.reason)


def no_gain(change: Mapping[str, float], reference: Mapping[str, float]) -> Outcome:
    """The claim "this change does not help": holds when the change shows no gain, fails when it gains.

    Several seeds of the change: the t-test; a gain inside the noise is "cannot tell" (the seeds could
    hide one), a loss inside it "holds". One run: where it falls in the reference's prediction interval.
    """
    if len(change) >= 2:
        outcome = gain(change, reference)
        flipped = {HOLDS: FAILS, FAILS: HOLDS}.get(outcome.verdict)
        if flipped:
            return Outcome(flipped, test=outcome.test)
        if mean_of(change.values()) <= mean_of(reference.values()):
            return Outcome(HOLDS, test=outcome.test)
        return outcome
    value = next(iter(change.values()))
    try:
        interval = stats.prediction_interval(list(reference.values()))
    except EffgenError:
        interval = None
    if interval is None:
        return Outcome(CANNOT_TELL, "at least 2 reference seeds", "one run against one reference seed")
    place = interval.place(value)
    where = (f"one run at {fixed(value, 1)}, {place} the {interval.level:.0%} prediction interval of one more "
             f"reference seed, {fixed(interval.low, 1)} to {fixed(interval.high, 1)} (n = {interval.n} seeds)")
    if place == "above":
        return Outcome(FAILS, test=where)
    if place == "below" or value <= interval.mean:
        return Outcome(HOLDS, test=where)
    need = need_text(seeds_needed(value - interval.mean, sd_of(list(reference.values())), False), False)
    return Outcome(CANNOT_TELL, need, where)


def combine(parts: Iterable[str]) -> str:
    """One verdict for a claim of several parts: all hold -> holds; some hold -> partly; none hold and
    some fail -> does not hold; otherwise cannot tell."""
    parts = list(parts)
    if parts and all(p == HOLDS for p in parts):
        return HOLDS
    if HOLDS in parts:
        return PARTLY
    return FAILS if FAILS in parts else CANNOT_TELL


def mean_of(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


def sd_of(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = mean_of(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
