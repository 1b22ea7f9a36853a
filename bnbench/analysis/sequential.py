"""Adaptive seeding with error control: a group-sequential sign test with alpha spending.

Adding seeds to a finding until its interval clears a threshold, and looking after every round,
would find "supported" far more often than 2.5% under the null. Here each look may stop only
when the count of seeds on the claim's side crosses a boundary computed so that, under the null
(each seed's value above or below the threshold with probability 1/2), the probability of ever
crossing by look k is at most the spending function at k's information fraction n_k / M
(Lan & DeMets 1983; O'Brien-Fleming-type by default, which spends almost nothing early). The
probabilities are exact binomial sums, so the control holds at every n, for grid-valued values
(ties with the threshold count for neither side) and for censored ones (a lower bound counts as
above only when it is above, which a true value then is too). Looks need not be planned: each
boundary depends only on the looks made so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np
from scipy import stats

from bnbench.analysis.inference import CODES, CONFIDENCE, Bound

Spending = Literal["obrien_fleming", "pocock"]
Decision = Literal["supported", "not supported", "continue", "inconclusive"]


def spent(fraction: float, alpha: float, spending: Spending = "obrien_fleming") -> float:
    """Alpha spent by information fraction `fraction` (Lan & DeMets 1983), one side."""
    t = min(max(fraction, 0.0), 1.0)
    if t == 0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    return float(2 * stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(t)))


def boundaries(
    looks: Sequence[int], max_seeds: int, alpha: float, spending: Spending = "obrien_fleming"
) -> list[int]:
    """For each look, the fewest seeds on one side that stop there (n + 1: cannot stop).

    Args:
        looks: Seeds at each look so far, increasing, each at most `max_seeds`.
        max_seeds: M, the most seeds the finding may get (the information at fraction 1).
        alpha: One-sided error to spend over all looks.
        spending: The spending function's shape.

    Raises:
        ValueError: looks do not increase or exceed max_seeds.
    """
    if any(b <= a for a, b in pairwise(looks)) or not looks or looks[0] < 1:
        raise ValueError(f"looks must be positive and increasing; got {list(looks)}")
    if looks[-1] > max_seeds:
        raise ValueError(f"look at {looks[-1]} seeds exceeds max_seeds {max_seeds}")
    alive = np.array([1.0])  # P(count = s, not stopped yet) under the null
    crossed, out, previous = 0.0, [], 0
    for n in looks:
        step = stats.binom.pmf(np.arange(n - previous + 1), n - previous, 0.5)
        alive, previous = np.convolve(alive, step), n
        budget = spent(n / max_seeds, alpha, spending) - crossed
        tails = np.cumsum(alive[::-1])[::-1]  # tails[c] = P(count >= c, alive)
        fits = np.flatnonzero(tails <= budget + 1e-15)
        critical = int(fits[0]) if fits.size else n + 1
        if critical <= n:
            crossed += float(tails[critical])
            alive[critical:] = 0.0
        out.append(critical)
    return out


@dataclass(frozen=True)
class SequentialResult:
    """A look's decision and what it rests on.

    Attributes:
        decision: "supported" / "not supported" when a boundary is crossed, "continue" while
            seeds may still be added, "inconclusive" at the last look (max_seeds reached).
        above: Seeds whose value is surely above the threshold.
        below: Seeds whose value is surely below it.
        critical: Seeds one side needs to stop at this look (n + 1: it cannot).
    """

    decision: Decision
    above: int
    below: int
    critical: int


def sequential_decision(
    values: Sequence[float],
    looks: Sequence[int],
    max_seeds: int,
    threshold: float,
    side: Literal["above", "below"],
    *,
    bounds: Sequence[Bound] | None = None,
    level: float = CONFIDENCE,
    spending: Spending = "obrien_fleming",
) -> SequentialResult:
    """Decide a finding at the current look: supported, not supported, or continue.

    A pure function for the claims pipeline to call each round, with the per-seed values so
    far; `looks` lists the seed counts at every look made, this one last (len(values)). Each
    side spends (1 - level) / 2, so "supported" under the null is at most that over all looks
    (tests/test_inference_sequential.py simulates it).

    Raises:
        ValueError: len(values) is not the last look, or the looks are invalid.
    """
    if not looks or looks[-1] != len(values):
        raise ValueError(f"the last look must be the {len(values)} values given; got {looks}")
    codes = np.array([[CODES[b] for b in bounds or ["exact"] * len(values)]])
    above, below = counts(np.array([values], dtype=float), codes, threshold)
    critical = boundaries(looks, max_seeds, (1 - level) / 2, spending)[-1]
    favour, against = (above[0], below[0]) if side == "above" else (below[0], above[0])
    decision: Decision = "continue" if looks[-1] < max_seeds else "inconclusive"
    if favour >= critical:
        decision = "supported"
    elif against >= critical:
        decision = "not supported"
    return SequentialResult(decision, int(above[0]), int(below[0]), critical)


def counts(data: np.ndarray, codes: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Row by row, seeds surely above and surely below `threshold` (bounds counted only where
    they imply it: a lower bound above, an upper bound below)."""
    above = np.sum((data > threshold) & (codes >= 0), axis=1)
    below = np.sum((data < threshold) & (codes <= 0), axis=1)
    return above, below
