"""effgen.stats against scipy.stats, and the verdicts the chapters build from it."""
from __future__ import annotations

import math
import statistics
import warnings

import pytest
from scipy import stats as scipy_stats

from effgen import stats
from effgen.classifier import claim_verdict, combine_verdicts
from effgen.errors import EffgenError

A = [81.2, 79.5, 83.0, 80.1, 82.4]
B = [78.0, 79.9, 77.1, 76.5]


def _summary(per_seed: dict[int, float]) -> dict:
    values = list(per_seed.values())
    return {"mean": sum(values) / len(values), "n": len(values), "per_seed": per_seed}


def test_welch_matches_scipy() -> None:
    ours = stats.welch(A, B)
    ref = scipy_stats.ttest_ind(A, B, equal_var=False)
    assert ours.test == "Welch's t-test"
    assert ours.t == pytest.approx(ref.statistic) and ours.p == pytest.approx(ref.pvalue)
    assert ours.df == pytest.approx(ref.df)  # Welch-Satterthwaite, not n_a + n_b - 2
    ci = ref.confidence_interval(0.95)
    assert ours.ci == pytest.approx((ci.low, ci.high))
    assert ours.diff == pytest.approx(sum(A) / 5 - sum(B) / 4)


def test_paired_matches_scipy() -> None:
    b = [80.0, 79.9, 81.5, 79.0, 81.9]
    ours = stats.paired(A, b)
    ref = scipy_stats.ttest_rel(A, b)
    assert ours.test == "paired t-test" and ours.df == 4
    assert ours.t == pytest.approx(ref.statistic) and ours.p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert ours.ci == pytest.approx((ci.low, ci.high))


def test_t_critical_values_not_two_standard_errors() -> None:
    # Three seeds a side, paired: a gap of 3 standard errors is "beyond two standard errors" but
    # not significant on 2 degrees of freedom (critical t = 4.30).
    ours = stats.paired([3.0, 4.0, 5.0], [0.0, 3.0, 2.5])  # differences 3, 1, 2.5
    assert abs(ours.t) > 2 and ours.p > 0.05 and ours.verdict == stats.WITHIN
    assert ours.ci[0] < 0 < ours.ci[1]
    assert stats.paired([10.0, 11.0, 12.0], [0.0, 1.2, 1.9]).verdict == stats.AHEAD
    assert stats.paired([0.0, 1.2, 1.9], [10.0, 11.0, 12.0]).verdict == stats.BEHIND


def test_one_seed_cannot_tell() -> None:
    for comparison in (stats.welch([90.0], [10.0]), stats.paired([90.0], [10.0]),
                       stats.welch([90.0, 91.0], [10.0])):
        assert comparison.verdict == stats.CANNOT and not comparison.tested
        assert comparison.p is None and comparison.ci is None and comparison.t is None
        assert "1 seed" in comparison.reason
        assert comparison.describe().startswith("no test is possible")
    assert stats.welch([90.0], [10.0]).diff == 80.0


def test_zero_variance_cannot_tell_rather_than_fake_p() -> None:
    same = stats.paired([5.0, 6.0, 7.0], [4.0, 5.0, 6.0])  # every difference exactly +1
    assert same.verdict == stats.CANNOT and same.p is None and "all equal" in same.reason
    flat = stats.welch([5.0, 5.0], [5.0, 5.0])
    assert flat.verdict == stats.CANNOT and flat.p is None
    # One side flat, the other not: Welch is still defined, with df = n - 1 of the noisy side.
    lopsided = stats.welch([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])
    assert lopsided.tested and lopsided.df == pytest.approx(2.0)


def test_seeds_that_agree_to_many_digits_are_tested_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's "precision loss" warning would land in a chapter's output
        close = stats.welch([75.1, 75.1, 75.1000001], [75.0, 75.0, 75.0])
        pairs = stats.paired([75.1, 75.1, 75.1000001], [75.0, 75.0, 75.0])
    assert close.verdict == stats.AHEAD and pairs.tested
    se = math.sqrt(statistics.variance([75.1, 75.1, 75.1000001]) / 3)  # the other side is flat
    assert close.t == pytest.approx((statistics.fmean([75.1, 75.1, 75.1000001]) - 75.0) / se, rel=1e-9)


def test_compare_seeds_pairs_by_design() -> None:
    tuned = {0: 81.0, 1: 83.0, 2: 82.0}
    assert stats.compare_seeds(tuned, {0: 80.0, 1: 82.5, 2: 80.0}).test == "paired t-test"
    # Seeds in another order still pair by seed, not by position.
    shuffled = stats.compare_seeds(tuned, {2: 80.0, 0: 80.0, 1: 82.5})
    assert shuffled.diff == pytest.approx(stats.paired([81, 83, 82], [80, 82.5, 80]).diff)
    assert shuffled.p == pytest.approx(stats.paired([81, 83, 82], [80, 82.5, 80]).p)
    assert stats.compare_seeds(tuned, {3: 80.0, 4: 82.5}).test == "Welch's t-test"


def test_describe_names_the_test_and_its_numbers() -> None:
    text = stats.paired(A, [80.0, 79.9, 81.5, 79.0, 81.9]).describe()
    assert text.startswith("paired t-test over 5 seed pairs: difference +")
    assert "95% CI [" in text and "on 4 df" in text and "p = " in text
    assert stats.format_p(0.0001) == "< 0.001" and stats.format_p(0.0456) == "0.046"


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(EffgenError, match="same seeds"):
        stats.paired([1.0, 2.0], [1.0])
    with pytest.raises(EffgenError, match="no values"):
        stats.welch([], [1.0])
    with pytest.raises(EffgenError, match="non-finite"):
        stats.welch([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(EffgenError, match="level"):
        stats.welch([1.0, 2.0], [1.0, 2.0], level=1.5)


def test_claim_verdict_tests_every_rival() -> None:
    swish = {0: 80.0, 1: 81.0, 2: 82.0}
    clear = claim_verdict({"swish": _summary(swish), "relu": _summary({0: 70.0, 1: 71.5, 2: 71.8}),
                           "softplus": _summary({0: 60.0, 1: 61.2, 2: 62.5})}, "swish")
    assert clear["verdict"] == "yes" and clear["runner_up"] == "relu"
    assert set(clear["comparisons"]) == {"relu", "softplus"}
    assert all(c.test == "paired t-test" for c in clear["comparisons"].values())
    # Far ahead of one rival but not of the other: the claim "best of all" is not supported.
    mixed = claim_verdict({"swish": _summary(swish), "relu": _summary({0: 79.0, 1: 82.5, 2: 81.0}),
                           "softplus": _summary({0: 60.0, 1: 61.2, 2: 62.5})}, "swish")
    assert mixed["verdict"] == "within noise"
    behind = claim_verdict({"swish": _summary(swish), "relu": _summary({0: 90.0, 1: 91.5, 2: 91.8})}, "swish")
    assert behind["verdict"] == "no" and behind["best"] == "relu"
    one_seed = claim_verdict({"swish": _summary({0: 90.0}), "relu": _summary({0: 10.0})}, "swish")
    assert one_seed["verdict"] == "cannot tell" and one_seed["gap"] == 80.0


def test_claim_verdict_beaten_needs_bonferroni() -> None:
    # A rival ahead at 0.025 < p < 0.05 with two rivals: not enough to call Swish beaten.
    swish = {0: 80.0, 1: 81.0, 2: 82.0}
    rival = {0: 80.3, 1: 81.4, 2: 82.2}  # differences -0.3, -0.4, -0.2
    p = stats.compare_seeds(swish, rival).p
    assert 0.025 < p < 0.05
    verdict = claim_verdict({"swish": _summary(swish), "relu": _summary(rival),
                             "softplus": _summary({0: 60.0, 1: 61.2, 2: 62.5})}, "swish")
    assert verdict["verdict"] == "within noise" and verdict["bonferroni_alpha"] == pytest.approx(0.025)


def test_combine_verdicts() -> None:
    assert combine_verdicts(["yes", "yes"]) == "yes"
    assert combine_verdicts(["yes", "within noise"]) == "within noise"
    assert combine_verdicts(["within noise", "no"]) == "no"
    assert combine_verdicts(["yes", "cannot tell"]) == "cannot tell"
    assert combine_verdicts(["cannot tell", "no"]) == "no"


def test_paper_profile_picks_each_activations_learning_rate() -> None:
    """Item 4: the published (paper) profile tunes each activation's lr on validation; the quick one
    skips it for cost and its chapter then says the verdict favours Swish (checked in the e2e test)."""
    from pathlib import Path

    import yaml

    params = Path(__file__).resolve().parent.parent / "params"
    paper = yaml.safe_load((params / "paper" / "01-activations.yml").read_text())
    assert len(paper["lr_factors"]) > 1 and 1.0 in paper["lr_factors"]
    smoke = yaml.safe_load((params / "smoke" / "01-activations.yml").read_text())
    assert len(smoke["lr_factors"]) > 1  # CI exercises the pick


def test_p_clause_never_reads_p_equals_less_than() -> None:
    assert stats.p_clause(0.0001) == "p < 0.001" and stats.p_clause(0.0456) == "p = 0.046"
    tiny = stats.paired([90.0, 91.0, 92.0], [10.0, 10.5, 11.2]).describe()
    assert "p < 0.001" in tiny and "= <" not in tiny


def test_prediction_interval_for_one_more_seed() -> None:
    values = [74.0, 77.0, 72.0, 75.0, 76.0]  # mean 74.8, sd 1.924
    interval = stats.prediction_interval(values)
    half = 2.7764451 * statistics.stdev(values) * (1 + 1 / 5) ** 0.5  # t(0.975, 4)
    assert interval is not None and interval.n == 5
    assert abs(interval.low - (74.8 - half)) < 1e-6 and abs(interval.high - (74.8 + half)) < 1e-6
    assert (interval.place(90.0), interval.place(74.8), interval.place(60.0)) == ("above", "inside", "below")
    assert stats.prediction_interval([75.0]) is None  # one seed: no spread to predict from


def test_a_leave_one_out_sentence_follows_the_signs() -> None:
    # Every removal lowered the FID: no piece "costs the most", the full recipe is the worst run.
    all_better = {"DiffAugment": -1.57, "spectral norm": -103.6, "EMA": -40.2}
    text = stats.leave_one_out(all_better)
    assert "costs" not in text and "helps most" not in text
    assert text.startswith("Removing spectral norm improves the FID most (-103.6)")
    assert "0 of the 3 removals make the FID worse and 3 make it better" in text
    assert "the full recipe is the worst of the runs" in text
    mixed = stats.leave_one_out({"EMA": 4.0, "SN": 9.0, "TTUR": -2.0}, digits=2)
    assert mixed.startswith("Removing SN worsens the FID most (+9.00), so it helps most")
    assert "only removing TTUR improves the FID (-2.00), so it hurts;" in mixed
    assert "2 of the 3 removals make the FID worse and 1 makes it better." in mixed
    accuracy = stats.leave_one_out({"SE": -3.0}, metric="accuracy", lower_is_better=False)
    assert accuracy.startswith("Only removing SE worsens the accuracy (-3.0), so it helps;")
