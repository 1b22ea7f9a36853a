"""The diagnostics recorder: runs the enabled diagnostics at their steps and writes their CSVs.

A diagnostic is one module of this package (a `probe.Diagnostic` subclass naming its file in
`bnbench.results.diagnostics`) listed once in `DIAGNOSTICS`; the recorder knows none of them by
name. Diagnostics that read layer inputs in training mode share one forward pass per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.config.diagnostics import DiagnosticsSpec
from bnbench.results.diagnostics import FILES
from bnbench.train.diagnostics.activation_percentiles import ActivationPercentiles
from bnbench.train.diagnostics.gradient_norms import GradientNorms
from bnbench.train.diagnostics.moving_statistics import MovingStatistics
from bnbench.train.diagnostics.probe import Diagnostic, Probe, Weights
from bnbench.train.diagnostics.train_inference_gap import TrainInferenceGap
from bnbench.train.diagnostics.variance_shift import VarianceShift

# Every diagnostic, in the order of `bnbench.results.diagnostics.FILES` (checked below).
DIAGNOSTICS: tuple[type[Diagnostic], ...] = (
    ActivationPercentiles, MovingStatistics, TrainInferenceGap, GradientNorms, VarianceShift
)  # fmt: skip
if tuple(d.file for d in DIAGNOSTICS) != FILES:  # a module and the results contract disagree
    raise ImportError("bnbench.train.diagnostics: DIAGNOSTICS does not follow results' FILES")


def make_recorder(
    spec: DiagnosticsSpec | None,
    model: Any,
    probe_x: np.ndarray,
    probe_y: np.ndarray,
    loss_fn: Callable[[Any, Any], Any],
    metric_name: str | None,
    batch_size: int | None = None,
) -> DiagnosticsRecorder | None:
    """Builds a recorder for `model`, or returns None when no diagnostic is enabled.

    Args:
        spec: The diagnostics section of the run spec.
        model: A built Keras model following the `block{i}_*` naming contract.
        probe_x: Fixed input batch from the training set.
        probe_y: Targets of `probe_x` (int class ids for classification).
        loss_fn: `(y_true, y_pred) -> loss`, a Keras loss object or function; a
            per-example result is averaged over the probe batch.
        metric_name: "accuracy" (sparse categorical) or None for regression.
        batch_size: The run's batch size: training mode is measured on probe batches of this
            size, so that BN normalizes over as many examples as in training (None: the whole
            probe as one batch).

    Returns:
        A `DiagnosticsRecorder`, or None when nothing is enabled.

    Raises:
        ValueError: For an unknown block or metric name, or gradient norms on a backend
            other than TensorFlow or JAX.
    """
    if spec is None or not spec.enabled:
        return None
    return DiagnosticsRecorder(spec, model, probe_x, probe_y, loss_fn, metric_name, batch_size)


class DiagnosticsRecorder:
    """Records the enabled diagnostics at chosen steps and writes them as CSV files."""

    def __init__(
        self,
        spec: DiagnosticsSpec,
        model: Any,
        probe_x: np.ndarray,
        probe_y: np.ndarray,
        loss_fn: Callable[[Any, Any], Any],
        metric_name: str | None,
        batch_size: int | None = None,
    ) -> None:
        import keras

        self._probe = Probe(model, probe_x, probe_y, loss_fn, metric_name, batch_size)
        self._enabled = [d(spec, self._probe) for d in DIAGNOSTICS if getattr(spec, d.file.switch)]
        # One probe model for every tapped layer input; a dict keeps its structure for one.
        taps = [name for diagnostic in self._enabled for name in diagnostic.taps]
        self._tap_model: Any = None
        if taps:
            outputs = {name: model.get_layer(name).input for name in taps}
            self._tap_model = keras.Model(inputs=model.inputs[0], outputs=outputs)
            self._tap_positions = self._probe.positions(self._tap_model)
        self._steps: list[set[int]] | None = None
        self._rows: list[list[list[Any]]] = [[] for _ in self._enabled]

    def steps(self, total_steps: int, eval_steps: Iterable[int]) -> set[int]:
        """Returns the steps at which `record` must be called (0 = before training)."""
        points = list(eval_steps)
        self._steps = [d.steps(total_steps, points) for d in self._enabled]
        return set().union(*self._steps)

    def record(self, step: int) -> None:
        """Records the diagnostics due at `step` from the model's current weights.

        Never modifies the model: variable updates returned by `stateless_call` are dropped.

        Raises:
            RuntimeError: If `steps` was not called first.
        """
        import keras

        if self._steps is None:
            raise RuntimeError("DiagnosticsRecorder.steps() must be called before record()")
        model = self._probe.model
        trainable, non_trainable = (
            [keras.ops.convert_to_tensor(v.value) for v in variables]
            for variables in (model.trainable_variables, model.non_trainable_variables)
        )

        def tap() -> dict[str, np.ndarray]:
            # Training mode: batch statistics, as during training and in Ioffe & Szegedy's
            # Figure 1.
            return self._probe.outputs(self._tap_model, self._tap_positions, weights, True)

        weights = Weights(trainable, non_trainable, tap)
        for diagnostic, due, rows in zip(self._enabled, self._steps, self._rows, strict=True):
            if step in due:
                rows.extend(diagnostic.record(step, weights))

    def finish(self, run_dir: Path) -> None:
        """Writes one CSV per enabled diagnostic into `run_dir/diagnostics/`, atomically."""
        for diagnostic, rows in zip(self._enabled, self._rows, strict=True):
            diagnostic.file.write(run_dir, rows, diagnostic.columns)
