"""Training: a function of its spec that writes a run directory and returns the result.

`train` seeds everything, builds the model, fits it with `model.fit` in chunks that end at the
evaluation points, and records one history row per evaluation point. It never plots, prints
tables, or reads other runs. Divergence is a result (status 'diverged'), not an exception.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnbench import rundir
from bnbench.backend import activate, choose_backend
from bnbench.config import RunSpec, TrainingSpec
from bnbench.errors import SpecError
from bnbench.registries import LOSSES, METRICS, OPTIMIZERS

# (step, total_steps, loss or None) -> None; called from inside fit, so keep it cheap.
ProgressHook = Callable[[int, int, float | None], None]


@dataclass(frozen=True)
class Plan:
    """The length of a run in the one unit the code speaks: optimizer steps."""

    total_steps: int
    steps_per_epoch: int
    eval_steps: tuple[int, ...]

    @classmethod
    def from_spec(cls, training: TrainingSpec, num_train: int) -> Plan:
        """Convert epochs (or steps) and the evaluation cadence to steps, once.

        Every batch is full: the data order runs on across epoch boundaries, so batch norm
        always sees `batch_size` examples (a ragged last batch would change its statistics).
        """
        steps_per_epoch = max(1, math.ceil(num_train / training.batch_size))
        if training.steps is not None:
            total = training.steps
        else:
            total = max(1, math.ceil((training.epochs or 10.0) * num_train / training.batch_size))
        every = training.eval_every or steps_per_epoch
        points = [*list(range(every, total, every)), total]
        return cls(total, steps_per_epoch, tuple(points))


@dataclass
class RunResult:
    """What `train` returns: where the run lives and its summary."""

    run_dir: Path
    status: str
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def resolved_config(spec: RunSpec) -> dict[str, Any]:
    """The spec with every default filled in, as plain data."""
    return spec.model_dump(mode="json")


def batch_order(num_train: int, total_steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices of the examples of every step, one shuffled pass after another.

    Depends only on the seed and the sizes, so paired runs of different arms (and different
    backends) see exactly the same batches in the same order.
    """
    rng = np.random.default_rng(seed)
    needed = total_steps * batch_size
    passes = [rng.permutation(num_train) for _ in range(math.ceil(needed / num_train))]
    return np.concatenate(passes)[:needed]


class _StepMonitor:
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


def _keras_callback(monitor: _StepMonitor) -> Any:
    import keras

    class StepCallback(keras.callbacks.Callback):
        async_safe = True  # see _StepMonitor

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if monitor.on_batch_end(batch, logs):
                # Not `self.model`: on JAX that property syncs the training state into the
                # variables, which must not happen from this helper thread mid-step.
                self._model.stop_training = True

    return StepCallback()


def _optimizer(training: TrainingSpec, total_steps: int) -> Any:
    import keras

    schedule: Any = training.learning_rate
    if training.schedule.kind == "step":
        schedule = keras.optimizers.schedules.ExponentialDecay(
            training.learning_rate,
            decay_steps=training.schedule.decay_every,
            decay_rate=training.schedule.decay_rate,
            staircase=True,
        )
    elif training.schedule.kind == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            training.learning_rate, decay_steps=total_steps, alpha=training.schedule.alpha
        )
    name = OPTIMIZERS[training.optimizer]
    if name == "SGD":
        return keras.optimizers.SGD(
            schedule, momentum=training.momentum, nesterov=training.nesterov
        )
    if name == "RMSprop":
        return keras.optimizers.RMSprop(schedule, momentum=training.momentum)
    return keras.optimizers.Adam(schedule)


def loss_and_metrics(training: TrainingSpec, task: str) -> tuple[str, list[str]]:
    """The loss and metric names, with the task's defaults filled in."""
    default_loss = "sparse_categorical_crossentropy" if task == "classification" else "mse"
    default_metrics = ["accuracy"] if task == "classification" else ["mae"]
    return training.loss or default_loss, list(training.metrics or default_metrics)


def check_batch_size(spec: RunSpec, num_train: int) -> None:
    """Every batch is full, so a batch cannot be larger than the training set.

    Raises:
        SpecError: it is.
    """
    if spec.training.batch_size > num_train:
        raise SpecError(
            f"training.batch_size: {spec.training.batch_size} is larger than the {num_train} "
            "training examples (after dataset.subset and validation_split)"
        )


def _check_target(training: TrainingSpec, metrics: list[str]) -> None:
    if training.target_metric is None:
        return
    valid = [f"{split}_{m}" for split in ("val", "train") for m in ["loss", *metrics]]
    if training.target_metric not in valid:
        raise SpecError(
            f"training.target_metric: {training.target_metric!r} is not recorded; "
            f"available: {', '.join(valid)}"
        )


def lower_is_better(name: str) -> bool:
    """Whether smaller values of a recorded quantity are better (losses and errors)."""
    return name.endswith(("loss", "mae", "mse"))


def _reached(name: str, value: float, target: float) -> bool:
    return value <= target if lower_is_better(name) else value >= target


def train(
    spec: RunSpec,
    run_dir: Path,
    *,
    save_model: bool = True,
    progress: ProgressHook | None = None,
    fast_feeding: bool = True,
) -> RunResult:
    """Train one run and write its directory.

    Args:
        spec: the validated run spec.
        run_dir: where to write; created if missing; must not hold a finished run.
        save_model: also write `model.keras`.
        progress: called with (step, total_steps, loss) during training.
        fast_feeding: use the backend's fast input path (see `bnbench.feeding`).

    Returns:
        The result, whose status is 'completed' or 'diverged'.

    Raises:
        SpecError: the spec cannot be trained (data missing, blocks not fitting). Nothing is
            written in that case.
        KeyboardInterrupt: re-raised after marking the directory incomplete.
    """
    backend = choose_backend(spec)
    activate(backend)
    import keras

    from bnbench.data import load_dataset
    from bnbench.models import build_model

    data = load_dataset(spec.dataset, spec.seed)
    loss_name, metric_names = loss_and_metrics(spec.training, data.task)
    _check_target(spec.training, metric_names)
    keras.utils.clear_session()
    keras.utils.set_random_seed(spec.seed)
    if spec.training.deterministic and backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    model = build_model(spec.model, data.input_shape, data.output_units, data.task)
    plan = Plan.from_spec(spec.training, len(data.x_train))
    check_batch_size(spec, len(data.x_train))
    model.compile(
        optimizer=_optimizer(spec.training, plan.total_steps),
        loss=LOSSES[loss_name],
        metrics=[METRICS[m] for m in metric_names],
    )
    order = batch_order(len(data.x_train), plan.total_steps, spec.training.batch_size, spec.seed)
    recorder = diagnostics_recorder(spec, model, data, order, loss_name, metric_names, run_dir)

    # From here on the directory exists; the marker says so until the summary is written.
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.atomic_write_text(run_dir / rundir.INCOMPLETE, "started\n")
    resolved = resolved_config(spec)
    rundir.write_yaml(run_dir / rundir.CONFIG, resolved)
    started = time.time()
    try:
        run = _Run(spec, run_dir, model, data, plan, metric_names, backend,
                   resolved, started, order, recorder)  # fmt: skip
        return _fit(run, save_model, progress, fast_feeding)
    except KeyboardInterrupt:
        rundir.atomic_write_text(run_dir / rundir.INCOMPLETE, "interrupted by the user\n")
        raise
    except Exception as err:
        rundir.atomic_write_text(run_dir / rundir.TRACEBACK, traceback.format_exc())
        summary = _base_summary(spec, run_dir, backend, resolved, plan, started)
        summary.update(status="failed", error=f"{type(err).__name__}: {err}")
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
        (run_dir / rundir.INCOMPLETE).unlink(missing_ok=True)
        raise


def _base_summary(
    spec: RunSpec,
    run_dir: Path,
    backend: str,
    resolved: dict[str, Any],
    plan: Plan,
    started: float,
) -> dict[str, Any]:
    from bnbench.environment import library_versions

    return {
        "run_id": run_dir.name,
        "name": spec.name,
        "status": "running",
        "seed": spec.seed,
        "backend": backend,
        "config_hash": rundir.config_hash(resolved),
        "total_steps": plan.total_steps,
        "steps_per_epoch": plan.steps_per_epoch,
        "batch_size": spec.training.batch_size,
        "learning_rate": spec.training.learning_rate,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "versions": library_versions(),
    }


@dataclass
class _Run:
    """Everything `_fit` needs about one run, prepared by `train`."""

    spec: RunSpec
    run_dir: Path
    model: Any
    data: Any
    plan: Plan
    metric_names: list[str]
    backend: str
    resolved: dict[str, Any]
    started: float
    order: np.ndarray
    recorder: Any


def diagnostics_recorder(
    spec: RunSpec,
    model: Any,
    data: Any,
    order: np.ndarray,
    loss_name: str,
    metric_names: list[str],
    run_dir: Path,
) -> Any:
    """The diagnostics recorder (None when all are off); its probe is the first batches' examples.

    Raises:
        SpecError: the diagnostics name blocks the model does not have.
    """
    import keras

    from bnbench.diagnostics import make_recorder

    probe = order[: spec.diagnostics.probe_size]
    try:
        return make_recorder(
            spec.diagnostics, model, data.x_train[probe], data.y_train[probe],
            keras.losses.get(LOSSES[loss_name]),
            metric_names[0] if metric_names and metric_names[0] == "accuracy" else None, run_dir,
        )  # fmt: skip
    except ValueError as err:
        raise SpecError(f"diagnostics: {err}") from None


def _fit(
    run: _Run, save_model: bool, progress: ProgressHook | None, fast_feeding: bool
) -> RunResult:
    spec, run_dir, model, data, plan = run.spec, run.run_dir, run.model, run.data, run.plan
    metric_names = run.metric_names
    from bnbench.feeding import Feeder
    from bnbench.models import parameter_counts

    training = spec.training
    order, recorder = run.order, run.recorder
    stops = set(plan.eval_steps)
    if recorder is not None:
        stops |= set(recorder.steps(plan.total_steps, list(plan.eval_steps)))
        if 0 in stops:
            recorder.record(0)
    stops.discard(0)

    history: list[dict[str, Any]] = []
    columns = ["step", "epoch", "examples_seen", "wall_seconds", "train_loss"]
    columns += [f"train_{m}" for m in metric_names] + ["val_loss"]
    columns += [f"val_{m}" for m in metric_names]
    monitor = _StepMonitor(plan.total_steps, progress)
    callback = _keras_callback(monitor)
    chunk_times: list[float] = []
    eval_batch_size = max(256, training.batch_size)
    feeder = Feeder(model, training.batch_size, eval_batch_size, fast=fast_feeding)
    target_step = target_seconds = None
    step = 0
    t0 = time.perf_counter()
    # Train loss/metrics at an evaluation point: the mean over the steps since the previous one,
    # pooled over the chunks in between (diagnostics can split an interval into several).
    since_eval: dict[str, float] = {}
    steps_since_eval = 0
    for stop in sorted(stops):
        idx = order[step * training.batch_size : stop * training.batch_size]
        monitor.chunk_start = step
        fit_start = time.perf_counter()
        logs = feeder.fit(data.x_train[idx], data.y_train[idx], [callback])
        chunk_times.append((time.perf_counter() - fit_start) / max(1, stop - step))
        chunk_steps = monitor.step - step
        for key in ["loss", *metric_names]:
            since_eval[key] = since_eval.get(key, 0.0) + float(logs[key][-1]) * chunk_steps
        steps_since_eval += chunk_steps
        step = monitor.step
        if monitor.diverged_at is not None:
            break
        if recorder is not None:
            recorder.record(step)
        if step not in plan.eval_steps:
            continue
        val = feeder.evaluate(data.x_val, data.y_val)
        row = {
            "step": step,
            "epoch": step / plan.steps_per_epoch,
            "examples_seen": step * training.batch_size,
            "wall_seconds": time.perf_counter() - t0,
            "train_loss": since_eval["loss"] / steps_since_eval,
            "val_loss": val["loss"],
        }
        for m in metric_names:
            row[f"train_{m}"] = since_eval[m] / steps_since_eval
            row[f"val_{m}"] = val[m]
        since_eval, steps_since_eval = {}, 0
        history.append(row)
        rundir.write_csv(run_dir / rundir.HISTORY, history, columns)
        if not math.isfinite(float(val["loss"])):
            monitor.diverged_at = step
            break
        name = training.target_metric
        if (
            name
            and target_step is None
            and _reached(name, float(row[name]), training.target_value or 0.0)
        ):
            target_step, target_seconds = step, row["wall_seconds"]
    if progress is not None:
        progress(monitor.step, plan.total_steps, history[-1]["train_loss"] if history else None)

    if recorder is not None:
        recorder.finish()
    summary = _base_summary(spec, run_dir, run.backend, run.resolved, plan, run.started)
    diverged = monitor.diverged_at is not None
    summary["status"] = "diverged" if diverged else "completed"
    summary["diverged_step"] = monitor.diverged_at
    summary["steps_done"] = monitor.step
    summary["metric"] = metric_names[0] if metric_names else None
    summary["metrics"] = metric_names
    final: dict[str, Any] = {}
    if not diverged:
        test = feeder.evaluate(data.x_test, data.y_test)
        final = {f"test_{k}": float(v) for k, v in test.items() if k != "compile_metrics"}
    if history:
        final.update({k: float(v) for k, v in history[-1].items() if k.startswith("val_")})
    summary["final"] = final
    summary["best"] = _best(history, metric_names)
    summary["target"] = {
        "metric": training.target_metric,
        "value": training.target_value,
        "step": target_step,
        "seconds": target_seconds,
    }
    summary["params"] = parameter_counts(model)
    steady = chunk_times[1:] if len(chunk_times) > 1 else chunk_times
    summary["step_time_ms"] = float(np.median(steady)) * 1000 if steady else None
    summary["train_seconds"] = time.perf_counter() - t0
    summary["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if not history:
        rundir.write_csv(run_dir / rundir.HISTORY, [], columns)
    if save_model and not diverged:
        _save_model(model, run_dir / rundir.MODEL)
    rundir.write_json(run_dir / rundir.SUMMARY, summary)
    (run_dir / rundir.INCOMPLETE).unlink(missing_ok=True)
    return RunResult(run_dir, summary["status"], summary, history)


def _best(history: list[dict[str, Any]], metric_names: list[str]) -> dict[str, Any]:
    name = f"val_{metric_names[0]}" if metric_names else "val_loss"
    values = [(float(row[name]), row["step"]) for row in history if math.isfinite(float(row[name]))]
    if not values:
        return {name: None, "step": None}
    pick = min if lower_is_better(name) else max
    value, step = pick(values)
    return {name: value, "step": step}


def _save_model(model: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    tmp.replace(path)
