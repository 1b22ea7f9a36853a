"""Budgets in passes over the training set: steps and evaluation cadence follow the data."""

from __future__ import annotations

import pytest

from bnbench.analysis.budget import Budget, epoch_budget


def test_steps_are_epochs_of_the_training_set():
    budget = epoch_budget(5, 3840, 32)
    assert budget == Budget(steps=600, eval_every=20, epochs=5, num_train=3840, batch_size=32)
    assert budget.describe() == (
        "600 steps = ceil(5 epochs × 3,840 examples / batch 32), evaluated every 20 steps"
    )


def test_the_same_epochs_scale_with_the_data():
    digits, mnist = epoch_budget(12, 1617, 32), epoch_budget(12, 60000, 32)
    assert digits.steps == 607 and mnist.steps == 22500  # ceil(606.4), 22,500 exactly
    assert mnist.eval_every == 750 and digits.eval_every == 21


def test_a_partial_last_batch_and_float_epochs_round_up_once():
    assert epoch_budget(1, 100, 32).steps == 4  # the last batch of 4 examples is a step
    assert epoch_budget(1.1, 100, 10).steps == 11  # not 12 from 1.1 × 100 / 10 = 11.000000000000002
    assert epoch_budget(0.01, 10, 64).steps == 1  # at least one step
    assert epoch_budget(1, 100, 10, evaluations=1).eval_every == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 100, 32), "epochs must be a positive number, got 0"),
        ((float("inf"), 100, 32), "epochs must be a positive number, got inf"),
        ((1, 0, 32), "num_train must be at least 1, got 0"),
        ((1, 100, 0), "batch_size must be at least 1, got 0"),
        ((1, 100, 32, 0), "evaluations must be at least 1, got 0"),
    ],
    ids=["zero-epochs", "infinite-epochs", "no-data", "zero-batch", "no-evaluations"],
)
def test_budget_refuses_out_of_range_arguments(args, message):
    with pytest.raises(ValueError) as err:
        epoch_budget(*args)
    assert message in str(err.value)
