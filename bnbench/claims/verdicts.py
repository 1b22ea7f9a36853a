"""Verdict rules: a named statistic, its 95% interval over paired seeds, a declared threshold.

Every claim is decided the same way. Its statistic is computed once per seed (each seed is a
pair, or a set, of runs that share initial weights and batch order), the seeds give a mean and a
95% interval, and the interval is held against a threshold declared with the claim before any
run. The interval comes from `bnbench.analysis.inference`, the statistics the summary tables use
too, by the method of the statistic's kind: t for continuous values, the exact sign-flip test for
grid-valued or tied ones (3 agreeing seeds are not significant: 2**3 sign flips), the sign test
for censored ones. Each is checked by simulating this rule under a null.


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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from bnbench.analysis.inference import CONFIDENCE as CONFIDENCE
from bnbench.analysis.inference import Bound as Bound
from bnbench.analysis.inference import Interval as Interval
from bnbench.analysis.inference import location_interval

Verdict = Literal["supported", "not supported", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("supported", "not supported", "inconclusive")
Side = Literal["above", "below"]

# With fewer seeds no interval says anything, and 2 seeds that agree say little.
MIN_SEEDS = 3


@dataclass(frozen=True)
class Value:
    """One seed's statistic: exact, or a bound when it comes from a censored time."""

    seed: int
    value: float
    bound: Bound = "exact"


def interval(values: Sequence[Value], level: float = CONFIDENCE) -> Interval:
    """The mean of `values` and its interval by the method of their kind, with open ends where
    values are bounds (`bnbench.analysis.inference.location_interval`).

    Agreeing values are grid-valued, never a zero-width interval: with 3 of them the exact
    sign-flip interval is unbounded (a 3-of-3 sign test has p = 0.125).
    """
    return location_interval([v.value for v in values], [v.bound for v in values], level=level)


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
    """TOST of "the mean difference lies within ±margin" (Schuirmann 1987).

    Supported when both one-sided tests reject at 5% (the 90% interval lies inside the margins);
    not supported when the 95% interval lies wholly outside [-margin, margin]; otherwise, or with
    fewer than `MIN_SEEDS` seeds, inconclusive. The intervals are those of `interval`, so tied
    values get the exact sign-flip interval; the p-value is the t test's (scipy.stats), given for
    continuous values only. Censored values are not accepted here.
    """
    inner, outer = interval(values, 0.90), interval(values, CONFIDENCE)
    data = np.array([v.value for v in values], dtype=float)
    p_value: float | None = None
    if inner.kind == "continuous" and data.size >= 2 and np.all(np.isfinite(data)):
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
