"""What every diagnostic reads: the model, a fixed probe batch, its loss and metric, and the
current weights; and the base class a diagnostic module implements.

Probing never changes training: every forward pass is a `stateless_call` on the current variable
values, and the updates it returns (BN moving statistics, dropout seed state) are dropped.
Keras is imported inside functions so that `bnbench` imports without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bnbench.config.diagnostics import DiagnosticsSpec
from bnbench.results.diagnostics import DiagnosticFile

METRICS = ("accuracy",)


class Probe:
    """The model and the fixed probe batch the diagnostics measure on.

    Args:
        model: A built Keras model following the `block{i}_*` naming contract.
        probe_x: Fixed input batch from the training set.
        probe_y: Targets of `probe_x` (int class ids for classification).
        loss_fn: `(y_true, y_pred) -> loss`; a per-example result is averaged over the batch.
        metric_name: "accuracy" (sparse categorical) or None for regression.
        batch_size: The run's batch size: training mode is measured on probe batches of this
            size (None: the whole probe as one batch).

    Raises:
        ValueError: an unknown metric name.
    """

    def __init__(
        self,
        model: Any,
        probe_x: np.ndarray,
        probe_y: np.ndarray,
        loss_fn: Callable[[Any, Any], Any],
        metric_name: str | None,
        batch_size: int | None,
    ) -> None:
        import keras

        if metric_name is not None and metric_name not in METRICS:
            raise ValueError(f"metric_name must be one of {METRICS} or None, got {metric_name!r}")
        self.model = model
        self.x = keras.ops.convert_to_tensor(probe_x, dtype=model.inputs[0].dtype)
        self.y = np.asarray(probe_y)
        self.loss_fn = loss_fn
        self.metric_name = metric_name
        # Training-mode batches of the probe: full batches of the run's batch size (or the
        # whole probe when it is smaller than one batch).
        size = min(batch_size or len(self.y), len(self.y))
        self.train_batches = [
            slice(start, start + size) for start in range(0, len(self.y) - size + 1, size)
        ]
        # Probe models share the model's variable objects (a subset of them): their variable
        # lists are mapped, by identity, to positions in the model's lists.
        self._position = {id(v): i for i, v in enumerate(model.trainable_variables)}
        self._position |= {id(v): i for i, v in enumerate(model.non_trainable_variables)}

    def loss(self, y_pred: Any) -> Any:
        """The mean loss of the whole probe batch (a per-example loss function made scalar)."""
        import keras

        return keras.ops.mean(self.loss_fn(self.y, y_pred))

    def positions(self, submodel: Any) -> tuple[list[int], list[int]]:
        """Where a probe model's trainable and non-trainable variables sit in the model's."""
        return (
            [self._position[id(v)] for v in submodel.trainable_variables],
            [self._position[id(v)] for v in submodel.non_trainable_variables],
        )

    def outputs(
        self, submodel: Any, positions: tuple[list[int], list[int]], weights: Weights,
        training: bool,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """A probe model's outputs on the whole probe batch, by layer name; updates dropped."""
        import keras

        outputs, _ = submodel.stateless_call(
            [weights.trainable[i] for i in positions[0]],
            [weights.non_trainable[i] for i in positions[1]],
            self.x,
            training=training,
        )
        return {name: keras.ops.convert_to_numpy(v) for name, v in outputs.items()}

    def evaluate(
        self, weights: Weights, training: bool, part: slice = slice(None)
    ) -> tuple[float, float | None]:
        """Loss and metric (None for regression) of the probe's `part` in the given mode."""
        import keras

        x, y = self.x[part], self.y[part]
        y_pred, _ = self.model.stateless_call(
            weights.trainable, weights.non_trainable, x, training=training
        )
        loss = float(keras.ops.convert_to_numpy(keras.ops.mean(self.loss_fn(y, y_pred))))
        if self.metric_name is None:
            return loss, None
        predicted = np.argmax(keras.ops.convert_to_numpy(y_pred), axis=-1)  # sparse categorical
        return loss, float(np.mean(predicted == y.reshape(predicted.shape)))


@dataclass
class Weights:
    """The model's variable values at one step, and the layer inputs that diagnostics share.

    Attributes:
        trainable: The trainable variables' values, in the model's order.
        non_trainable: The non-trainable ones'.
        tap: Computes `tapped`: the training-mode inputs, on the whole probe batch, of the
            layers the enabled diagnostics tap (`Diagnostic.taps`), by layer name; one forward
            pass for all of them, made on first use.
    """

    trainable: list[Any]
    non_trainable: list[Any]
    tap: Callable[[], dict[str, np.ndarray]]
    _tapped: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def tapped(self) -> dict[str, np.ndarray]:
        """The tapped layers' inputs (see `tap`), computed once."""
        if self._tapped is None:
            self._tapped = self.tap()
        return self._tapped


class Diagnostic(ABC):
    """One diagnostic: a module of `bnbench.train.diagnostics` subclasses this and is listed in
    `recorder.DIAGNOSTICS`.

    Attributes:
        file: Its CSV (name, spec switch, columns), from `bnbench.results.diagnostics`.
        taps: Layers whose training-mode input on the probe it reads (`Weights.tapped`).
    """

    file: ClassVar[DiagnosticFile]

    def __init__(self, spec: DiagnosticsSpec, probe: Probe) -> None:
        self.spec, self.probe = spec, probe
        self.taps: list[str] = []

    @property
    def columns(self) -> tuple[str, ...]:
        """The CSV's header."""
        return self.file.columns

    def steps(self, total_steps: int, eval_steps: Iterable[int]) -> set[int]:
        """The steps it records at: step 0 and every evaluation point, by default."""
        return {0} | {s for s in eval_steps if 0 <= s <= total_steps}

    @abstractmethod
    def record(self, step: int, weights: Weights) -> list[list[Any]]:
        """Its rows at `step`, from `weights`; never changes the model."""
