"""Adaptive seeding: the group-sequential sign test keeps its error over all looks, by null
simulation, while looking after every round of seeds without a boundary does not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bnbench.analysis.sequential import boundaries, counts, sequential_decision, spent

ALPHA = 0.025
# 20,000 seeded draws: SE 0.0011 at 0.025; 0.004 is 3.6 SE.
REPS, SLACK = 20_000, 0.004


def ever_supported(data: np.ndarray, codes: np.ndarray, looks: list[int], max_seeds: int,
                   spending: str = "obrien_fleming") -> float:  # fmt: skip
    """Fraction of rows the rule calls "supported" at some look, stopping at the first decision:
    `sequential_decision`'s boundary and counts, vectorized over rows."""
    critical = boundaries(looks, max_seeds, ALPHA, spending)  # type: ignore[arg-type]
    decided = np.zeros(data.shape[0], dtype=bool)
    supported = np.zeros(data.shape[0], dtype=bool)
    for n, c in zip(looks, critical, strict=True):
        above, below = counts(data[:, :n], codes[:, :n], 0.0)
        now = ~decided & (above >= c)
        supported |= now
        decided |= now | (below >= c)
    return float(supported.mean())


def test_spending_reaches_alpha_at_the_end_and_little_early():
    assert spent(1.0, ALPHA) == pytest.approx(ALPHA)
    assert spent(0.5, ALPHA) < ALPHA / 10  # O'Brien-Fleming spends almost nothing at half way
    assert spent(0.5, ALPHA, "pocock") > spent(0.5, ALPHA)


def test_boundary_is_exact_binomial():
    # One look at all 10 seeds: the one-sided sign test at 2.5% needs 9 of 10.
    assert boundaries([10], 10, ALPHA) == [9]
    assert stats.binom.sf(8, 10, 0.5) <= ALPHA < stats.binom.sf(7, 10, 0.5)
    # Three seeds can never stop a finding, at any look.
    assert boundaries([3, 6, 9, 12], 12, ALPHA)[0] == 4


@pytest.mark.parametrize(("looks", "max_seeds", "spending"), [
    ([3, 6, 9, 12], 12, "obrien_fleming"),
    ([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16], 16, "obrien_fleming"),
    ([4, 8, 12, 16, 20], 20, "pocock"),
])  # fmt: skip
def test_null_simulation_over_all_looks(looks, max_seeds, spending):
    rng = np.random.default_rng(max_seeds)
    continuous = rng.normal(size=(REPS, max_seeds))
    exact = np.zeros(continuous.shape, dtype=int)
    assert ever_supported(continuous, exact, looks, max_seeds, spending) <= ALPHA + SLACK
    grid = rng.integers(-1, 2, size=(REPS, max_seeds)).astype(float)  # ties with the threshold
    assert ever_supported(grid, exact, looks, max_seeds, spending) <= ALPHA + SLACK
    stop = rng.uniform(-0.5, 1.5, size=continuous.shape)  # censored: lower bounds
    censored = continuous > stop
    recorded = np.where(censored, stop, continuous)
    assert ever_supported(recorded, censored.astype(int), looks, max_seeds) <= ALPHA + SLACK


def test_looking_every_round_without_a_boundary_inflates_the_error():
    """The same looks with the fixed 2.5% sign-test count at each: the error the design avoids."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(REPS, 16))
    supported = np.zeros(REPS, dtype=bool)
    for n in range(6, 17):
        fixed = boundaries([n], n, ALPHA)[0]
        supported |= np.sum(data[:, :n] > 0, axis=1) >= fixed
    assert supported.mean() > ALPHA + SLACK  # 4.1%: the naive design fails the simulation


def test_decision_continues_stops_and_ends_inconclusive():
    looks = [3, 6, 9, 12]
    assert sequential_decision([1.0, 2.0, 3.0], looks[:1], 12, 0.0, "above").decision == "continue"
    found = sequential_decision([1.0] * 12, looks, 12, 0.0, "above")
    assert found.decision == "supported" and found.above == 12
    assert sequential_decision([-1.0] * 12, looks, 12, 0.0, "above").decision == "not supported"
    assert sequential_decision([-1.0] * 12, looks, 12, 0.0, "below").decision == "supported"
    mixed = [1.0, -1.0] * 6
    assert sequential_decision(mixed, looks, 12, 0.0, "above").decision == "inconclusive"
    # Upper bounds above the threshold say nothing about being above it.
    bounded = sequential_decision([1.0] * 12, looks, 12, 0.0, "above", bounds=["upper"] * 12)
    assert bounded.decision == "inconclusive" and bounded.above == 0


@pytest.mark.parametrize(("looks", "max_seeds", "message"), [
    ([3, 3], 6, "increasing"), ([0, 3], 6, "increasing"), ([3, 8], 6, "exceeds max_seeds"),
])  # fmt: skip
def test_bad_looks_are_refused(looks, max_seeds, message):
    with pytest.raises(ValueError, match=message):
        boundaries(looks, max_seeds, ALPHA)


def test_last_look_must_be_the_values_given():
    with pytest.raises(ValueError, match="last look must be the 2 values"):
        sequential_decision([1.0, 2.0], [3], 6, 0.0, "above")
