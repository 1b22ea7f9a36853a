"""Evaluating a run's model in the modes bnbench reports, without touching the training state.

A network with batch norm gives different numbers depending on which statistics normalize it:

* moving: inference mode, BN's moving averages (what `model.evaluate` does);
* recalibrated: inference mode with each BN layer's population mean and variance re-estimated on
  a fixed set of training batches just before the evaluation (PreciseBN, Wu & Johnson 2021);
* train mode: every batch of the run's own batch size normalized with its own statistics, as
  during training (dropout and other layers stay in inference mode);
* shifted (`evaluation.shift`, after training only): the test split with shifted inputs, with
  the moving statistics and with statistics re-estimated on N shifted test examples
  (Schneider et al. 2020; `bnbench.config.schema.ShiftSpec` says what the numbers mean).

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
from bnbench.results.rundir import shifted_key
from bnbench.train.prepare import Prepared
from bnbench.train.shift import shift_split

# Re-estimation feeds its N examples in zero-padded batches of this size, so that every N runs
# one compiled shape (each row is independent in inference mode; the padding is never read).
ADAPT_BATCH = 256


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
        self._bn_inputs_inference: Any = None
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
        batch = self.run.schedule.batch_size
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
        run, batch = self.run, self.run.schedule.batch_size
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

    def shifted(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Loss and metrics on the shifted split, keyed by `rundir.shifted_key`.

        First with the moving statistics, then for each N of `evaluation.shift.adapt_examples`
        with every BN layer's statistics re-estimated on N shifted examples
        (`adapted_statistics`); each N starts again from the moving statistics, and all are
        restored on leaving. Without BN layers there is nothing to re-estimate: every N scores
        as the moving statistics do.
        """
        shift = self.spec.shift
        if shift is None:
            return {}
        split = shift_split(x, shift, self.run.spec.seed)
        result: dict[str, float] = self.moving(split.x, y)
        scores = {shifted_key(k, None): float(result[k]) for k in self._metric_keys}
        for examples in shift.adapt_examples:
            statistics = self.adapted_statistics(split.adapt_inputs(examples), shift.prior_strength)
            with self._restored():
                for layer, (mean, variance) in zip(self.bn_layers, statistics, strict=True):
                    layer.moving_mean.assign(mean)
                    layer.moving_variance.assign(variance)
                result = self.moving(split.x, y)
            scores |= {shifted_key(k, examples): float(result[k]) for k in self._metric_keys}
        return scores

    def adapted_statistics(
        self, inputs: np.ndarray, prior_strength: int | None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each BN layer's mean and variance re-estimated on `inputs` (Schneider et al. 2020).

        Layer by layer, in order: a layer's input is computed in inference mode with the layers
        before it already normalizing with their re-estimated statistics, and its mean and
        (biased) variance are taken over the N examples (and any spatial positions), as BN in
        training mode would on one batch of them. With `prior_strength` n the moving statistics
        count as n examples: `(n * moving + N * estimate) / (n + N)`. The model's own statistics
        are unchanged on return.

        Args:
            inputs: The N (shifted) examples.
            prior_strength: n, or None to use the estimate alone.

        Returns:
            One (mean, variance) per BN layer, in the model's order.
        """
        count = len(inputs)
        weight = 1.0 if prior_strength is None else count / (count + prior_strength)
        padded = np.zeros((-(-count // ADAPT_BATCH) * ADAPT_BATCH, *inputs.shape[1:]),
                          dtype=inputs.dtype)  # fmt: skip
        padded[:count] = inputs
        statistics = []
        with self._restored():
            for layer in self.bn_layers:
                outputs = self._bn_inputs_model(training=False).predict(
                    padded, batch_size=ADAPT_BATCH, verbose=0
                )
                values = np.asarray(outputs[layer.name], dtype=np.float64)[:count]
                channel = layer.axis % values.ndim  # the layer's axis, counting the batch axis
                axes = tuple(a for a in range(values.ndim) if a != channel)
                source = np.array(layer.moving_mean), np.array(layer.moving_variance)
                mean = weight * values.mean(axis=axes) + (1 - weight) * source[0]
                variance = weight * values.var(axis=axes) + (1 - weight) * source[1]
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
                statistics.append((mean, variance))
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

    def _bn_inputs_model(self, training: bool = True) -> Any:
        """The model giving every BN layer's input, with BN in training or inference mode."""
        if training:
            if self._bn_inputs is None:
                self._bn_inputs = self._wrapper(outputs="bn_inputs")
            return self._bn_inputs
        if self._bn_inputs_inference is None:
            self._bn_inputs_inference = self._wrapper(outputs="bn_inputs", bn_training=False)
        return self._bn_inputs_inference

    def _wrapper(self, outputs: str, bn_training: bool = True) -> Any:
        """A functional model over the same layers, every BN layer in training mode (unless
        `bn_training` is False: then every layer runs in the mode the model is called in)."""
        import keras

        model = self.run.model
        inputs = keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
        node, seen = inputs, {}
        for layer in model.layers:
            if layer in self.bn_layers:
                seen[layer.name] = node
                node = _batch_statistics_class()(layer)(node) if bn_training else layer(node)
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
