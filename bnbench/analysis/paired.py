"""Paired-seed primitives: differences with their interval, and censored time-to-target ratios.

Arms of an ablation share their seeds (same initialisation stream, same batch order), so an arm
is compared with the reference seed by seed: a paired test removes the seed-to-seed spread that
both arms share, which an unpaired test would count as noise. The interval and test come from
`bnbench.analysis.inference`, the one statistics stack the claims' verdicts use too (t for
continuous differences, exact sign-flip for tied ones). `bnbench.analysis.stats` builds the
summary rows from these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal

import numpy as np

from bnbench.analysis.inference import CONFIDENCE, Bound, Kind, location_interval, p_value


@dataclass(frozen=True)
class Paired:
    """Paired difference arm − reference over the seeds both have a finite value for.

    Attributes:
        n_pairs: Number of seeds in both arms with a finite value.
        mean: Mean of the per-seed differences; None without pairs.
        ci_low: Lower end of the 95% interval of the mean difference (`kind`'s method); None
            below two pairs or when it is unbounded (-inf: too few seeds for the exact test).
        ci_high: Upper end of that interval.
        p_value: Two-sided p-value of the paired test of `kind`: t (scipy.stats.ttest_rel's)
            for continuous differences, exact sign-flip for tied ones; None below two pairs.
        kind: "continuous" or "grid" (tied differences); "" without two pairs.
    """

    n_pairs: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    kind: Kind | Literal[""] = ""


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
        The paired difference, its 95% confidence interval and the paired test's p-value.
    """
    pairs = _pairs(arm, reference)
    if not pairs:
        return Paired(0, None, None, None, None)
    differences = [a - b for a, b in pairs]
    mean = float(np.mean(differences))
    if len(pairs) < 2:
        return Paired(len(pairs), mean, None, None, None)
    found = location_interval(differences, level=CONFIDENCE)
    low, high = _finite_or_none(found.low, found.high)
    return Paired(len(pairs), mean, low, high, p_value(differences, found.kind), found.kind)


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
    """Geometric mean over paired seeds of reference steps / arm steps to the target.

    Attributes:
        value: The geometric mean ratio; None without usable pairs or when it bounds nothing.
        bound: "exact" (every pair reached), "lower" (the true mean is at least `value`),
            "upper" (at most `value`), or "" when `value` is None.
        pairs: Seeds it averages (a pair where neither run reached the target is left out).
    """

    value: float | None
    bound: Bound | Literal[""]
    pairs: int


def paired_speedup(
    arm: Mapping[int, TimeToTarget], reference: Mapping[int, TimeToTarget]
) -> Speedup:
    """Geometric mean over seeds of reference steps / arm steps to the target, censoring included.

    The mean of per-seed ratios (not the ratio of means) keeps the pairing: each seed's ratio
    compares two runs that saw the same initialisation and batches. It is the geometric mean
    (exp of the mean log ratio), the claims' speedup too: a ratio and its inverse average to 1,
    where an arithmetic mean of 2x and 0.5x would read as a 1.25x speedup. A run that never reached
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
    value = float(np.exp(np.mean(np.log(ratios))))
    return Speedup(value, bounds.pop() if bounds else "exact", len(ratios))


def _ratio(arm: TimeToTarget, reference: TimeToTarget) -> tuple[float, Bound] | None:
    """One seed's reference / arm time and what it is; None when it says nothing."""
    steps, ref = arm.time, reference.time
    if (
        steps is None
        or ref is None
        or min(steps, ref) <= 0
        or (arm.censored and reference.censored)
    ):
        return None
    if arm.censored:
        return ref / steps, "upper"
    return ref / steps, "lower" if reference.censored else "exact"


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
