"""The one statistics stack: confidence level, bounds, and honest intervals over seeds.

Both the summary tables (`bnbench.analysis.stats`) and the claims' verdicts
(`bnbench.claims.verdicts`) get their intervals and p-values here, so a change of method
changes both. The method is chosen per kind of statistic, and the kind is named in the result:

* `continuous`: distinct values with no ties: the t interval (scipy.stats.ttest_1samp).
* `grid`: values on a grid (tied values, e.g. decades of a 4-point rate grid, or every seed
  agreeing): the exact paired permutation (sign-flip) test (Fisher 1935), inverted into an
  interval, then widened by half the grid's step, since each value is only known to its grid
  cell. The t interval of agreeing seeds has zero width and is not a 95% interval.
* `censored`: some values are bounds (a run that never reached a target only bounds its time):
  the sign test (scipy.stats.binomtest) for the location, whose count of values above a point
  stays valid when lower bounds replace the true values; the interval end the bounds leave open
  is infinite, as before.

Every method is checked by simulating the verdict rule under a null (tests/test_inference.py):
the rate of wrongly deciding a side stays at or below (1 - level) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Literal

import numpy as np
from scipy import stats

CONFIDENCE = 0.95

Bound = Literal["exact", "lower", "upper"]
Kind = Literal["continuous", "grid", "censored"]
KINDS: tuple[Kind, ...] = ("continuous", "grid", "censored")
# Bound -> code in the arrays below: a "lower" value is at most the true one.
CODES: dict[Bound, int] = {"exact": 0, "lower": 1, "upper": -1}
# Above this many seeds the 2**n sign flips are sampled, not enumerated (Hartigan 1969).
EXACT_UP_TO = 16
_SAMPLED_FLIPS = 2**15


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
        kind: Which kind of statistic the method was chosen for.
    """

    estimate: float | None
    low: float
    high: float
    n: int
    bounds: tuple[Bound, ...] = ()
    level: float = CONFIDENCE
    kind: Kind = "continuous"

    def mapped(self, function: Literal["exp", "pow10"]) -> Interval:
        """The interval on another scale (a monotone map: the verdict does not change)."""

        def apply(x: float) -> float:
            return math.exp(x) if function == "exp" else 10.0**x

        estimate = None if self.estimate is None else apply(self.estimate)
        return Interval(estimate, apply(self.low), apply(self.high), self.n, self.bounds,
                        self.level, self.kind)  # fmt: skip


def location_interval(
    values: Sequence[float],
    bounds: Sequence[Bound] | None = None,
    *,
    level: float = CONFIDENCE,
    kind: Kind | None = None,
    resolution: float | None = None,
) -> Interval:
    """The mean of `values` and an interval for their location, by the method of their kind.

    Args:
        values: One value per seed.
        bounds: What each value is ("exact" when None).
        level: Confidence level.
        kind: The statistic's kind; None classifies the values (`classify`).
        resolution: The grid's step for `grid` values; None infers it (`intervals`).

    Returns:
        The interval; (-inf, inf) without finite values or with fewer than two.
    """
    marks: tuple[Bound, ...] = tuple(bounds) if bounds is not None else _exact(len(values))
    if len(marks) != len(values):
        raise ValueError(f"{len(values)} values but {len(marks)} bounds")
    data = np.array([values], dtype=float)
    codes = np.array([[CODES[b] for b in marks]], dtype=np.int64)
    found: tuple[Bound, ...] = tuple(b for b in marks if b != "exact")
    if data.size == 0 or not np.all(np.isfinite(data)):
        return Interval(None, -math.inf, math.inf, data.size, found, level, kind or "continuous")
    low, high, kinds = intervals(data, codes, level=level, kind=kind, resolution=resolution)
    return Interval(float(np.mean(data)), float(low[0]), float(high[0]), data.size, found,
                    level, kinds[0])  # fmt: skip


def classify(data: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each row's kind: censored if any value is a bound, grid if two values tie, else
    continuous (ties have probability zero for a continuous statistic)."""
    censored = np.any(codes != 0, axis=1)
    tied = np.any(np.diff(np.sort(data, axis=1), axis=1) <= _tolerance(data), axis=1)
    return np.where(censored, "censored", np.where(tied, "grid", "continuous"))


def intervals(
    data: np.ndarray,
    codes: np.ndarray | None = None,
    *,
    level: float = CONFIDENCE,
    kind: Kind | None = None,
    resolution: float | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Kind]]:
    """Row by row (one row of seeds each), the interval of the row's kind: vectorized, so the
    null simulations run the same code as a verdict.

    A grid's step, when not given, is the smallest gap between the row's distinct values and
    0 (grid statistics here are differences of grid points, so 0 is on the grid); a row of
    zeros on an unknown grid gets (-inf, inf).

    Returns:
        (low, high, kind of each row).
    """
    codes = np.zeros(data.shape, dtype=int) if codes is None else codes
    kinds = np.full(data.shape[0], kind) if kind is not None else classify(data, codes)
    low, high = np.full(data.shape[0], -np.inf), np.full(data.shape[0], np.inf)
    if data.shape[1] < 2:  # one value bounds nothing (and has no spread to compute)
        return low, high, [str(k) for k in kinds]  # type: ignore[misc]
    alpha = (1 - level) / 2
    for name, method in (("continuous", t_ends), ("grid", flip_ends), ("censored", sign_ends)):
        rows = kinds == name
        if not np.any(rows):
            continue
        low[rows], high[rows] = method(data[rows], codes[rows], alpha)
        if name == "grid":
            step = _grid_step(data[rows]) if resolution is None else resolution
            low[rows], high[rows] = low[rows] - step / 2, high[rows] + step / 2
    return low, high, [str(k) for k in kinds]  # type: ignore[misc]


def t_ends(data: np.ndarray, codes: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ends of the t interval (each side `alpha`); unknown (infinite) at zero spread."""
    del codes
    n = data.shape[1]
    mean, sem = data.mean(axis=1), data.std(axis=1, ddof=1) / math.sqrt(n)
    half = np.where(sem > 0, stats.t.ppf(1 - alpha, n - 1) * sem, np.inf)
    return mean - half, mean + half


def flip_ends(data: np.ndarray, codes: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ends of the exact sign-flip interval for the centre of a symmetric distribution.

    The sign-flip test of centre m rejects (upper tail) when at most a fraction `alpha` of the
    2**n sign flips of (x - m) give a sum at least the observed one. A flip of subset S does so
    exactly when the mean of S is at most m, so the rejected m are those below the (k+1)-th
    smallest subset mean, k + 1 = floor(alpha 2**n) (Hartigan 1969): with 3 seeds 2**3 flips
    leave none to reject at 2.5% and the interval is infinite, whatever the seeds say.
    """
    del codes
    n = data.shape[1]
    subsets = _subsets(n)
    means = data @ subsets.T / subsets.sum(axis=1)
    kth = math.floor(alpha * (subsets.shape[0] + 1)) - 1
    if kth < 0:
        return np.full(data.shape[0], -np.inf), np.full(data.shape[0], np.inf)
    ordered = np.sort(means, axis=1)
    return ordered[:, kth], ordered[:, -kth - 1]


def sign_ends(data: np.ndarray, codes: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ends of the sign-test interval for the median, with bounds among the values.

    The median exceeds m when at least k values exceed it, P(Binomial(n, 1/2) >= k) <= alpha;
    a lower bound above m implies a true value above m, so the count stays valid with lower
    bounds. Upper bounds leave the lower end open, lower bounds the upper end.
    """
    n = data.shape[1]
    count = _critical_count(n, alpha)
    ordered = np.sort(data, axis=1)
    if count > n:
        low, high = np.full(data.shape[0], -np.inf), np.full(data.shape[0], np.inf)
    else:
        low, high = ordered[:, n - count].copy(), ordered[:, count - 1].copy()
    low[np.any(codes < 0, axis=1)] = -np.inf
    high[np.any(codes > 0, axis=1)] = np.inf
    return low, high


def p_value(values: Sequence[float], kind: Kind, null: float = 0.0) -> float | None:
    """Two-sided p-value of "the location is `null`" by the test of `kind` (exact values).

    t test for continuous values, the exact sign-flip permutation test for grid values
    (scipy.stats.permutation_test), the sign test for censored ones (scipy.stats.binomtest).
    None with fewer than two values or, for the t test, at zero spread.
    """
    data = np.asarray(values, dtype=float) - null
    if data.size < 2:
        return None
    if kind == "continuous":
        return None if np.ptp(data) == 0 else float(stats.ttest_1samp(data, 0.0).pvalue)
    if kind == "grid":
        test = stats.permutation_test((data,), np.mean, permutation_type="samples",
                                      n_resamples=_SAMPLED_FLIPS, random_state=0)  # fmt: skip
        return float(test.pvalue)
    above, below = int(np.sum(data > 0)), int(np.sum(data < 0))
    if above + below == 0:
        return 1.0
    return float(stats.binomtest(above, above + below, 0.5).pvalue)


def _exact(n: int) -> tuple[Bound, ...]:
    return tuple("exact" for _ in range(n))


def _critical_count(n: int, alpha: float) -> int:
    """Smallest k with P(Binomial(n, 1/2) >= k) <= alpha (n + 1 when there is none)."""
    tails = stats.binom.sf(np.arange(n + 1) - 1, n, 0.5)
    hits = np.flatnonzero(tails <= alpha)
    return int(hits[0]) if hits.size else n + 1


def _subsets(n: int) -> np.ndarray:
    """Indicator rows of the nonempty subsets of n seeds: all of them, or a fixed sample."""
    if n <= EXACT_UP_TO:
        return np.array(list(product((0.0, 1.0), repeat=n))[1:])
    rng = np.random.default_rng(0)  # a fixed sample keeps every report reproducible
    flips = rng.integers(0, 2, size=(_SAMPLED_FLIPS, n)).astype(float)
    chosen: np.ndarray = flips[flips.sum(axis=1) > 0]
    return chosen


def _tolerance(data: np.ndarray) -> np.ndarray:
    # Differences computed in floating point agree to rounding; closer values are one value.
    scale: np.ndarray = np.max(np.abs(data), axis=1, initial=1.0)
    return 1e-9 * scale[:, None]


def _grid_step(data: np.ndarray) -> np.ndarray:
    """Each row's smallest positive gap between its values and 0; inf when there is none."""
    points = np.sort(np.concatenate([data, np.zeros((data.shape[0], 1))], axis=1), axis=1)
    gaps = np.diff(points, axis=1)
    gaps = np.where(gaps > _tolerance(data), gaps, np.inf)
    smallest: np.ndarray = gaps.min(axis=1)
    return smallest
