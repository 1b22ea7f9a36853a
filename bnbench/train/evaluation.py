"""Evaluating a run's model in the modes bnbench reports, without touching the training state.

A network with batch norm gives different numbers depending on which statistics normalize it:

* moving: inference mode, BN's moving averages (what `model.evaluate` does);
* recalibrated: inference mode with each BN layer's population mean and variance re-estimated on
  a fixed set of training batches just before the evaluation (PreciseBN, Wu & Johnson 2021);
* train mode: every batch of the run's own batch size normalized with its own statistics, as
  during training (dropout and other layers stay in inference mode).

Both extra modes go through Keras' compiled `evaluate`/`predict` on a functional wrapper that
shares the model's layers, so they run at the speed of a plain evaluation on every backend. The
wrapper's BN calls update the moving statistics as a side effect; they are snapshotted before
and restored bit for bit after, so training continues exactly as without the evaluation.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from bnbench.config.registries import LOSSES, METRICS
from bnbench.train.prepare import Prepared


class Evaluator:
    """Evaluates one prepared run's model on fixed splits.

    Args:
        prepared: The run; its model is compiled.
        evaluate: The inference-mode evaluation of (x, y) -> {name: value} (the feeder's).
    """

    def __init__(self, prepared: Prepared, evaluate: Any) -> None:
        import keras

        self.run = prepared
        self.moving = evaluate
        model = prepared.model
        self.bn_layers = [
            layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
        ]
        self._train_mode: Any = None
        self._bn_inputs: Any = None
        self._metric_keys = ["loss", *prepared.metric_names]

    @property
    def spec(self) -> Any:
        return self.run.spec.evaluation

    def chosen(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Loss and metrics with the BN statistics the spec chose (`evaluation.bn_statistics`)."""
        if self.spec.bn_statistics == "recalibrated" and self.bn_layers:
            return self.recalibrated(x, y)
        result: dict[str, float] = self.moving(x, y)
        return result

    def train_mode(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Loss and metrics with BN in training mode, in batches of the run's batch size.

        Only full batches are used (a short last batch would normalize with other statistics),
        unless the split is smaller than one batch, which is then one batch.
        """
        if not self.bn_layers:  # without BN, training and inference mode agree
            same: dict[str, float] = self.moving(x, y)
            return same
        batch = self.run.plan.batch_size
        usable = len(x) if len(x) < batch else len(x) // batch * batch
        with self._restored():
            result = self._train_mode_model().evaluate(
                x[:usable], y[:usable], batch_size=min(batch, usable), verbose=0, return_dict=True
            )
        return {k: float(result[k]) for k in self._metric_keys}

    def recalibrated(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Loss and metrics in inference mode with re-estimated BN population statistics."""
        statistics = self.population_statistics()
        with self._restored():
            for layer, (mean, variance) in zip(self.bn_layers, statistics, strict=True):
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
            result: dict[str, float] = self.moving(x, y)
        return result

    def population_statistics(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each BN layer's mean and variance of its input over the recalibration batches.

        The input of each layer is taken with every BN before it in training mode, as during
        training; the population mean is the mean of the batch means and the variance the mean
        of the (biased) batch variances, each batch being what BN normalizes over (Wu & Johnson
        2021). The batches are the run's first `recalibration_batches` training batches.
        """
        run, batch = self.run, self.run.plan.batch_size
        count = min(self.spec.recalibration_batches, len(run.order) // batch)
        index = run.order[: count * batch]
        with self._restored():
            outputs = self._bn_inputs_model().predict(
                run.data.x_train[index], batch_size=batch, verbose=0
            )
        statistics = []
        for layer in self.bn_layers:
            values = np.asarray(outputs[layer.name], dtype=np.float64)
            values = values.reshape(count, batch, *values.shape[1:])
            channel = layer.axis % (values.ndim - 1) + 1  # the layer's axis, past the batch axis
            axes = tuple(a for a in range(1, values.ndim) if a != channel)
            means = values.mean(axis=axes)
            variances = values.var(axis=axes)
            statistics.append((means.mean(axis=0), variances.mean(axis=0)))
        return statistics

    @contextmanager
    def _restored(self) -> Iterator[None]:
        """Restore every BN moving statistic to its exact value on leaving."""
        saved = [
            (layer, np.array(layer.moving_mean), np.array(layer.moving_variance))
            for layer in self.bn_layers
        ]
        try:
            yield
        finally:
            for layer, mean, variance in saved:
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)

    def _train_mode_model(self) -> Any:
        if self._train_mode is None:
            self._train_mode = self._wrapper(outputs="predictions")
            self._train_mode.compile(
                loss=LOSSES[self.run.loss_name],
                metrics=[METRICS[m] for m in self.run.metric_names],
            )
        return self._train_mode

    def _bn_inputs_model(self) -> Any:
        if self._bn_inputs is None:
            self._bn_inputs = self._wrapper(outputs="bn_inputs")
        return self._bn_inputs

    def _wrapper(self, outputs: str) -> Any:
        """A functional model over the same layers, with every BN layer in training mode."""
        import keras

        model = self.run.model
        inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
        node, seen = inputs, {}
        for layer in model.layers:
            if layer in self.bn_layers:
                seen[layer.name] = node
                node = _batch_statistics_class()(layer)(node)
            else:
                node = layer(node)
        return keras.Model(inputs, node if outputs == "predictions" else seen)


@functools.cache
def _batch_statistics_class() -> Any:
    """The wrapper layer class, built on first use (Keras loads only after the backend is set)."""
    import keras

    class BatchStatistics(keras.layers.Layer):  # type: ignore[misc]
        """Calls a BN layer in training mode whatever mode the enclosing model runs in.

        A functional model passes its own `training` flag to every layer that takes one; this
        layer's `call` takes none, so the flag cannot reach the BN layer inside it.
        """

        def __init__(self, layer: Any) -> None:
            super().__init__(name=f"{layer.name}_batch_statistics")
            self.layer = layer

        def call(self, inputs: Any) -> Any:
            return self.layer(inputs, training=True)

    return BatchStatistics
