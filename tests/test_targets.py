"""Relative targets from run histories: plateaus, the target record, steps to it (censored)."""

from __future__ import annotations

import math

import pytest

from bnbench.analysis.paired import paired_speedup
from bnbench.analysis.targets import (
    Curve,
    Hit,
    RelativeTarget,
    best_setting,
    curves,
    hits,
    plateau,
    relative_target,
    steps_to_target,
)
from bnbench.results.tree import load_results_tree
from tests.support import export_tree

NAN = float("nan")
STEPS = (20, 40, 60, 80, 100)


def _curve(*values: float) -> Curve:
    return Curve(STEPS[: len(values)], values)


# BN climbs fast to 0.95; no_bn slowly to 0.90 (seed 1 peaks early then overfits).
ARMS = {
    "bn": {0: _curve(0.60, 0.90, 0.94, 0.95, 0.95), 1: _curve(0.70, 0.92, 0.95, 0.95, 0.94)},
    "no_bn": {0: _curve(0.20, 0.40, 0.70, 0.85, 0.90), 1: _curve(0.30, 0.50, 0.90, 0.88, 0.86)},
}


def _target(value: float, metric: str = "val_accuracy") -> RelativeTarget:
    return RelativeTarget(metric, value, 0.9, value / 0.9, 0.0, "no_bn", "hand-built", 2, 20)


# --- plateaus -----------------------------------------------------------------------------------


def test_plateau_best_and_last_k():
    runs = ARMS["no_bn"]
    assert plateau(runs, higher_is_better=True) == pytest.approx((0.90 + 0.90) / 2)
    assert plateau(runs, higher_is_better=True, rule="last", last=2) == pytest.approx(
        ((0.85 + 0.90) / 2 + (0.88 + 0.86) / 2) / 2
    )
    losses = {0: _curve(2.0, 0.5, 0.7), 1: _curve(1.0, 0.3, NAN)}
    assert plateau(losses, higher_is_better=False) == pytest.approx((0.5 + 0.3) / 2)


def test_plateau_skips_non_finite_values_and_runs_without_any():
    runs = {0: _curve(0.5, NAN, 0.7), 1: _curve(NAN, NAN)}
    assert plateau(runs, higher_is_better=True) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no run has a finite value"):
        plateau({1: _curve(NAN, NAN)}, higher_is_better=True)
    with pytest.raises(ValueError, match="last must be at least 1 evaluation, got 0"):
        plateau(runs, higher_is_better=True, rule="last", last=0)


# --- the target -------------------------------------------------------------------------------


def test_target_is_a_fraction_of_the_slower_arms_plateau():
    target = relative_target(ARMS, "val_accuracy", 0.9)
    assert target.arm == "no_bn" and target.plateau == pytest.approx(0.90)
    assert target.value == pytest.approx(0.81) and target.resolution == 20 and target.runs == 2
    assert target.describe() == (
        "target val_accuracy 0.81 = 0.9 × plateau 0.9 of no_bn (mean over 2 runs of the best "
        "val_accuracy), checked every 20 steps"
    )


def test_target_from_a_named_reference_and_a_chance_baseline():
    target = relative_target(ARMS, "val_accuracy", 0.5, reference="bn", baseline=0.1,
                             rule="last", last=2)  # fmt: skip
    level = ((0.95 + 0.95) / 2 + (0.95 + 0.94) / 2) / 2
    assert target.arm == "bn" and target.plateau == pytest.approx(level)
    assert target.value == pytest.approx(0.1 + 0.5 * (level - 0.1))
    assert "0.1 + 0.5 × (plateau 0.948 − 0.1)" in target.describe()
    assert "mean of the last 2 evaluations" in target.describe()


def test_loss_target_counts_down_from_the_starting_loss():
    arms = {"a": {0: _curve(2.3, 1.0, 0.3)}, "b": {0: _curve(2.3, 1.5, 0.5)}}
    target = relative_target(arms, "val_loss", 0.9, baseline=2.3)
    assert target.arm == "b"  # the worse plateau of a loss is the higher one
    assert target.value == pytest.approx(2.3 + 0.9 * (0.5 - 2.3))
    assert not target.higher_is_better and target.reached(0.6) and not target.reached(0.8)


def test_a_run_without_a_finite_value_is_not_counted_in_the_plateau():
    arms = {"a": {0: _curve(0.5, 0.8), 1: _curve(NAN, NAN)}}
    target = relative_target(arms, "val_accuracy", 0.5)
    assert target.plateau == pytest.approx(0.8) and target.runs == 1
    assert "mean over 1 run of the best" in target.describe()


def test_resolution_is_the_widest_gap_between_evaluations():
    arms = {"a": {0: Curve((50, 100, 130), (0.1, 0.2, 0.3))}}
    assert relative_target(arms, "val_accuracy", 0.5).resolution == 50


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fraction": 0.0}, "fraction must be in (0, 1], got 0.0"),
        ({"fraction": 1.5}, "fraction must be in (0, 1], got 1.5"),
        ({"reference": "ghost"}, "unknown reference arm 'ghost'; arms: bn, no_bn"),
        ({"baseline": 0.95}, "the plateau 0.9 of no_bn is not above the baseline 0.95"),
    ],
    ids=["zero", "above-one", "unknown-arm", "nothing-learned"],
)
def test_target_refuses_what_it_cannot_derive(kwargs, message):
    args = {"fraction": 0.9} | kwargs
    with pytest.raises(ValueError) as err:
        relative_target(ARMS, "val_accuracy", **args)
    assert message in str(err.value)


def test_loss_target_needs_a_baseline_above_the_plateau():
    with pytest.raises(ValueError, match="not below the baseline 0"):
        relative_target({"a": {0: _curve(2.0, 1.0)}}, "val_loss", 0.9)
    with pytest.raises(ValueError, match="no arms"):
        relative_target({}, "val_accuracy", 0.9)


# An MSE that falls over orders of magnitude, from Var(y) = 1e4: "fast" reaches its plateau of 1
# by step 60, "slow" creeps to 10 by step 100.
MSE = {"fast": {0: _curve(900.0, 15.0, 1.0, 1.0, 1.0)},
       "slow": {0: _curve(1000.0, 500.0, 100.0, 25.0, 10.0)}}  # fmt: skip


def test_log_scale_target_is_a_fraction_of_the_way_in_log_loss():
    target = relative_target(MSE, "val_loss", 0.9, baseline=1e4, scale="log")
    assert target.arm == "slow" and target.plateau == pytest.approx(10.0)
    # 1e4 × (10 / 1e4) ** 0.9: 90% of the three decades down, 1 − R² = (1e-3) ** 0.9
    assert target.value == pytest.approx(10 ** (4 - 0.9 * 3)) and target.scale == "log"
    assert target.describe().startswith(
        "target val_loss 20 = 1e+04 × (plateau 10 / 1e+04)^0.9 (log scale) of slow"
    )
    log_hits = hits(MSE["slow"], target) | {1: steps_to_target(MSE["fast"][0], target)}
    assert {s: (h.previous, h.step) for s, h in log_hits.items()} == {0: (80, 100), 1: (20, 40)}


def test_a_linear_fraction_of_a_loss_spanning_decades_is_reached_at_once():
    """90% of the linear way from 1e4 to 10 is an MSE of ~1,000: both arms pass it at their
    first evaluation, so steps to it cannot tell them apart; on the log scale 40 against 100."""
    linear = relative_target(MSE, "val_loss", 0.9, baseline=1e4)
    assert linear.value == pytest.approx(1e4 + 0.9 * (10 - 1e4)) and linear.scale == "linear"
    assert [steps_to_target(MSE[arm][0], linear).step for arm in ("fast", "slow")] == [20, 20]
    logged = relative_target(MSE, "val_loss", 0.9, baseline=1e4, scale="log")
    assert [steps_to_target(MSE[arm][0], logged).step for arm in ("fast", "slow")] == [40, 100]


@pytest.mark.parametrize(
    ("baseline", "arms", "message"),
    [
        (0.0, MSE, "a log-scale target needs a positive baseline, got 0.0"),
        (-1.0, MSE, "a log-scale target needs a positive baseline, got -1.0"),
        (1e4, {"a": {0: _curve(5.0, 0.0)}}, "needs a positive plateau, got 0 of a"),
        (1e4, {"a": {0: _curve(2e4, 3e4)}}, "the plateau 2e+04 of a is not below the baseline"),
    ],
    ids=["zero-baseline", "negative-baseline", "zero-plateau", "nothing-learned"],
)
def test_log_scale_target_refuses_what_it_cannot_take_a_log_of(baseline, arms, message):
    with pytest.raises(ValueError) as err:
        relative_target(arms, "val_loss", 0.9, baseline=baseline, scale="log")
    assert message in str(err.value)


def test_best_setting_is_where_the_plateau_is_best():
    rates = {1e-5: {0: _curve(9.0, 4.0), 1: _curve(8.0, 6.0)},  # plateau 5
             1e-4: {0: _curve(3.0, NAN), 1: _curve(2.0, 1.0)},  # plateau 2: a diverged run's
             1e-3: {0: _curve(NAN, NAN), 1: _curve(NAN)}}  # best before it blew up counts
    assert best_setting(rates, higher_is_better=False) == 1e-4
    assert best_setting(rates, higher_is_better=True) == 1e-5  # an accuracy: the highest
    tie = {"a": {0: _curve(0.5)}, "b": {0: _curve(0.5)}}
    assert best_setting(tie, higher_is_better=True) == "a"  # the first in order
    with pytest.raises(ValueError, match="no setting has a run with a finite value"):
        best_setting({1e-3: rates[1e-3]}, higher_is_better=False)
    with pytest.raises(ValueError, match="last must be at least 1 evaluation, got 0"):
        best_setting(rates, higher_is_better=False, rule="last", last=0)


# --- steps to the target ------------------------------------------------------------------------


def test_steps_to_target_is_an_interval_between_evaluations():
    target = _target(0.81)
    assert steps_to_target(ARMS["no_bn"][0], target) == Hit(80, 60, 100)
    assert steps_to_target(ARMS["bn"][0], target) == Hit(40, 20, 100)
    first = steps_to_target(_curve(0.85, 0.9), target)
    assert first == Hit(20, 0, 40) and first.describe() == "reached between step 0 and 20"
    exact = steps_to_target(_curve(0.5, 0.81), target)  # at the target counts as reached
    assert exact.step == 40


def test_never_reached_is_a_lower_bound_at_the_last_step_or_the_budget():
    target = _target(0.81)
    never = steps_to_target(_curve(0.2, 0.5, 0.6), target)
    assert never == Hit(None, 60, 60) and never.censored
    assert never.describe() == "not reached by step 60"
    diverged = steps_to_target(_curve(0.5, NAN), target, last_step=100)
    assert diverged == Hit(None, 40, 100)  # NaN never reaches; censored at its planned length
    with pytest.raises(ValueError, match="last_step 30 is before the last evaluation, 40"):
        steps_to_target(_curve(0.5, 0.6), target, last_step=30)


def test_loss_target_is_reached_from_above():
    target = _target(0.5, metric="val_loss")
    assert steps_to_target(_curve(2.0, 0.7, 0.5, 0.4), target) == Hit(60, 40, 80)


def test_hits_feed_the_paired_speedup():
    target = relative_target(ARMS, "val_accuracy", 0.9)
    bn, no_bn = hits(ARMS["bn"], target), hits(ARMS["no_bn"], target)
    assert {s: h.step for s, h in bn.items()} == {0: 40, 1: 40}
    assert {s: h.step for s, h in no_bn.items()} == {0: 80, 1: 60}
    speedup = paired_speedup({s: h.time_to_target() for s, h in bn.items()},
                             {s: h.time_to_target() for s, h in no_bn.items()})  # fmt: skip
    # a geometric mean of the seeds' ratios, the one definition tables and claims share
    assert speedup.bound == "exact" and speedup.value == pytest.approx((80 / 40 * 60 / 40) ** 0.5)
    censored = Hit(None, 100, 100).time_to_target()
    assert censored.censored and censored.time == 100


@pytest.mark.parametrize(
    ("steps", "values", "message"),
    [
        ((), (), "at least one step"),
        ((10, 20), (0.5,), "got 2 steps and 1 values"),
        ((20, 10), (0.5, 0.6), "steps must be positive and increasing, got [20, 10]"),
        ((0, 10), (0.5, 0.6), "steps must be positive and increasing, got [0, 10]"),
    ],
    ids=["empty", "lengths", "order", "zero"],
)
def test_curve_refuses_malformed_histories(steps, values, message):
    with pytest.raises(ValueError) as err:
        Curve(steps, values)
    assert message in str(err.value)


# --- curves from a results tree -----------------------------------------------------------------


def test_curves_read_from_a_results_tree(tmp_path):
    tree = load_results_tree(export_tree.write_tree(tmp_path / "tree"))
    plain = curves(tree.histories, "val_accuracy", "plain", export_tree.cell(0.1))
    assert sorted(plain) == [0, 1]
    assert plain[0].steps == export_tree.STEPS
    expected = [export_tree.value("plain", 0.1, 0, s, "val_accuracy") for s in export_tree.STEPS]
    assert plain[0].values == pytest.approx(expected)
    assert plain[1].steps == (10, 20) and math.isnan(plain[1].values[1])  # diverged at step 20
    with pytest.raises(ValueError, match="several runs of seed 0; name the grid cell"):
        curves(tree.histories, "val_accuracy", "plain")
    with pytest.raises(ValueError, match="'val_auc' is not in the histories"):
        curves(tree.histories, "val_auc", "plain")
