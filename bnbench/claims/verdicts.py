"""Verdict rules: a named statistic, its 95% interval over paired seeds, a declared threshold.

Every claim is decided the same way. Its statistic is computed once per seed (each seed is a
pair, or a set, of runs that share initial weights and batch order), the seeds give a mean and a
95% t interval (scipy.stats), and the interval is held against a threshold declared with the
claim before any run:

* `supported`: the whole interval lies on the side the claim predicts;
* `not supported`: the whole interval lies on the other side (the data contradict the claim);
* `inconclusive`: the interval straddles the threshold, or fewer than `MIN_SEEDS` seeds have a
  value.

"Negligible" claims use an equivalence test instead (TOST, Schuirmann 1987): supported when
the 90% interval lies inside (-margin, margin), which is both one-sided tests at 5%; not
supported when the 95% interval lies wholly outside [-margin, margin].

Censoring. A run that never reached a target only bounds its time (it took at least its last
step). A per-seed value computed from such a time is a bound too: `Value.bound` says which way.
With lower bounds among the values the interval's upper end is open (+inf), with upper bounds its
lower end is open (-inf): the interval still bounds the claim from the side the bounds allow, so
"BN is at least 2x faster" can be supported even when the network without BN never got there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

Verdict = Literal["supported", "not supported", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("supported", "not supported", "inconclusive")
Bound = Literal["exact", "lower", "upper"]
Side = Literal["above", "below"]

CONFIDENCE = 0.95
# With fewer seeds a t interval is too wide to say anything, and 2 seeds that agree say little.
MIN_SEEDS = 3


@dataclass(frozen=True)
class Value:
    """One seed's statistic: exact, or a bound when it comes from a censored time."""

    seed: int
    value: float
    bound: Bound = "exact"


@dataclass(frozen=True)
class Interval:
    """Mean of the per-seed values and its confidence interval.

    Attributes:
        estimate: Mean over seeds; None without values.
        low: Lower end; -inf when open (upper bounds among the values) or unknown.
        high: Upper end; +inf when open (lower bounds among the values) or unknown.
        n: Seeds with a value.
        bounds: Values that are bounds ("lower", "upper") rather than exact.
        level: Confidence level of [low, high].
    """

    estimate: float | None
    low: float
    high: float
    n: int
    bounds: tuple[Bound, ...] = ()
    level: float = CONFIDENCE

    def mapped(self, function: Literal["exp", "pow10"]) -> Interval:
        """The interval on another scale (a monotone map: the verdict does not change)."""

        def apply(x: float) -> float:
            return math.exp(x) if function == "exp" else 10.0**x

        estimate = None if self.estimate is None else apply(self.estimate)
        return Interval(estimate, apply(self.low), apply(self.high), self.n, self.bounds,
                        self.level)  # fmt: skip


def interval(values: Sequence[Value], level: float = CONFIDENCE) -> Interval:
    """The mean of `values` and its t interval, with open ends where values are bounds.

    Values that all agree give the point as its interval (the t interval of a constant).
    """
    data = np.array([v.value for v in values], dtype=float)
    bounds = tuple(v.bound for v in values if v.bound != "exact")
    if data.size == 0 or not np.all(np.isfinite(data)):
        return Interval(None, -math.inf, math.inf, int(data.size), bounds, level)
    mean = float(np.mean(data))
    if data.size < 2:
        low, high = -math.inf, math.inf
    elif float(np.ptp(data)) <= 1e-12 * max(1.0, abs(mean)):
        low = high = mean
    else:
        half = float(stats.t.ppf(0.5 + level / 2, data.size - 1) * stats.sem(data))
        low, high = mean - half, mean + half
    if "lower" in bounds:  # some true values are larger than recorded
        high = math.inf
    if "upper" in bounds:
        low = -math.inf
    return Interval(mean, low, high, int(data.size), bounds, level)


def decide(found: Interval, threshold: float, side: Side) -> Verdict:
    """Hold the interval against the threshold on the side the claim predicts."""
    if found.n < MIN_SEEDS or found.estimate is None:
        return "inconclusive"
    if side == "above":
        if found.low > threshold:
            return "supported"
        return "not supported" if found.high < threshold else "inconclusive"
    if found.high < threshold:
        return "supported"
    return "not supported" if found.low > threshold else "inconclusive"


@dataclass(frozen=True)
class Equivalence:
    """A two one-sided tests (TOST) result for |mean difference| < margin."""

    interval90: Interval
    interval95: Interval
    p_value: float | None
    verdict: Verdict


def equivalence(values: Sequence[Value], margin: float) -> Equivalence:
    """TOST of "the mean difference lies within ±margin" (Schuirmann 1987), via scipy.stats.

    Supported when both one-sided tests reject at 5% (the 90% interval lies inside the margins);
    not supported when the 95% interval lies wholly outside [-margin, margin]; otherwise, or with
    fewer than `MIN_SEEDS` seeds, inconclusive. Censored values are not accepted here.
    """
    inner, outer = interval(values, 0.90), interval(values, CONFIDENCE)
    data = np.array([v.value for v in values], dtype=float)
    p_value: float | None = None
    if data.size >= 2 and np.ptp(data) > 0 and np.all(np.isfinite(data)):
        above = stats.ttest_1samp(data, -margin, alternative="greater").pvalue
        below = stats.ttest_1samp(data, margin, alternative="less").pvalue
        p_value = float(max(above, below))
    if inner.n < MIN_SEEDS or inner.bounds or inner.estimate is None:
        verdict: Verdict = "inconclusive"
    elif -margin < inner.low and inner.high < margin:
        verdict = "supported"
    elif outer.low > margin or outer.high < -margin:
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    return Equivalence(inner, outer, p_value, verdict)


def combine(first: Bound, second: Bound, sign: Literal[1, -1]) -> Bound | None:
    """What `a + sign * b` is when `a` is a `first` and `b` a `second`; None if unbounded."""
    opposite: dict[Bound, Bound] = {"exact": "exact", "lower": "upper", "upper": "lower"}
    flipped = opposite[second] if sign < 0 else second
    kinds = {first, flipped} - {"exact"}
    if len(kinds) > 1:
        return None
    return kinds.pop() if kinds else "exact"


def rule_text(threshold: float, side: Side) -> str:
    """The rule in words, e.g. "supported if its 95% CI lies above 1; ..."."""
    other = "below" if side == "above" else "above"
    return (
        f"supported if its 95% CI lies {side} {threshold:g}, not supported if it lies {other}; "
        f"otherwise (or with fewer than {MIN_SEEDS} seeds) inconclusive"
    )
