"""Paired-seed primitives: differences with a t interval, and censored time-to-target ratios.

Arms of an ablation share their seeds (same initialisation stream, same batch order), so an arm
is compared with the reference seed by seed: the paired t-test removes the seed-to-seed spread
that both arms share, which an unpaired test would count as noise. `bnbench.analysis.stats`
builds the summary rows from these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal

import numpy as np
from scipy import stats

CONFIDENCE = 0.95

Bound = Literal["exact", "lower", "upper", ""]


@dataclass(frozen=True)
class Paired:
    """Paired difference arm − reference over the seeds both have a finite value for.

    Attributes:
        n_pairs: Number of seeds in both arms with a finite value.
        mean: Mean of the per-seed differences; None without pairs.
        ci_low: Lower end of the 95% t-interval of the mean difference; None when p_value is.
        ci_high: Upper end of that interval.
        p_value: Two-sided p-value of the paired t-test (scipy.stats.ttest_rel); None with fewer
            than two pairs or when all differences are equal (zero variance: no test exists).
    """

    n_pairs: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def finite(values: Iterable[object]) -> list[float]:
    """The values that are finite numbers (not booleans), as floats; anything else is skipped."""
    numbers = (v for v in values if isinstance(v, Real) and not isinstance(v, bool))
    return [float(v) for v in numbers if math.isfinite(float(v))]


def mean_std(values: Iterable[object]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the finite values.

    Returns:
        (mean, std): mean is None without finite values, std is None with fewer than two.
    """
    data = finite(values)
    if not data:
        return None, None
    std = float(np.std(data, ddof=1)) if len(data) > 1 else None
    return float(np.mean(data)), std


def paired_difference(arm: Mapping[int, Any], reference: Mapping[int, Any]) -> Paired:
    """Compare `arm` with `reference` seed by seed.

    Args:
        arm: Seed -> value of the arm (None or non-finite for runs without a value).
        reference: Seed -> value of the reference arm.

    Returns:
        The paired difference, its 95% confidence interval and the paired t-test p-value.
    """
    pairs = _pairs(arm, reference)
    if not pairs:
        return Paired(0, None, None, None, None)
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    mean = float(np.mean(a - b))
    if len(pairs) < 2 or _constant_difference(a, b):
        return Paired(len(pairs), mean, None, None, None)
    test = stats.ttest_rel(a, b)
    low, high = test.confidence_interval(CONFIDENCE)
    p_value, low, high = _finite_or_none(test.pvalue, low, high)
    return Paired(len(pairs), mean, low, high, p_value)


@dataclass(frozen=True)
class TimeToTarget:
    """Steps one run took to reach the target, or where it stopped without reaching it.

    Attributes:
        steps: Steps to the target; None when the run never reached it.
        last_step: The run's last step (its total steps). A run that never reached the target
            is right-censored there: its time to target is at least this.
    """

    steps: float | None
    last_step: float | None

    @property
    def censored(self) -> bool:
        """Whether the run never reached the target."""
        return self.steps is None

    @property
    def time(self) -> float | None:
        """Steps to the target, or the censoring step (a lower bound on them)."""
        return self.last_step if self.steps is None else self.steps


@dataclass(frozen=True)
class Speedup:
    """Mean over paired seeds of reference steps / arm steps to the target.

    Attributes:
        value: The mean ratio; None without usable pairs or when it bounds nothing.
        bound: "exact" (every pair reached), "lower" (the true mean is at least `value`),
            "upper" (at most `value`), or "" when `value` is None.
        pairs: Seeds it averages (a pair where neither run reached the target is left out).
    """

    value: float | None
    bound: Bound
    pairs: int


def paired_speedup(
    arm: Mapping[int, TimeToTarget], reference: Mapping[int, TimeToTarget]
) -> Speedup:
    """Mean over seeds of reference steps / arm steps to the target, censoring included.

    The mean of per-seed ratios (not the ratio of means) keeps the pairing: each seed's ratio
    compares two runs that saw the same initialisation and batches. A run that never reached
    the target is censored at its last step. Leaving such seeds out would blank the speedup
    exactly where an arm helps most (the reference never gets there), so they count as bounds:
    reference censored -> its ratio is at least last step / arm steps; arm censored -> at most
    reference steps / last step; both censored -> no information, left out. A mean of exact
    ratios and lower bounds is a lower bound (likewise upper); lower and upper bounds together
    bound nothing, and the value is None.

    Args:
        arm: Seed -> the arm's time to target.
        reference: Seed -> the reference's time to target.

    Returns:
        The speedup, whether it is exact or a bound, and how many seeds it averages.
    """
    ratios, bounds = [], set()
    for seed in sorted(arm.keys() & reference.keys()):
        pair = _ratio(arm[seed], reference[seed])
        if pair is not None:
            ratios.append(pair[0])
            bounds.add(pair[1])
    if not ratios:
        return Speedup(None, "", 0)
    bounds.discard("exact")
    if len(bounds) > 1:
        return Speedup(None, "", len(ratios))
    return Speedup(float(np.mean(ratios)), bounds.pop() if bounds else "exact", len(ratios))


def _ratio(arm: TimeToTarget, reference: TimeToTarget) -> tuple[float, Bound] | None:
    """One seed's reference / arm time and what it is; None when it says nothing."""
    steps, ref = arm.time, reference.time
    if steps is None or ref is None or steps <= 0 or (arm.censored and reference.censored):
        return None
    bound: Bound = "upper" if arm.censored else "lower" if reference.censored else "exact"
    return ref / steps, bound


def _pairs(arm: Mapping[int, Any], reference: Mapping[int, Any]) -> list[tuple[float, float]]:
    """(arm, reference) values of the seeds where both are finite, in seed order."""
    pairs = []
    for seed in sorted(arm.keys() & reference.keys()):
        values = finite([arm[seed], reference[seed]])
        if len(values) == 2:
            pairs.append((values[0], values[1]))
    return pairs


def _finite_or_none(*values: Any) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def _constant_difference(a: np.ndarray, b: np.ndarray) -> bool:
    # a - b carries a rounding error up to eps * max(|a|, |b|); differences that agree within it
    # are equal, and a t statistic computed from them would be noise over noise.
    spread = float(np.ptp(a - b))
    scale = float(np.max(np.abs(np.concatenate([a, b])))) if a.size else 0.0
    return bool(spread <= 8 * np.finfo(float).eps * max(scale, np.finfo(float).tiny))
