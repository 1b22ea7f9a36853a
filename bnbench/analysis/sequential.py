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

Many findings at once (`ever_crossed`, `step_down`): each finding is two one-sided hypotheses
(its count above the threshold, its count below), each with the boundary above. Holm's
step-down carries over to group-sequential tests as the closed test it is short for (Maurer &
Bretz 2013, "Multiple testing in group sequential trials using graphical approaches"; Ye, Li,
Liu & Yao 2013, "A group sequential Holm procedure with multiple primary endpoints"): an
intersection of m hypotheses is rejected when one of them has crossed its boundary at level
alpha / m at some look, which under that intersection happens with probability at most
m x alpha / m (Bonferroni, each boundary holding over all looks on its own), and a hypothesis
is rejected when every intersection containing it is. So a hypothesis rejected lets the others
be tested at alpha / (m - 1) with their spending functions re-applied at every look so far.
`step_down` computes the closure exactly rather than by the usual shortcut, because exact
binomial boundaries are not always monotone in alpha, which the shortcut needs (looks every 2
seeds to M = 20: the last look needs 17 of 20 at 0.05 / 7 but 16 at 0.05 / 8, the higher level
having spent more at earlier looks). Looking at fewer looks than planned (a finding stopped
once decided, a claim at M) only removes crossings, and the closure only grows with them, so
stopping keeps the error bound; tests/test_inference_sequential.py simulates the family under
global and partial nulls.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=256)
def boundary_table(looks: tuple[int, ...], max_seeds: int, alphas: tuple[float, ...],
                   spending: Spending = "obrien_fleming") -> np.ndarray:  # fmt: skip
    """`boundaries` at each level in `alphas`: row i, column k is look k's critical count at
    one-sided level alphas[i] (pure; cached, as every round recomputes the same rows)."""
    table = np.array([boundaries(looks, max_seeds, alpha, spending) for alpha in alphas])
    table.setflags(write=False)
    return table


def ever_crossed(
    counts_at_looks: np.ndarray,
    looks: Sequence[int],
    max_seeds: int,
    alphas: Sequence[float],
    spending: Spending = "obrien_fleming",
) -> np.ndarray:
    """Whether a side's count has reached its boundary at some look, at each level.

    Args:
        counts_at_looks: (..., len(looks)) seeds on the side at each look (`counts`).
        looks, max_seeds, spending: As `boundaries`.
        alphas: One-sided levels, each spent over all the looks.

    Returns:
        (..., len(alphas)) booleans.
    """
    table = boundary_table(tuple(looks), max_seeds, tuple(alphas), spending)
    crossed: np.ndarray = np.any(np.asarray(counts_at_looks)[..., None, :] >= table, axis=-1)
    return crossed


def holm_levels(alpha: float, hypotheses: int) -> list[float]:
    """The ladder of one-sided levels of the step-down: alpha / m for m = 1..hypotheses."""
    return [alpha / m for m in range(1, hypotheses + 1)]


def step_down(crossed: np.ndarray) -> np.ndarray:
    """Holm's step-down over N group-sequential tests, as the closed test it is short for.

    Hypothesis h is rejected when, for every m, either h has crossed at level alpha / m or more
    than N - m hypotheses have (then no m-sized intersection holding h lacks a crossing).

    Args:
        crossed: (..., N, N) booleans: [..., m - 1, h] is whether hypothesis h has crossed its
            boundary at level alpha / m at some look (`ever_crossed` over `holm_levels`).

    Returns:
        (..., N) booleans: rejected, with family-wise error at most alpha over all looks.

    Raises:
        ValueError: the last two axes differ.
    """
    crossed = np.asarray(crossed, dtype=bool)
    n = crossed.shape[-1]
    if crossed.shape[-2] != n:
        raise ValueError(f"crossed needs one row per level and hypothesis (N x N); got "
                         f"{crossed.shape}")  # fmt: skip
    enough = crossed.sum(axis=-1) > n - np.arange(1, n + 1)  # (..., levels)
    rejected: np.ndarray = np.all(crossed | enough[..., None], axis=-2)
    return rejected
