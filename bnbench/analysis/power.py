"""Power and what an inconclusive result rules out: seed counts chosen from a power argument.

A verdict's rule is a one-sided test at (1 - level) / 2 on each side (`bnbench.claims.verdicts`
holds the interval against the threshold). Its power to find an effect of a declared smallest
size δ, for a paired SD σ between seeds, picks how many seeds a finding needs; and an
inconclusive interval says how large an effect the data still allow on each side, and whether
the seeds ever had a chance to decide it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from scipy import stats

from bnbench.analysis.inference import CONFIDENCE, Interval, Kind

Side = Literal["above", "below"]
MOST_SEEDS = 1000


def power(n: int, sd: float, effect: float, *, kind: Kind = "continuous",
          level: float = CONFIDENCE) -> float:  # fmt: skip
    """Probability that n seeds decide an effect `effect` away from the threshold.

    Continuous: the one-sided t test at (1 - level) / 2 (noncentral t, normal differences with
    SD `sd`). Grid and censored: the sign test's power, P(Binomial(n, p) >= k) with p = P(a
    seed's difference is on the effect's side) = Φ(effect / sd), a lower bound on the sign-flip
    test's (which uses the sizes too).

    Raises:
        ValueError: sd is not positive or n below 2.
    """
    if not sd > 0 or n < 2:
        raise ValueError(f"power needs sd > 0 and n >= 2; got sd={sd}, n={n}")
    alpha = (1 - level) / 2
    if kind == "continuous":
        critical = stats.t.isf(alpha, n - 1)
        return float(stats.nct.sf(critical, n - 1, abs(effect) / sd * math.sqrt(n)))
    tails = stats.binom.sf(range(-1, n), n, 0.5)  # tails[k] = P(count >= k) under the null
    k = next((i for i, tail in enumerate(tails) if tail <= alpha), None)
    if k is None:
        return 0.0
    return float(stats.binom.sf(k - 1, n, stats.norm.cdf(abs(effect) / sd)))


def seeds_for_power(sd: float, effect: float, *, target: float = 0.8, kind: Kind = "continuous",
                    level: float = CONFIDENCE) -> int:  # fmt: skip
    """The fewest seeds with `power` >= target, e.g. for a claim's default seed count.

    Args:
        sd: A pilot estimate of the SD of the per-seed (paired) statistic.
        effect: The smallest effect of interest, as a distance from the threshold.
        target: The power wanted (80% by convention, Cohen 1988).
        kind: The statistic's kind, which fixes the test.
        level: Confidence level of the verdict's interval.

    Raises:
        ValueError: no n up to MOST_SEEDS reaches the target, or sd is not positive.
    """
    for n in range(2, MOST_SEEDS + 1):
        if power(n, sd, effect, kind=kind, level=level) >= target:
            return n
    raise ValueError(f"no seed count up to {MOST_SEEDS} has power {target:g} for effect "
                     f"{effect:g} at sd {sd:g}")  # fmt: skip


@dataclass(frozen=True)
class RulesOut:
    """What an interval excludes, measured from the threshold, and whether it could decide.

    Attributes:
        above: The largest effect above the threshold the data allow (high - threshold; inf
            when open); effects larger than this are ruled out.
        below: The largest effect below the threshold they allow (threshold - low).
        underpowered: The interval is too wide to decide an effect of the smallest size of
            interest: its half-width exceeds `effect` (so even an estimate `effect` away from
            the threshold would leave it straddling), or it is unbounded.
    """

    above: float
    below: float
    underpowered: bool

    def sentence(self, digits: int = 3) -> str:
        """E.g. "rules out an effect above the threshold larger than 0.030; not enough seeds"."""
        parts = [f"{name} the threshold larger than {value:.{digits}f}"
                 for name, value in (("above", self.above), ("below", self.below))
                 if math.isfinite(value)]  # fmt: skip
        ruled = f"rules out an effect {' and '.join(parts)}" if parts else "rules out nothing"
        return f"{ruled}; {'not enough seeds' if self.underpowered else 'adequately powered'}"


def rules_out(found: Interval, threshold: float, effect: float) -> RulesOut:
    """What an (inconclusive) interval still allows on each side of `threshold`.

    Args:
        found: The finding's interval, on the threshold's scale.
        threshold: The declared threshold.
        effect: The smallest effect of interest (a distance from the threshold, > 0).

    Raises:
        ValueError: effect is not positive.
    """
    if not effect > 0:
        raise ValueError(f"the smallest effect of interest must be positive; got {effect}")
    half = (found.high - found.low) / 2
    return RulesOut(found.high - threshold, threshold - found.low,
                    not math.isfinite(half) or half > effect)  # fmt: skip
