"""Adaptive seeding: the group-sequential sign test keeps its error over all looks, by null
simulation, while looking after every round of seeds without a boundary does not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bnbench.analysis.sequential import (
    boundaries,
    counts,
    ever_crossed,
    sequential_decision,
    spent,
    step_down,
)

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


# The family: Holm's step-down over every finding's two one-sided group-sequential tests.
FAMILY_ALPHA = 0.05
FAMILY_REPS, FAMILY_SLACK = 10_000, 0.007  # SE 0.0022 at 0.05; 0.007 is 3.2 SE
GRID_LOOKS, GRID_M = [4, 8, 12, 16, 20], 20


def _brute_closure(crossed: np.ndarray) -> np.ndarray:
    """Closed testing by enumeration: h is rejected when every intersection J holding it has
    a member crossed at level alpha / |J|."""
    n = crossed.shape[-1]
    rejected = np.ones(n, dtype=bool)
    for members in range(1, 2**n):
        chosen = [h for h in range(n) if members >> h & 1]
        if not crossed[len(chosen) - 1, chosen].any():
            rejected[chosen] = False
    return rejected


def test_step_down_is_the_closed_test_also_where_boundaries_are_not_monotone():
    rng = np.random.default_rng(3)
    for _ in range(300):  # arbitrary patterns, monotone in the level or not
        crossed = rng.random((5, 5)) < rng.uniform(0.1, 0.9)
        assert np.array_equal(step_down(crossed), _brute_closure(crossed))
    # Monotone crossings: Holm. Levels a/1..a/4; p-values 0.001, 0.013, 0.02, 0.3 at a = 0.05.
    p = np.array([0.001, 0.013, 0.02, 0.3])
    crossed = p[None, :] <= FAMILY_ALPHA / np.arange(1, 5)[:, None]
    assert step_down(crossed).tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="N x N"):
        step_down(np.zeros((3, 4), dtype=bool))


def _family(effects: np.ndarray, grid_valued: bool, seed: int,
            stepped: bool = True) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The until-decided family run round by round on simulated findings, two per claim (their
    values correlated, as findings from the same runs are): per row, which hypotheses were
    rejected (h = 2 f + 0: "above" for finding f, 2 f + 1: "below"), and which are true.

    A claim stops once its findings are decided, as `bnbench.claims.adaptive.settle` does;
    `stepped=False`: Bonferroni (the first step alone) for comparison."""
    rng = np.random.default_rng(seed)
    findings = effects.size
    shared = rng.normal(size=(FAMILY_REPS, findings // 2, 1, GRID_M)).repeat(2, axis=2)
    data = (np.sqrt(0.5) * shared.reshape(FAMILY_REPS, findings, GRID_M)
            + np.sqrt(0.5) * rng.normal(size=(FAMILY_REPS, findings, GRID_M))
            + effects[None, :, None])  # fmt: skip
    if grid_valued:
        data = np.round(2 * data) / 2  # ties with the threshold count for neither side
    codes = np.zeros(data.shape[1:], dtype=int)
    sides = np.zeros((FAMILY_REPS, 2 * findings, len(GRID_LOOKS)), dtype=int)
    for k, n in enumerate(GRID_LOOKS):
        for f in range(findings):
            above, below = counts(data[:, f, :n], np.broadcast_to(codes[f, :n], (FAMILY_REPS, n)),
                                  0.0)  # fmt: skip
            sides[:, 2 * f, k], sides[:, 2 * f + 1, k] = above, below
    hypotheses = 2 * findings
    levels = [FAMILY_ALPHA / m for m in range(1, hypotheses + 1)]
    rejected = np.zeros((FAMILY_REPS, hypotheses), dtype=bool)
    running = np.ones((FAMILY_REPS, findings // 2), dtype=bool)  # claims still adding seeds
    seen = np.full(sides.shape, -1)  # counts at looks not taken never cross
    for k in range(len(GRID_LOOKS)):
        taking = running.repeat(4, axis=1)  # each claim: 2 findings x 2 sides
        seen[:, :, k] = np.where(taking, sides[:, :, k], -1)
        crossed = ever_crossed(seen[:, :, : k + 1], GRID_LOOKS[: k + 1], GRID_M, levels)
        crossed = np.swapaxes(crossed, -1, -2)  # (rows, levels, hypotheses)
        rejected |= step_down(crossed) if stepped else crossed[:, -1, :]
        decided = (rejected[:, 0::2] | rejected[:, 1::2]).reshape(FAMILY_REPS, -1, 2)
        running &= ~decided.all(axis=2)
    true = np.repeat(np.ones(findings, dtype=bool), 2)
    true[0::2], true[1::2] = effects <= 0, effects >= 0  # "above" is true unless it is above
    return rejected, true


@pytest.mark.parametrize(("effects", "grid_valued"), [
    (np.zeros(6), False),                                    # the global null
    (np.zeros(6), True),                                     # grid-valued, with ties
    (np.array([1.5, 1.5, 1.5, 1.5, 1.5, 0.0]), False),       # partial: all but one decided
    (np.array([1.5, -1.5, 0.6, 0.0, 2.0, 0.0]), True),       # mixed, both directions
])  # fmt: skip
def test_family_error_of_the_step_down_over_all_looks(effects, grid_valued):
    rejected, true = _family(effects, grid_valued, seed=int(10 * effects.sum()) + grid_valued)
    assert (rejected & true).any(axis=1).mean() <= FAMILY_ALPHA + FAMILY_SLACK


def test_the_step_down_decides_more_where_many_findings_are_real_and_never_less():
    effects = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 0.6])  # five clear, one weak
    rejected, _ = _family(effects, False, seed=1)
    bonferroni, _ = _family(effects, False, seed=1, stepped=False)
    assert np.all(rejected >= bonferroni)
    # The weak one is decided in 17% of rows by Bonferroni, 33% once the others raise its level.
    assert rejected.sum(axis=1).mean() > bonferroni.sum(axis=1).mean() + 0.1


def test_without_a_correction_the_family_simulation_fails():
    """Each of the 12 hypotheses at a single finding's one-sided level, alpha / 2: the error
    the family would have without the step-down (the simulation can see a failure)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(FAMILY_REPS, 6, GRID_M))
    above = np.stack([np.sum(data[:, :, :n] > 0, axis=2) for n in GRID_LOOKS], axis=-1)
    below = np.stack([np.sum(data[:, :, :n] < 0, axis=2) for n in GRID_LOOKS], axis=-1)
    alone = ever_crossed(np.concatenate([above, below], axis=1), GRID_LOOKS, GRID_M,
                         [FAMILY_ALPHA / 2])[..., 0]  # fmt: skip
    assert alone.any(axis=1).mean() > FAMILY_ALPHA + FAMILY_SLACK


def test_boundaries_need_not_be_monotone_in_the_level():
    """Why `step_down` computes the closure instead of Holm's shortcut: a higher level can
    spend more at early looks and then need more seeds at a later one."""
    looks = list(range(2, 21, 2))
    assert boundaries(looks, 20, FAMILY_ALPHA / 7)[-1] == 17
    assert boundaries(looks, 20, FAMILY_ALPHA / 8)[-1] == 16
