"""Seed statistics: censored time to target and the validation score that picks best cells."""

from __future__ import annotations

import math

import pytest

from bnbench.analysis.paired import Speedup, TimeToTarget, paired_speedup
from bnbench.errors import SpecError
from bnbench.results.rows import validation_score


def _reached(steps: float, last: float = 500) -> TimeToTarget:
    return TimeToTarget(steps, last)


def _never(last: float | None = 500) -> TimeToTarget:
    return TimeToTarget(None, last)


def test_time_to_target_of_a_censored_run_is_its_last_step():
    assert _never(300).censored and _never(300).time == 300
    assert not _reached(120).censored and _reached(120).time == 120


def test_speedup_when_both_reach_is_exact_geometric_mean_of_ratios():
    arm = {0: _reached(100), 1: _reached(50)}
    reference = {0: _reached(200), 1: _reached(100)}
    assert paired_speedup(arm, reference) == Speedup(2.0, "exact", 2)


def test_reference_that_never_reaches_gives_a_lower_bound():
    arm = {0: _reached(100), 1: _reached(50)}
    reference = {0: _never(400), 1: _reached(100)}
    speedup = paired_speedup(arm, reference)
    assert speedup.bound == "lower" and speedup.pairs == 2
    # The geometric mean (the claims' speedup too), no longer the arithmetic mean (3.0).
    assert speedup.value == pytest.approx(math.sqrt(400 / 100 * 100 / 50))


def test_speedup_and_slowdown_of_the_same_size_average_to_one():
    arm = {0: _reached(100), 1: _reached(200)}
    reference = {0: _reached(200), 1: _reached(100)}
    assert paired_speedup(arm, reference) == Speedup(pytest.approx(1.0), "exact", 2)  # type: ignore[arg-type]


def test_arm_that_never_reaches_gives_an_upper_bound():
    speedup = paired_speedup({0: _never(400)}, {0: _reached(200)})
    assert speedup == Speedup(0.5, "upper", 1)


def test_pairs_where_neither_reaches_say_nothing():
    arm = {0: _never(), 1: _reached(100)}
    reference = {0: _never(), 1: _reached(150)}
    assert paired_speedup(arm, reference) == Speedup(1.5, "exact", 1)
    assert paired_speedup({0: _never()}, {0: _never()}) == Speedup(None, "", 0)


def test_lower_and_upper_bounds_together_bound_nothing():
    arm = {0: _reached(100), 1: _never(500)}
    reference = {0: _never(500), 1: _reached(100)}
    assert paired_speedup(arm, reference) == Speedup(None, "", 2)


def test_unpaired_unknown_and_zero_step_seeds_are_left_out():
    arm = {0: _reached(100), 1: _reached(0), 2: _reached(100), 3: _reached(100)}
    reference = {0: _reached(300), 1: _reached(100), 2: _never(None)}
    assert paired_speedup(arm, reference) == Speedup(pytest.approx(3.0), "exact", 1)  # type: ignore[arg-type]
    assert paired_speedup({}, {}) == Speedup(None, "", 0)


def test_validation_score_follows_the_metric_direction():
    assert validation_score("accuracy") == (
        "final_val_metric",
        "mean final validation accuracy",
        True,
    )
    assert validation_score("mean_absolute_error", "best")[2] is False
    assert validation_score(None, "best") == ("best_val_loss", "mean best validation loss", False)
    with pytest.raises(SpecError, match="'test'"):
        validation_score("accuracy", "test")  # type: ignore[arg-type]
