"""Training budgets that follow the data: a length declared in passes over the training set,
turned into optimizer steps for the data and batch size at hand.

A fixed step count does not transfer between datasets. 600 steps at batch 32 are 12 passes over
scikit-learn's 1,617 digits but a third of one pass over MNIST's 60,000, so a claim tuned on
digits would compare arms that have barely started; the reverse overfits a small set for most of
the run. How far SGD gets depends, to first order, on how many times it has seen each example,
so a claim family declares its length in epochs and each dataset gets the steps that make:
steps = ceil(epochs × training examples / batch size). The model enters through that declared
number: a family that trains slowly (deep sigmoid MLPs without BN, Ioffe & Szegedy 2015)
declares more epochs than one that does not. The evaluation cadence scales with the length, so
every run is seen at about the same number of points, and a step to a target is known to within
`eval_every` whatever the data (`bnbench.analysis.targets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Evaluation points per run: enough to place a step to a target within ~3% of the run, few
# enough that evaluating on the held-out set costs little beside training.
EVALUATIONS = 30


@dataclass(frozen=True)
class Budget:
    """A run's length in steps, and how it was derived.

    Attributes:
        steps: Optimizer steps.
        eval_every: Steps between evaluations (the resolution of a step to a target).
        epochs: The declared passes over the training set.
        num_train: Training examples (after any subset and held-out split).
        batch_size: Examples per step.
    """

    steps: int
    eval_every: int
    epochs: float
    num_train: int
    batch_size: int

    def describe(self) -> str:
        """E.g. "600 steps = ceil(5 epochs × 3,840 examples / batch 32), evaluated every 20
        steps"."""
        return (
            f"{self.steps:,} steps = ceil({self.epochs:g} epochs × {self.num_train:,} examples / "
            f"batch {self.batch_size}), evaluated every {self.eval_every} steps"
        )


def epoch_budget(
    epochs: float, num_train: int, batch_size: int, evaluations: int = EVALUATIONS
) -> Budget:
    """The steps that make `epochs` passes over `num_train` examples at `batch_size`.

    Args:
        epochs: Passes over the training set, positive (a claim family's declared length).
        num_train: Training examples, at least 1.
        batch_size: Examples per step, at least 1.
        evaluations: About how many evaluation points the run gets, at least 1.

    Returns:
        steps = ceil(epochs × num_train / batch_size) and eval_every = ceil(steps / evaluations).

    Raises:
        ValueError: an argument out of range (the message quotes it).
    """
    if not (math.isfinite(epochs) and epochs > 0):
        raise ValueError(f"epochs must be a positive number, got {epochs!r}")
    for name, value in (("num_train", num_train), ("batch_size", batch_size),
                        ("evaluations", evaluations)):  # fmt: skip
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value!r}")
    # Rounded first, so that 1.1 epochs × 100 / 10 is 11 steps, not 12 from float error.
    steps = max(1, math.ceil(round(epochs * num_train / batch_size, 9)))
    return Budget(steps, math.ceil(steps / evaluations), epochs, num_train, batch_size)
