"""Feeding batches to `model.fit` / `model.evaluate`: one interface, a TensorFlow fast path.

Training fits one chunk (the steps between two evaluation points) per `fit` call, in an order
bnbench chooses. The portable path hands numpy arrays to Keras. On TensorFlow that costs
~60-80 ms per call, because Keras' array adapter builds and traces a new `tf.data` pipeline each
time; handing it pre-batched tensors instead (`from_tensor_slices` over a (steps, batch, ...)
array: no Python function to trace) cuts that to ~15 ms, which is what keeps evaluation points
finer than an epoch affordable. Both paths feed identical batches in identical order; a test
checks they train to the same weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Feeder:
    """Fits chunks and evaluates fixed splits for one model.

    Args:
        model: a compiled Keras model.
        batch_size: the training batch size; chunk lengths are multiples of it.
        eval_batch_size: batch size for evaluation.
        fast: use the backend's fast path when it has one.
    """

    def __init__(self, model: Any, batch_size: int, eval_batch_size: int, fast: bool = True):
        import keras

        self.model = model
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.tensorflow = fast and keras.backend.backend() == "tensorflow"
        self._eval_sets: dict[int, Any] = {}

    def fit(self, x: np.ndarray, y: np.ndarray, callbacks: list[Any]) -> dict[str, list[float]]:
        """One pass over (x, y) in the given order, `batch_size` examples per step."""
        if self.tensorflow:
            import tensorflow as tf

            steps = len(x) // self.batch_size
            batches = tf.data.Dataset.from_tensor_slices(
                (
                    x.reshape(steps, self.batch_size, *x.shape[1:]),
                    y.reshape(steps, self.batch_size, *y.shape[1:]),
                )
            )
            history = self.model.fit(batches, epochs=1, verbose=0, shuffle=False,
                                     callbacks=callbacks)  # fmt: skip
        else:
            history = self.model.fit(x, y, batch_size=self.batch_size, epochs=1, shuffle=False,
                                     verbose=0, callbacks=callbacks)  # fmt: skip
        return dict(history.history)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """Loss and metrics over all of (x, y), in inference mode."""
        if self.tensorflow:
            # The same split is evaluated many times: build its dataset once.
            key = id(x)
            if key not in self._eval_sets:
                import tensorflow as tf

                dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(self.eval_batch_size)
                self._eval_sets[key] = (x, dataset)  # keep x alive so its id stays unique
            result = self.model.evaluate(self._eval_sets[key][1], verbose=0, return_dict=True)
        else:
            result = self.model.evaluate(x, y, batch_size=self.eval_batch_size, verbose=0,
                                         return_dict=True)  # fmt: skip
        return {k: float(v) for k, v in result.items()}
