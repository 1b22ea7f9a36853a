"""Shifted test inputs for `evaluation.shift`: the corruption, and which examples adapt BN.

Both are drawn from the run's seed, from a stream of their own, so a run's shifted evaluation is
the same every time and independent of the batch order (`bnbench.train.schedule.batch_order`).
What the numbers mean is `bnbench.config.schema.ShiftSpec`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bnbench.config.schema import ShiftSpec
from bnbench.errors import SpecError

# Separates this stream from the run's other seeded draws ("shift" in ASCII).
_STREAM = 0x7368696674


@dataclass(frozen=True)
class ShiftedSplit:
    """The test split with the shift applied, and the order in which it adapts BN.

    Attributes:
        x: The shifted inputs, in the split's order, float32.
        adapt_order: A permutation of the split; re-estimating on N examples uses its first N.
    """

    x: np.ndarray
    adapt_order: np.ndarray

    def adapt_inputs(self, examples: int) -> np.ndarray:
        """The N shifted examples BN statistics are re-estimated on."""
        inputs: np.ndarray = self.x[self.adapt_order[:examples]]
        return inputs


def shift_split(x: np.ndarray, spec: ShiftSpec, seed: int) -> ShiftedSplit:
    """Apply the shift of `spec` to the inputs `x`, drawing from `seed`.

    Args:
        x: The test inputs as the model sees them (after `dataset.normalize`), examples first.
        spec: The shift.
        seed: The run's seed.

    Returns:
        The shifted inputs and the order of the examples that adapt BN.
    """
    rng = np.random.default_rng([_STREAM, seed])
    values = np.asarray(x, dtype=np.float32)
    if spec.kind == "noise":
        noise = rng.standard_normal(values.shape, dtype=np.float32)
        shifted = values + np.float32(spec.severity) * noise
    else:
        axes = tuple(range(1, values.ndim))
        mean = values.mean(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32)
        shifted = mean + np.float32(spec.severity) * (values - mean)
    return ShiftedSplit(shifted.astype(np.float32), rng.permutation(len(values)))


def check_shift(spec: ShiftSpec | None, test_examples: int) -> None:
    """Refuse re-estimation on more examples than the test split holds.

    Raises:
        SpecError: the largest of `adapt_examples` exceeds `test_examples`.
    """
    if spec is not None and max(spec.adapt_examples) > test_examples:
        raise SpecError(
            f"evaluation.shift.adapt_examples: {max(spec.adapt_examples)} examples asked for, "
            f"but the test split holds {test_examples}"
        )
