"""The verdict machinery: intervals over seeds, censoring bounds, the decision rule and TOST."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bnbench.analysis import inference
from bnbench.analysis.paired import TimeToTarget
from bnbench.claims import verdicts
from bnbench.claims.measures import censored_slope, log_speedups, subtract
from bnbench.claims.verdicts import (
    MIN_SEEDS,
    Interval,
    Value,
    combine,
    decide,
    equivalence,
    interval,
)


def values(*numbers: float, bound: str = "exact") -> list[Value]:
    return [Value(seed, x, bound) for seed, x in enumerate(numbers)]  # type: ignore[arg-type]


def test_interval_is_the_paired_t_interval():
    data = [0.1, 0.3, 0.2, 0.25]
    found = interval(values(*data))
    low, high = stats.ttest_1samp(data, 0.0).confidence_interval(0.95)
    assert found.estimate == pytest.approx(np.mean(data))
    assert (found.low, found.high) == pytest.approx((low, high))
    assert found.n == 4


def test_agreeing_values_never_give_a_zero_width_interval_and_bounds_open_one_end():
    # Three agreeing seeds: 2**3 sign flips cannot reach 95% (the old rule gave [2, 2]).
    three = interval(values(2.0, 2.0, 2.0))
    assert three.kind == "grid" and (three.low, three.high) == (-math.inf, math.inf)
    assert decide(three, 0.0, "above") == "inconclusive"
    # Six agree: significant (p = 1/64 one-sided), known to half the grid step (here 2) each side.
    six = interval(values(*[2.0] * 6))
    assert (six.low, six.high) == (1.0, 3.0) and decide(six, 0.0, "above") == "supported"
    # Bounds: six values (the sign test needs 6 for a finite end; 3 sufficed for the t rule).
    rest = [Value(seed, 1.0 + 0.05 * seed) for seed in range(2, 7)]
    lower = interval([Value(0, 1.2, "lower"), *rest])
    assert lower.kind == "censored" and math.isinf(lower.high) and math.isfinite(lower.low)
    upper = interval([Value(0, 1.2, "upper"), *rest])
    assert math.isinf(upper.low) and math.isfinite(upper.high)
    assert math.isinf(interval([Value(0, 1.0), Value(1, 1.2, "lower"), Value(2, 1.1)]).low)


def test_verdicts_share_the_one_statistics_module():
    assert verdicts.CONFIDENCE is inference.CONFIDENCE and verdicts.Interval is inference.Interval


@pytest.mark.parametrize(
    ("numbers", "side", "expected"),
    [
        ((1.0, 1.1, 0.9, 1.05), "above", "supported"),
        ((-1.0, -1.1, -0.9, -1.05), "above", "not supported"),
        ((0.5, -0.5, 0.3, -0.2), "above", "inconclusive"),
        ((-1.0, -1.1, -0.9, -1.05), "below", "supported"),
        ((1.0, 1.1, 0.9, 1.05), "below", "not supported"),
        ((1.0, 1.1), "above", "inconclusive"),  # too few seeds
    ],
)
def test_decide(numbers, side, expected):
    assert decide(interval(values(*numbers)), 0.0, side) == expected


def test_fewer_than_the_minimum_seeds_is_inconclusive_however_clear():
    found = Interval(5.0, 4.0, 6.0, MIN_SEEDS - 1)
    assert decide(found, 0.0, "above") == "inconclusive"


def test_lower_bounds_can_support_but_never_contradict():
    # Six seeds: the sign test behind censored values needs 6 to reach 95% (3 did before).
    above = interval(values(2.0, 2.1, 1.9, 2.2, 1.8, 2.05, bound="lower"))
    assert above.kind == "censored" and decide(above, 0.0, "above") == "supported"
    assert decide(interval(values(2.0, 2.1, 1.9, bound="lower")), 0.0, "above") == "inconclusive"
    below = interval(values(-2.0, -2.1, -1.9, -2.2, -1.8, -2.05, bound="lower"))
    assert decide(below, 0.0, "above") == "inconclusive"


def test_mapped_interval_keeps_the_verdict():
    logs = interval(values(math.log(2), math.log(3), math.log(2.5)))
    ratios = logs.mapped("exp")
    assert ratios.estimate == pytest.approx(math.exp(logs.estimate or 0.0))
    assert decide(ratios, 1.0, "above") == decide(logs, 0.0, "above") == "supported"


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        ((0.001, -0.002, 0.0015, 0.0), "supported"),
        ((0.1, 0.12, 0.09, 0.11), "not supported"),
        ((0.03, -0.03, 0.02, -0.01), "inconclusive"),
    ],
)
def test_equivalence_tost(numbers, expected):
    result = equivalence(values(*numbers), 0.02)
    assert result.verdict == expected
    data = np.array(numbers)
    p = max(stats.ttest_1samp(data, -0.02, alternative="greater").pvalue,
            stats.ttest_1samp(data, 0.02, alternative="less").pvalue)  # fmt: skip
    assert result.p_value == pytest.approx(p)
    assert (result.p_value < 0.05) == (expected == "supported")


def test_log_speedups_mark_censored_times():
    reached, never = TimeToTarget(100, 400), TimeToTarget(None, 400)
    arm = {0: reached, 1: never, 2: reached, 3: never}
    reference = {0: TimeToTarget(200, 400), 1: TimeToTarget(200, 400), 2: never, 3: never}
    found = {v.seed: v for v in log_speedups(arm, reference)}
    assert found[0] == Value(0, math.log(2.0), "exact")
    assert found[1] == Value(1, math.log(0.5), "upper")
    assert found[2] == Value(2, math.log(4.0), "lower")
    assert 3 not in found  # both censored: no information


def test_censored_slope_is_a_lower_bound_only_when_censoring_is_at_the_deep_end():
    exact = censored_slope([(2, TimeToTarget(100, 800)), (8, TimeToTarget(400, 800))])
    assert exact is not None and exact.value == pytest.approx(1.0) and exact.bound == "exact"
    deep = censored_slope([(2, TimeToTarget(100, 800)), (8, TimeToTarget(None, 800))])
    assert deep is not None and deep.bound == "lower"
    shallow = [
        (2, TimeToTarget(None, 800)),
        (4, TimeToTarget(100, 800)),
        (8, TimeToTarget(200, 800)),
    ]
    assert censored_slope(shallow) is None


def test_bounds_combine_through_a_difference():
    assert combine("lower", "exact", -1) == "lower"
    assert combine("exact", "lower", -1) == "upper"
    assert combine("lower", "upper", -1) == "lower"
    assert combine("lower", "lower", -1) is None
    found = subtract({0: Value(0, 2.0, "lower")}, {0: Value(0, 1.0, "upper")})
    assert found == [Value(0, 1.0, "lower")]
