"""Watching `model.fit` step by step without slowing it: the step count, divergence, progress."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

# (step, total_steps, loss or None) -> None; called from inside fit, so keep it cheap.
ProgressHook = Callable[[int, int, float | None], None]


class StepMonitor:
    """Tracks the step count and the first non-finite loss from Keras' batch logs.

    Its Keras callback is marked async-safe: Keras then turns the logs into Python floats and
    calls it on a helper thread, so reading the loss never stalls the training loop. (A
    synchronous batch callback makes Keras read every step's loss, a device sync per step that
    cost ~20% of a small MLP's step time on JAX.) Calls may arrive out of order, hence the lock
    and the step computed from the batch index. The loss in the logs is the running mean since
    the chunk began, so it turns non-finite at the very step that diverged, and stays so.
    """

    def __init__(self, total: int, hook: ProgressHook | None) -> None:
        self.total = total
        self.hook = hook
        self.step = 0
        self.chunk_start = 0
        self.diverged_at: int | None = None
        self._lock = threading.Lock()
        self._last_report = 0.0

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None) -> bool:
        """Record the end of a chunk's `batch`-th step; True when training must stop."""
        step = self.chunk_start + batch + 1
        loss = None if not logs or logs.get("loss") is None else float(logs["loss"])
        now = time.perf_counter()
        with self._lock:
            self.step = max(self.step, step)
            if loss is not None and not math.isfinite(loss):
                if self.diverged_at is None or step < self.diverged_at:
                    self.diverged_at = step
                return True
            report = self.hook is not None and now - self._last_report > 0.1
            if report:
                self._last_report = now
        if report and self.hook is not None:
            self.hook(step, self.total, loss)
        return False


def keras_callback(monitor: StepMonitor) -> Any:
    import keras

    class StepCallback(keras.callbacks.Callback):  # type: ignore[misc]
        async_safe = True  # see StepMonitor

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if monitor.on_batch_end(batch, logs):
                # Not `self.model`: on JAX that property syncs the training state into the
                # variables, which must not happen from this helper thread mid-step.
                self._model.stop_training = True

    return StepCallback()
