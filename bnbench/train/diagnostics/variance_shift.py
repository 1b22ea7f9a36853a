"""The variance-shift probe of Li et al. (2019): the diagnostic `diagnostics.variance_shift`.

Dropout scales the units it keeps by 1 / (1 - rate) in training and does nothing in inference,
so the layer after it sees a larger variance in training than at inference. A batch-norm layer
fed by dropout gathers its moving variance in training and then normalizes inference-mode inputs
with it: Li et al. call the mismatch the variance shift. The probe measures it on a fixed batch,
for every batch-norm layer, as Var(input with dropout on) / Var(input with dropout off), with
every batch-norm layer normalizing by its moving statistics in both passes: only dropout
differs. (Were the earlier BN layers switched to batch statistics too, their moving averages'
lag early in training would move the ratio by orders of magnitude without any dropout.) A BN
layer after other BN layers still sees the shift of a dropout further up: inference-mode BN is
an affine map and passes it on.

Reference:
    Li, Chen, Hu & Yang, "Understanding the Disharmony between Dropout and Batch Normalization
    by Variance Shift", CVPR 2019.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from bnbench.config.diagnostics import DiagnosticsSpec
from bnbench.results.diagnostics import VARIANCE_SHIFT
from bnbench.train.diagnostics.probe import Diagnostic, Probe, Weights


class VarianceShift(Diagnostic):
    """Per BN layer, at step 0 and every evaluation point: `variance_row` of its input with
    dropout on and off, every BN layer on its moving statistics in both passes."""

    file = VARIANCE_SHIFT

    def __init__(self, spec: DiagnosticsSpec, probe: Probe) -> None:
        import keras

        super().__init__(spec, probe)
        model = probe.model
        self.layers = [layer for layer in model.layers
                       if isinstance(layer, keras.layers.BatchNormalization)]  # fmt: skip
        self.fed = fed_by_dropout(model)
        self.model = _dropout_only_model(model) if self.layers else None
        self.positions = probe.positions(self.model) if self.model is not None else ([], [])

    def steps(self, total_steps: int, eval_steps: Iterable[int]) -> set[int]:
        return super().steps(total_steps, eval_steps) if self.layers else set()

    def record(self, step: int, weights: Weights) -> list[list[Any]]:
        if self.model is None:
            return []
        # Only dropout differs between the two passes (`_dropout_only_model`).
        train = self.probe.outputs(self.model, self.positions, weights, training=True)
        inference = self.probe.outputs(self.model, self.positions, weights, training=False)
        return [
            variance_row(step, layer.name, layer.name in self.fed, train[layer.name],
                         inference[layer.name], layer.axis)
            for layer in self.layers
        ]  # fmt: skip


def fed_by_dropout(model: Any) -> set[str]:
    """Names of the batch-norm layers with a dropout layer between them and the previous batch-
    norm layer (or the model's input), in the model's layer order."""
    import keras

    fed, dropout_seen = set(), False
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            dropout_seen = True
        elif isinstance(layer, keras.layers.BatchNormalization):
            if dropout_seen:
                fed.add(layer.name)
            dropout_seen = False
    return fed


def variance_row(
    step: int, layer: str, fed: bool, train: np.ndarray, inference: np.ndarray, axis: int
) -> list[Any]:
    """One `variance_shift.csv` row from a layer's input in training and in inference mode.

    Each unit's (channel's) variance is taken over the probe's examples (and positions), the
    biased estimate that batch norm itself uses. The ratio is the geometric mean over units of
    train / inference variance, a ratio's natural average (a unit at 2 and one at 1/2 average
    to 1); units whose variance is zero in either mode (dead units) are left out, and
    `averaged_units` says how many remain (the ratio is NaN without any).

    Args:
        step: The training step.
        layer: The batch-norm layer's name.
        fed: Whether dropout feeds it (`fed_by_dropout`).
        train: Its input on the probe with dropout on.
        inference: Its input on the same probe with dropout off.
        axis: The layer's feature axis.
    """
    channel = axis % train.ndim
    reduce = tuple(i for i in range(train.ndim) if i != channel)
    train_var = train.var(axis=reduce, dtype=np.float64)
    inference_var = inference.var(axis=reduce, dtype=np.float64)
    usable = (train_var > 0) & (inference_var > 0) & np.isfinite(train_var * inference_var)
    count = int(usable.sum())
    log_ratio = np.log(train_var[usable]) - np.log(inference_var[usable])
    ratio = float(np.exp(log_ratio.mean())) if count else float("nan")
    return [step, layer, fed, ratio, float(train_var.mean()), float(inference_var.mean()), count]


def _dropout_only_model(model: Any) -> Any:
    """The model's layers called anew with every batch-norm layer fixed in inference mode,
    returning each batch-norm layer's input by name.

    Called with `training=True`, only dropout (and other training-only noise) acts; so the two
    passes of the variance-shift probe differ by dropout alone, as in Li et al.'s analysis,
    instead of also by the batch-versus-moving statistics of every earlier BN layer (which
    early in training move a layer's input variance by orders of magnitude on their own).
    """
    import keras

    class InferenceMode(keras.layers.Layer):  # type: ignore[misc]
        """Calls a layer with training=False. A functional model hands its own `training` to
        every layer whose call takes one, overriding a node's; this call takes none."""

        def __init__(self, layer: Any) -> None:
            super().__init__(name=f"{layer.name}_inference_mode")
            self.inner = layer

        def call(self, x: Any) -> Any:
            return self.inner(x, training=False)

    inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    x, taps = inputs, {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            taps[layer.name] = x
            x = InferenceMode(layer)(x)
        else:
            x = layer(x)
    return keras.Model(inputs=inputs, outputs=taps)
