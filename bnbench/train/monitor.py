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

    It also times each chunk from the end of its first call to the end of its last: the first
    call of a chunk carries the `fit` call's set-up (and on the first chunk the compilation),
    so the steady step time leaves it out.

    With `steps_per_execution` N > 1, Keras calls back once per N steps with the batch index of
    the group's last step (past the chunk's end for a short last group: the step is clamped to
    the chunk), so a divergence is seen at the end of the group in which it happened.
    """

    def __init__(self, total: int, hook: ProgressHook | None) -> None:
        self.total = total
        self.hook = hook
        self.step = 0
        self.chunk_start = 0
        self.chunk_stop = total
        self.diverged_at: int | None = None
        self._lock = threading.Lock()
        self._last_report = 0.0
        self._first_end: tuple[int, float] | None = None  # (batch, time) of its first call
        self._last_end: tuple[int, float] | None = None  # (batch, time) of its latest step

    def begin_chunk(self, start: int, stop: int) -> None:
        """A `fit` call trains the steps from `start` to `stop`."""
        with self._lock:
            self.chunk_start, self.chunk_stop = start, stop
            self._first_end = self._last_end = None

    def steady(self) -> tuple[int, float]:
        """(steps, seconds) of the current chunk after its first call; (0, 0.0) if unknown."""
        with self._lock:
            first, last = self._first_end, self._last_end
            if first is None or last is None or last[0] <= first[0]:
                return 0, 0.0
            last_step = min(last[0], self.chunk_stop - self.chunk_start - 1)
            seconds = last[1] - first[1]
            # Callbacks run on a helper thread and may arrive out of order: when the chunk's
            # first call is timed after its last (a chunk cut short by a divergence), nothing
            # steady was timed.
            if last_step <= first[0] or seconds <= 0.0:
                return 0, 0.0
            return last_step - first[0], seconds

    def on_batch_end(self, batch: int, logs: dict[str, Any] | None) -> bool:
        """Record the end of a chunk's `batch`-th step; True when training must stop."""
        step = min(self.chunk_start + batch + 1, self.chunk_stop)
        loss = None if not logs or logs.get("loss") is None else float(logs["loss"])
        now = time.perf_counter()
        with self._lock:
            self.step = max(self.step, step)
            if self._first_end is None or batch < self._first_end[0]:
                self._first_end = (batch, now)
            if self._last_end is None or batch > self._last_end[0]:
                self._last_end = (batch, now)
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


def divergence_reason(
    train_loss: float,
    val_loss: float,
    *,
    initial: float | None,
    previous: float | None,
    factor: float,
    num_classes: int | None = None,
    train_accuracy: float | None = None,
    chance: float | None = None,
) -> str | None:
    """Why a run has diverged at an evaluation point, or None (README: Divergence).

    Three rules, any of which fires: a non-finite loss; a training loss above `factor` × the
    initial loss; and, for a classifier of k classes, a training loss above `factor` × ln k (the
    loss of a uniform guess) that has not fallen since the previous evaluation point (or since
    step 0) while the training accuracy is no more than half a class share (1 / (2 k)) above
    chance. The third rule exists because Keras clips cross-entropy at ~16.1: a run that starts
    above ~5.4 (large init scales start at 7.8–16.1) can never reach 3 × its initial loss, so
    the second rule alone could not fire on it. Requiring "not falling" and "at chance" keeps a
    badly initialized run that is still learning from being cut short.

    Args:
        train_loss: Mean training loss since the previous evaluation point.
        val_loss: Validation loss at this point.
        initial: The loss at step 0 on the first training batch, if known.
        previous: The training loss at the previous evaluation point (None at the first: the
            initial loss stands in).
        factor: `training.divergence_factor`.
        num_classes: k for a classifier, None otherwise.
        train_accuracy: Mean training accuracy since the previous point, if recorded.
        chance: The majority-class accuracy, if known.

    Returns:
        The reason, worded for the summary, or None.
    """
    if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        return "non-finite loss"
    if initial is not None and math.isfinite(initial) and train_loss > factor * initial:
        return f"training loss {train_loss:.4g} above {factor:g} × the initial {initial:.4g}"
    if num_classes is None or num_classes < 2:
        return None
    level = factor * math.log(num_classes)
    before = previous if previous is not None else initial
    not_falling = before is None or not math.isfinite(before) or train_loss >= before
    at_chance = (
        train_accuracy is None
        or chance is None
        or train_accuracy <= chance + 1 / (2 * num_classes)
    )
    if train_loss > level and not_falling and at_chance:
        return (
            f"training loss {train_loss:.4g} above {factor:g} × ln {num_classes} = {level:.4g}, "
            "not falling, at chance accuracy"
        )
    return None
