"""Each BN layer's moving statistics, γ and β, and how far the probe's batch statistics are
from the moving ones, at step 0 and every evaluation point (switch: `diagnostics.bn_statistics`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from bnbench.config.diagnostics import DiagnosticsSpec
from bnbench.results.diagnostics import MOVING_STATISTICS
from bnbench.train.diagnostics.probe import Diagnostic, Probe, Weights


class MovingStatistics(Diagnostic):
    """Per BN layer: means and spreads of the moving statistics, γ and β, and the mean absolute
    gap between the probe's training-mode batch statistics and the moving ones."""

    file = MOVING_STATISTICS

    def __init__(self, spec: DiagnosticsSpec, probe: Probe) -> None:
        import keras

        super().__init__(spec, probe)
        self.layers = [layer for layer in probe.model.layers
                       if isinstance(layer, keras.layers.BatchNormalization)]  # fmt: skip
        self.taps = [layer.name for layer in self.layers]

    def steps(self, total_steps: int, eval_steps: Iterable[int]) -> set[int]:
        return super().steps(total_steps, eval_steps) if self.layers else set()

    def record(self, step: int, weights: Weights) -> list[list[Any]]:
        import keras

        def numpy(variable: Any) -> np.ndarray:
            if variable is None:  # center=False or scale=False
                return np.full(1, np.nan)
            return np.asarray(keras.ops.convert_to_numpy(variable.value), dtype=np.float64)

        rows = []
        for layer in self.layers:
            inputs = weights.tapped[layer.name]
            axis = layer.axis % inputs.ndim
            reduce_axes = tuple(i for i in range(inputs.ndim) if i != axis)
            moving_mean, moving_var = numpy(layer.moving_mean), numpy(layer.moving_variance)
            gamma, beta = numpy(layer.gamma), numpy(layer.beta)
            batch_mean = inputs.mean(axis=reduce_axes, dtype=np.float64)
            batch_var = inputs.var(axis=reduce_axes, dtype=np.float64)  # biased, as Keras does
            batch_mean_gap = np.abs(batch_mean - moving_mean).mean()
            batch_var_gap = np.abs(batch_var - moving_var).mean()
            stats = (moving_mean.mean(), moving_mean.std(), moving_var.mean(),
                     gamma.mean(), gamma.std(), beta.mean(), beta.std(),
                     batch_mean_gap, batch_var_gap)  # fmt: skip
            rows.append([step, layer.name, *map(float, stats)])
        return rows
