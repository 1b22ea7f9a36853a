"""Opt-in diagnostics of what Batch Normalization does inside a network, on a fixed probe batch.

Probing never changes training: every forward pass is a ``stateless_call`` on the current
variable values, and the updates it returns (BN moving statistics, dropout seed state) are
dropped. Keras is imported inside functions so that ``bnbench`` imports without it.

Reference:
    Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift", ICML 2015 (Figure 1(b, c): pre-activation percentiles).
    Li, Chen, Hu & Yang, "Understanding the Disharmony between Dropout and Batch Normalization
    by Variance Shift", CVPR 2019 (the variance shift, `bnbench.train.variance_shift`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.config.diagnostics import ActivationPercentilesSpec, DiagnosticsSpec
from bnbench.results import rundir
from bnbench.results.files import write_csv
from bnbench.train import variance_shift

_ACTIVATION_LAYER = re.compile(r"^(block(\d+))_act$")
_METRICS = ("accuracy",)
_GRADIENT_BACKENDS = ("tensorflow", "jax")  # the branches of `_gradients`
_COLUMNS = {
    "bn_statistics": ["step", "layer", "moving_mean_mean", "moving_mean_std", "moving_var_mean",
                      "gamma_mean", "gamma_std", "beta_mean", "beta_std",
                      "batch_mean_gap", "batch_var_gap"],
    "train_inference_gap": ["step", "train_mode_loss", "inference_mode_loss",
                            "train_mode_metric", "inference_mode_metric", "train_mode_batch_size"],
    "gradient_norms": ["step", "layer", "grad_norm"],
    "variance_shift": variance_shift.COLUMNS,
}  # fmt: skip


def make_recorder(
    spec: DiagnosticsSpec | None,
    model: Any,
    probe_x: np.ndarray,
    probe_y: np.ndarray,
    loss_fn: Callable[[Any, Any], Any],
    metric_name: str | None,
    batch_size: int | None = None,
) -> DiagnosticsRecorder | None:
    """Builds a recorder for ``model``, or returns None when no diagnostic is enabled.

    Args:
        spec: The diagnostics section of the run spec.
        model: A built Keras model following the ``block{i}_*`` naming contract.
        probe_x: Fixed input batch from the training set.
        probe_y: Targets of ``probe_x`` (int class ids for classification).
        loss_fn: ``(y_true, y_pred) -> loss``, a Keras loss object or function; a
            per-example result is averaged over the probe batch.
        metric_name: ``"accuracy"`` (sparse categorical) or None for regression.
        batch_size: The run's batch size: training mode is measured on probe batches of this
            size, so that BN normalizes over as many examples as in training (None: the whole
            probe as one batch).

    Returns:
        A ``DiagnosticsRecorder``, or None when nothing is enabled.

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

        if metric_name is not None and metric_name not in _METRICS:
            raise ValueError(f"metric_name must be one of {_METRICS} or None, got {metric_name!r}")
        if spec.gradient_norms and keras.backend.backend() not in _GRADIENT_BACKENDS:
            raise ValueError(
                f"gradient_norms needs one of the backends {_GRADIENT_BACKENDS}, "
                f"got {keras.backend.backend()!r}"
            )
        self._spec = spec
        self._model = model
        self._x = keras.ops.convert_to_tensor(probe_x, dtype=model.inputs[0].dtype)
        self._y = np.asarray(probe_y)
        # A mean makes per-example loss functions (keras.losses.get("mse")) scalar too.
        self._loss_fn = loss_fn
        self._loss: Callable[[Any], Any] = lambda y_pred: keras.ops.mean(loss_fn(self._y, y_pred))
        self._metric_name = metric_name
        # Training-mode batches of the probe: full batches of the run's batch size (or the
        # whole probe when it is smaller than one batch).
        size = min(batch_size or len(self._y), len(self._y))
        self._train_batches = [
            slice(start, start + size) for start in range(0, len(self._y) - size + 1, size)
        ]
        self._act_blocks = _chosen_blocks(model, spec.activation_percentiles)
        self._unit = _chosen_unit(model, self._act_blocks, spec.activation_percentiles)
        bn_layers = [
            layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
        ]
        self._bn_layers = bn_layers if spec.bn_statistics else []
        self._shift_layers = bn_layers if spec.variance_shift else []
        self._fed_by_dropout = variance_shift.fed_by_dropout(model)
        self._probe_model: Any = None
        self._shift_model: Any = None
        # The probe models share the model's variable objects (a subset of them): their
        # variable lists are mapped, by identity, to positions in the model's lists.
        position = {id(v): i for i, v in enumerate(model.trainable_variables)}
        position |= {id(v): i for i, v in enumerate(model.non_trainable_variables)}
        if self._act_blocks or self._bn_layers:
            # Keyed by the layer whose input it is; a dict keeps its structure even for one output.
            names = [f"{b}_act" for b in self._act_blocks]
            names += [b.name for b in self._bn_layers]
            outputs = {name: model.get_layer(name).input for name in names}
            self._probe_model = keras.Model(inputs=model.inputs[0], outputs=outputs)
            self._probe_positions = _positions(self._probe_model, position)
        if self._shift_layers:
            self._shift_model = _dropout_only_model(model)
            self._shift_positions = _positions(self._shift_model, position)
        self._scheduled = False
        self._percentile_steps: set[int] = set()
        self._eval_steps: set[int] = set()
        self._columns = {name: _COLUMNS[name] for name in _COLUMNS if getattr(spec, name)}
        self._percentiles: list[float] = []
        if spec.activation_percentiles is not None:
            self._percentiles = spec.activation_percentiles.percentiles
            columns = [f"p{p:g}" for p in self._percentiles]
            self._columns["activation_percentiles"] = ["step", "layer", "units", *columns]
        self._rows: dict[str, list[list[Any]]] = {name: [] for name in self._columns}

    def steps(self, total_steps: int, eval_steps: Iterable[int]) -> set[int]:
        """Returns the steps at which ``record`` must be called (0 = before training)."""
        percentiles = self._spec.activation_percentiles
        if percentiles is not None:
            self._percentile_steps = set(range(0, total_steps + 1, percentiles.every))
        at_evaluations = (self._bn_layers, self._shift_layers, self._spec.train_inference_gap,
                          self._spec.gradient_norms)  # fmt: skip
        if any(at_evaluations):
            self._eval_steps = {0} | {s for s in eval_steps if 0 <= s <= total_steps}
        self._scheduled = True
        return self._percentile_steps | self._eval_steps

    def record(self, step: int) -> None:
        """Records the diagnostics due at ``step`` from the model's current weights.

        Never modifies the model: variable updates returned by ``stateless_call`` are dropped.

        Raises:
            RuntimeError: If ``steps`` was not called first.
        """
        import keras

        if not self._scheduled:
            raise RuntimeError("DiagnosticsRecorder.steps() must be called before record()")

        model = self._model
        trainable, non_trainable = (
            [keras.ops.convert_to_tensor(v.value) for v in variables]
            for variables in (model.trainable_variables, model.non_trainable_variables)
        )
        want_percentiles = step in self._percentile_steps
        want_bn = bool(self._bn_layers) and step in self._eval_steps
        want_shift = bool(self._shift_layers) and step in self._eval_steps
        if want_shift:
            # Only dropout differs between the two passes: every BN layer normalizes with its
            # moving statistics in both (`_dropout_only_model`).
            train = self._probe(self._shift_model, self._shift_positions, trainable,
                                non_trainable, training=True)  # fmt: skip
            inference = self._probe(self._shift_model, self._shift_positions, trainable,
                                    non_trainable, training=False)  # fmt: skip
            for layer in self._shift_layers:
                name, fed = layer.name, layer.name in self._fed_by_dropout
                row = variance_shift.variance_row(
                    step, name, fed, train[name], inference[name], layer.axis
                )
                self._rows["variance_shift"].append(row)
        if self._probe_model is not None and (want_percentiles or want_bn):
            # Training mode: batch statistics, as during training and in Figure 1.
            arrays = self._probe(self._probe_model, self._probe_positions, trainable,
                                 non_trainable, training=True)  # fmt: skip
            # Pooled over examples and units (the distribution a "typical" unit sees), or over
            # the examples (and positions) of one unit.
            for block in self._act_blocks if want_percentiles else []:
                values = arrays[f"{block}_act"]
                unit = self._unit  # "pooled" or an index
                values = values.ravel() if isinstance(unit, str) else values[..., unit]
                summary = np.percentile(values, self._percentiles)
                row = [step, block, self._unit, *map(float, summary)]
                self._rows["activation_percentiles"].append(row)
            if want_bn:
                self._record_bn(step, [arrays[layer.name] for layer in self._bn_layers])
        if step not in self._eval_steps:
            return
        if self._spec.train_inference_gap:
            train_loss, train_metric = self._train_mode(trainable, non_trainable)
            infer_loss, infer_metric = self._evaluate(trainable, non_trainable, training=False)
            size = self._train_batches[0].stop - self._train_batches[0].start
            self._rows["train_inference_gap"].append(
                [step, train_loss, infer_loss, train_metric, infer_metric, size]
            )
        if self._spec.gradient_norms:

            def probe_loss(values: list[Any]) -> Any:
                y_pred, _ = model.stateless_call(values, non_trainable, self._x, training=True)
                return self._loss(y_pred)

            grads = _gradients(probe_loss, trainable)
            squares = {
                id(v): float(np.sum(np.square(g)))
                for v, g in zip(model.trainable_variables, grads, strict=True)
            }
            for layer in model.layers:
                if layer.trainable_variables:
                    total = sum(squares[id(v)] for v in layer.trainable_variables)
                    self._rows["gradient_norms"].append([step, layer.name, float(np.sqrt(total))])

    def finish(self, run_dir: Path) -> None:
        """Writes one CSV per enabled diagnostic into ``run_dir/diagnostics/``, atomically."""
        for name, rows in self._rows.items():
            columns = self._columns[name]
            records = [dict(zip(columns, row, strict=True)) for row in rows]
            write_csv(rundir.diagnostics_path(run_dir, name), records, columns)

    def _probe(
        self,
        probe: Any,
        positions: tuple[list[int], list[int]],
        trainable: list[Any],
        non_trainable: list[Any],
        training: bool,
    ) -> dict[str, np.ndarray]:
        """A probe model's outputs on the whole probe batch, by layer name; updates dropped."""
        import keras

        outputs, _ = probe.stateless_call(
            [trainable[i] for i in positions[0]],
            [non_trainable[i] for i in positions[1]],
            self._x,
            training=training,
        )
        return {name: keras.ops.convert_to_numpy(v) for name, v in outputs.items()}

    def _record_bn(self, step: int, bn_inputs: list[np.ndarray]) -> None:
        import keras

        def numpy(variable: Any) -> np.ndarray:
            if variable is None:  # center=False or scale=False
                return np.full(1, np.nan)
            return np.asarray(keras.ops.convert_to_numpy(variable.value), dtype=np.float64)

        for layer, inputs in zip(self._bn_layers, bn_inputs, strict=True):
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
            self._rows["bn_statistics"].append([step, layer.name, *map(float, stats)])

    def _train_mode(
        self, trainable: list[Any], non_trainable: list[Any]
    ) -> tuple[float, float | None]:
        """Probe loss and metric in training mode, averaged over batches of the run's size."""
        results = [
            self._evaluate(trainable, non_trainable, training=True, part=part)
            for part in self._train_batches
        ]
        loss = float(np.mean([r[0] for r in results]))
        metrics = [r[1] for r in results if r[1] is not None]
        return loss, float(np.mean(metrics)) if metrics else None

    def _evaluate(
        self,
        trainable: list[Any],
        non_trainable: list[Any],
        training: bool,
        part: slice = slice(None),
    ) -> tuple[float, float | None]:
        """Loss and metric (None for regression) of the probe's `part` in the given mode."""
        import keras

        x, y = self._x[part], self._y[part]
        y_pred, _ = self._model.stateless_call(trainable, non_trainable, x, training=training)
        loss = float(keras.ops.convert_to_numpy(keras.ops.mean(self._loss_fn(y, y_pred))))
        if self._metric_name is None:
            return loss, None
        predicted = np.argmax(keras.ops.convert_to_numpy(y_pred), axis=-1)  # sparse categorical
        return loss, float(np.mean(predicted == y.reshape(predicted.shape)))


def _chosen_unit(
    model: Any, blocks: list[str], spec: ActivationPercentilesSpec | None
) -> str | int:
    """The unit whose percentiles are recorded ('pooled' for all), checked against the blocks."""
    if spec is None or spec.units == "pooled":
        return "pooled"
    for block in blocks:
        width = int(model.get_layer(f"{block}_act").input.shape[-1])
        if spec.units >= width:
            raise ValueError(
                f"activation_percentiles.units: {spec.units} is not a unit of {block}, which "
                f"has {width} (indices 0 to {width - 1})"
            )
    return spec.units


def _chosen_blocks(model: Any, spec: ActivationPercentilesSpec | None) -> list[str]:
    """Block names whose pre-activation to record, validated against the model."""
    if spec is None:
        return []
    matches = (_ACTIVATION_LAYER.match(layer.name) for layer in model.layers)
    available = [m.group(1) for m in sorted(filter(None, matches), key=lambda m: int(m.group(2)))]
    if not available:
        raise ValueError("activation_percentiles: the model has no 'block{i}_act' layer")
    if spec.layers is None:
        return available[-1:]
    unknown = [name for name in spec.layers if name not in available]
    if unknown:
        raise ValueError(
            f"activation_percentiles.layers: unknown block(s) {unknown}; "
            f"blocks with an activation: {', '.join(available)}"
        )
    return list(spec.layers)


def _gradients(loss: Callable[[list[Any]], Any], values: list[Any]) -> list[np.ndarray]:
    """Gradient of the scalar ``loss(values)`` w.r.t. each of ``values``, one branch per backend.

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
        raise ValueError(f"gradient_norms needs one of {_GRADIENT_BACKENDS}, got {backend!r}")
    return [
        np.zeros(v.shape) if g is None else keras.ops.convert_to_numpy(g)
        for v, g in zip(values, grads, strict=True)
    ]


def _positions(probe: Any, position: dict[int, int]) -> tuple[list[int], list[int]]:
    """Where a probe model's trainable and non-trainable variables sit in the model's lists."""
    return (
        [position[id(v)] for v in probe.trainable_variables],
        [position[id(v)] for v in probe.non_trainable_variables],
    )


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
