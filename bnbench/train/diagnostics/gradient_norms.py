"""The norm of each layer's gradient of the probe's loss (training mode), at step 0 and every
evaluation point. The loss is the data loss alone (no regularisation penalties)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bnbench.config.diagnostics import DiagnosticsSpec
from bnbench.results.diagnostics import GRADIENT_NORMS
from bnbench.train.diagnostics.probe import Diagnostic, Probe, Weights

BACKENDS = ("tensorflow", "jax")  # the branches of `_gradients`


class GradientNorms(Diagnostic):
    """One row per layer with trainable variables: the L2 norm over all of them.

    Raises:
        ValueError: on a backend other than TensorFlow or JAX.
    """

    file = GRADIENT_NORMS

    def __init__(self, spec: DiagnosticsSpec, probe: Probe) -> None:
        import keras

        if keras.backend.backend() not in BACKENDS:
            raise ValueError(
                f"gradient_norms needs one of the backends {BACKENDS}, "
                f"got {keras.backend.backend()!r}"
            )
        super().__init__(spec, probe)

    def record(self, step: int, weights: Weights) -> list[list[Any]]:
        model, probe = self.probe.model, self.probe

        def probe_loss(values: list[Any]) -> Any:
            y_pred, _ = model.stateless_call(values, weights.non_trainable, probe.x, training=True)
            return probe.loss(y_pred)

        grads = _gradients(probe_loss, weights.trainable)
        squares = {
            id(v): float(np.sum(np.square(g)))
            for v, g in zip(model.trainable_variables, grads, strict=True)
        }
        rows: list[list[Any]] = []
        for layer in model.layers:
            if layer.trainable_variables:
                total = sum(squares[id(v)] for v in layer.trainable_variables)
                rows.append([step, layer.name, float(np.sqrt(total))])
        return rows


def _gradients(loss: Callable[[list[Any]], Any], values: list[Any]) -> list[np.ndarray]:
    """Gradient of the scalar `loss(values)` w.r.t. each of `values`, one branch per backend.

    Raises:
        ValueError: On a backend other than TensorFlow or JAX.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(values)
            value = loss(values)
        grads = tape.gradient(value, values)
    elif backend == "jax":
        import jax

        grads = jax.grad(loss)(values)
    else:
        raise ValueError(f"gradient_norms needs one of {BACKENDS}, got {backend!r}")
    return [
        np.zeros(v.shape) if g is None else keras.ops.convert_to_numpy(g)
        for v, g in zip(values, grads, strict=True)
    ]
