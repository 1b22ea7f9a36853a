"""The divergence rule (README: Divergence), including runs whose initial loss is high."""

from __future__ import annotations

import math

from bnbench.train.monitor import divergence_reason

LN10 = math.log(10)


def test_non_finite_and_factor_rules_fire_as_before():
    assert divergence_reason(math.nan, 1.0, initial=2.3, previous=None, factor=3.0) == (
        "non-finite loss"
    )
    reason = divergence_reason(7.5, 7.0, initial=2.3, previous=None, factor=3.0)
    assert reason is not None and "3 × the initial 2.3" in reason
    assert divergence_reason(6.0, 6.0, initial=2.3, previous=None, factor=3.0) is None


def test_a_blown_up_classifier_with_a_high_initial_loss_diverges():
    # init scale σ = 1 starts at ~14: 3 × 14 is above Keras' clip at 16.1, so only the
    # chance-level rule can see a run that sits at the clipped loss and chance accuracy.
    reason = divergence_reason(
        14.6, 14.5, initial=14.0, previous=None, factor=3.0,
        num_classes=10, train_accuracy=0.10, chance=0.11,
    )  # fmt: skip
    assert reason is not None and "ln 10" in reason and f"{3 * LN10:.4g}" in reason


def test_a_high_start_that_is_learning_is_not_cut_short():
    falling = divergence_reason(
        9.0, 8.0, initial=14.0, previous=None, factor=3.0,
        num_classes=10, train_accuracy=0.10, chance=0.11,
    )  # fmt: skip
    above_chance = divergence_reason(
        14.6, 14.5, initial=14.0, previous=None, factor=3.0,
        num_classes=10, train_accuracy=0.40, chance=0.11,
    )  # fmt: skip
    below_level = divergence_reason(
        6.5, 6.5, initial=6.0, previous=6.4, factor=3.0,
        num_classes=10, train_accuracy=0.10, chance=0.11,
    )  # fmt: skip
    assert falling is None and above_chance is None and below_level is None


def test_rising_since_the_previous_point_is_measured_against_it():
    args = {"initial": 14.0, "factor": 3.0, "num_classes": 10, "train_accuracy": 0.1,
            "chance": 0.1}  # fmt: skip
    assert divergence_reason(12.0, 12.0, previous=11.0, **args) is not None
    assert divergence_reason(12.0, 12.0, previous=13.0, **args) is None


def test_regression_models_keep_the_factor_rule_only():
    assert divergence_reason(40.0, 40.0, initial=14.0, previous=10.0, factor=3.0) is None
