"""Training: a function of its spec that writes a run directory and returns the result.

`train` prepares the run (`bnbench.train.prepare`), fits it with `model.fit` in chunks that end
at the evaluation points, and records one history row per evaluation point. It never plots,
prints tables, or reads other runs. Divergence is a result (status 'diverged'), not an exception.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.config.identity import config_hash
from bnbench.config.registries import lower_is_better
from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.results.files import out_of_space
from bnbench.results.rundir import HistoryRow, Params, RunSummary, Target
from bnbench.train.monitor import ProgressHook, StepMonitor, divergence_reason, keras_callback
from bnbench.train.prepare import PhaseHook, Prepared, prepare
from bnbench.train.schedule import resolved_config

# The summary's `vectorized_reason` of a run trained on its own, outside any group of seeds.
SINGLE_RUN = "a single run"


@dataclass
class RunResult:
    """What `train` returns: where the run lives, its summary and its history."""

    run_dir: Path
    summary: RunSummary
    history: list[HistoryRow] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.summary.status


def train(
    spec: RunSpec,
    run_dir: Path,
    *,
    save_model: bool = True,
    progress: ProgressHook | None = None,
    fast_feeding: bool = True,
    phase: PhaseHook | None = None,
    per_seed_reason: str = SINGLE_RUN,
    evaluated_at_most: int | None = None,
) -> RunResult:
    """Train one run and write its directory.

    Args:
        spec: the validated run spec.
        run_dir: where to write; created if missing; must not hold a finished run.
        save_model: also write `model.keras`.
        progress: called with (step, total_steps, loss) during training.
        fast_feeding: use the backend's fast input path (see `bnbench.train.feeding`).
        phase: called as each set-up phase begins, before the first step (`prepare.Phase`).
        per_seed_reason: why this run trains alone rather than in a vectorized group of seeds
            (`bnbench.train.vectorized`); recorded in the summary.
        evaluated_at_most: evaluate on only the first this many validation and test examples
            (`prepare`): the runtime probe's shortcut, recorded in the summary's `evaluated`.

    Returns:
        The result, whose status is 'completed' or 'diverged'.

    Raises:
        SpecError: the spec cannot be trained (data missing, blocks not fitting). Nothing is
            written in that case.
        KeyboardInterrupt: re-raised after marking the directory incomplete.
        OSError: the disk or quota is full (`files.out_of_space`); the directory is left
            incomplete, to be trained again, never recorded as failed.
    """
    prepared = prepare(spec, phase=phase, evaluated_at_most=evaluated_at_most)
    # From here on the directory exists; the marker says so until the summary is written.
    resolved = _as_trained(resolved_config(spec), prepared)
    rundir.begin(run_dir, resolved)
    loop: _Loop | None = None
    try:
        loop = _Loop(prepared, run_dir, config_hash(resolved), progress, fast_feeding)
        loop.vectorized_reason = per_seed_reason
        return loop.run(save_model)
    except KeyboardInterrupt:
        rundir.mark_interrupted(run_dir)
        raise
    except Exception as err:
        if not out_of_space(err):  # a full disk is not the run's fault: left incomplete
            rundir.record_failure(run_dir, err, loop.summary() if loop is not None else None)
        raise


class _Loop:
    """One run's training loop: fit chunks between stops, evaluate, record, summarize."""

    def __init__(
        self,
        prepared: Prepared,
        run_dir: Path,
        fingerprint: str,
        progress: ProgressHook | None,
        fast_feeding: bool,
    ) -> None:
        from bnbench.train.evaluation import Evaluator
        from bnbench.train.feeding import Feeder

        self.prep = prepared
        self.run_dir = run_dir
        self.fingerprint = fingerprint
        self.progress = progress
        self.started = time.time()
        self.monitor = StepMonitor(prepared.schedule.total_steps, progress)
        training = prepared.spec.training
        eval_batch_size = max(256, training.batch_size)
        self.feeder = Feeder(
            prepared.model, training.batch_size, eval_batch_size, fast=fast_feeding
        )
        self.evaluator = Evaluator(prepared, self.feeder.evaluate)
        self.views = _views(prepared)
        self.history: list[HistoryRow] = []
        self.chunk_times: list[float] = []  # seconds per step of each fit chunk
        self.steady = (0, 0.0)  # (steps, seconds) of fitting after each chunk's first step
        self.target: tuple[int, float] | None = None  # (step, seconds) when first reached
        self.initial_loss: float | None = None
        self.diverged_reason: str | None = None
        self.shifted: dict[str, float] = {}  # the test split under `evaluation.shift`
        self.seconds = {"fit": 0.0, "evaluation": 0.0, "writing": 0.0}
        self.t0 = time.perf_counter()
        # Train loss/metrics at an evaluation point: the mean over the steps since the previous
        # one, pooled over the chunks in between (diagnostics can split an interval).
        self.since_eval: dict[str, float] = {}
        self.steps_since_eval = 0
        # Which path trained the run (`RunSummary.vectorized`); a group sets both.
        self.vectorized = False
        self.vectorized_reason = SINGLE_RUN

    def stops(self) -> list[int]:
        """Steps at which fitting pauses: the evaluation points and the diagnostics' steps."""
        schedule, recorder = self.prep.schedule, self.prep.recorder
        stops = set(schedule.eval_steps)
        if recorder is not None:
            stops |= set(recorder.steps(schedule.total_steps, list(schedule.eval_steps)))
            if 0 in stops:
                recorder.record(0)
        stops.discard(0)
        return sorted(stops)

    def run(self, save_model: bool) -> RunResult:
        """Train to the end (or to divergence), then write the summary and the model."""
        run, monitor = self.prep, self.monitor
        with self._timed("evaluation"):
            self.initial_loss = self._initial_loss()
        step = 0
        callback = keras_callback(monitor)
        for stop in self.stops():
            step = self._fit_chunk(step, stop, callback)
            if monitor.diverged_at is not None:
                self.diverged_reason = "non-finite training loss"
                break
            if run.recorder is not None:
                run.recorder.record(step)
            if step in run.schedule.eval_steps and not self._evaluate(step):
                break
        if self.progress is not None:
            last = self.history[-1].values["train_loss"] if self.history else None
            self.progress(monitor.step, run.schedule.total_steps, last)
        if run.recorder is not None:
            run.recorder.finish(self.run_dir)
        diverged = monitor.diverged_at is not None
        with self._timed("evaluation"):
            final = {} if diverged else self._test()
            if not diverged:
                self.shifted = self.evaluator.shifted(run.data.x_test, run.data.y_test)
        if self.history:
            last_row = self.history[-1].values
            final.update({k: float(v) for k, v in last_row.items() if k.startswith("val_")})
        else:
            rundir.write_history(self.run_dir, [], run.metric_names, self.views)
        with self._timed("writing"):
            if save_model and not diverged:
                _save_model(run.model, self.run_dir / rundir.MODEL)
        summary = self.summary("diverged" if diverged else "completed", final)
        rundir.finish(self.run_dir, summary)
        return RunResult(self.run_dir, summary, self.history)

    def _initial_loss(self) -> float:
        """The loss at step 0 on the first training batch, normalized as training will."""
        run = self.prep
        first = run.order[: run.schedule.batch_size]
        return self.evaluator.train_mode(run.data.x_train[first], run.data.y_train[first])["loss"]

    def _fit_chunk(self, step: int, stop: int, callback: Any) -> int:
        """Fit the steps from `step` to `stop`; returns the step reached."""
        run, monitor = self.prep, self.monitor
        batch_size = run.spec.training.batch_size
        idx = run.order[step * batch_size : stop * batch_size]
        monitor.begin_chunk(step, stop)
        fit_start = time.perf_counter()
        logs = self.feeder.fit(run.data.x_train[idx], run.data.y_train[idx], [callback])
        self.seconds["fit"] += time.perf_counter() - fit_start
        self.chunk_times.append((time.perf_counter() - fit_start) / max(1, stop - step))
        steps, seconds = monitor.steady()
        self.steady = (self.steady[0] + steps, self.steady[1] + seconds)
        chunk_steps = monitor.step - step
        for key in ["loss", *run.metric_names]:
            pooled = self.since_eval.get(key, 0.0) + float(logs[key][-1]) * chunk_steps
            self.since_eval[key] = pooled
        self.steps_since_eval += chunk_steps
        return monitor.step

    def _split(self, x: np.ndarray, y: np.ndarray, prefix: str) -> dict[str, float]:
        """Every evaluation of one split the run records, keyed `<prefix>[_<view>]_<name>`."""
        names = ("loss", *self.prep.metric_names)
        chosen = self.evaluator.chosen(x, y)
        values = {f"{prefix}_{name}": float(chosen[name]) for name in names}
        for view in self.views:
            evaluate = self.evaluator.train_mode if view == "train_mode" else self.evaluator.moving
            result = evaluate(x, y)
            values |= {f"{prefix}_{view}_{name}": float(result[name]) for name in names}
        return values

    def _test(self) -> dict[str, float]:
        return self._split(self.prep.data.x_test, self.prep.data.y_test, "test")

    def _evaluate(self, step: int) -> bool:
        """Evaluate on the validation split and record a history row; False when it diverged."""
        run = self.prep
        values = {"train_loss": self.since_eval["loss"] / self.steps_since_eval}
        for m in run.metric_names:
            values[f"train_{m}"] = self.since_eval[m] / self.steps_since_eval
        with self._timed("evaluation"):
            values |= self._split(run.data.x_val, run.data.y_val, "val")
        return self.record(step, values)

    def record(self, step: int, values: dict[str, float]) -> bool:
        """Record evaluation point `step` from its `values` (every history column after
        wall_seconds); False when the run diverged there."""
        run = self.prep
        columns = rundir.history_columns(run.metric_names, self.views)[4:]
        row = HistoryRow(
            step=step,
            epoch=run.schedule.epoch(step),
            examples_seen=step * run.schedule.batch_size,
            wall_seconds=time.perf_counter() - self.t0,
            values={name: values[name] for name in columns},
        )
        self.since_eval, self.steps_since_eval = {}, 0
        self.history.append(row)
        with self._timed("writing"):
            rundir.write_history(self.run_dir, self.history, run.metric_names, self.views)
        self.diverged_reason = self._divergence(values["train_loss"], values["val_loss"])
        if self.diverged_reason is not None:
            self.monitor.diverged_at = step
            return False
        name, goal = run.spec.training.target_metric, run.spec.training.target_value
        if name and self.target is None and _reached(name, float(values[name]), goal or 0.0):
            self.target = (step, row.wall_seconds)
        return True

    def _divergence(self, train_loss: float, val_loss: float) -> str | None:
        """Why the run has diverged at this evaluation point, or None (README: Divergence)."""
        run = self.prep
        classifier = run.data.task == "classification"
        previous = self.history[-2].values["train_loss"] if len(self.history) > 1 else None
        accuracy = self.history[-1].values.get("train_accuracy") if self.history else None
        return divergence_reason(
            train_loss,
            val_loss,
            initial=self.initial_loss,
            previous=previous,
            factor=run.spec.training.divergence_factor,
            num_classes=run.data.num_classes if classifier else None,
            train_accuracy=accuracy,
            chance=_chance(run) if classifier else None,
        )

    def summary(self, status: str = "failed", final: dict[str, float] | None = None) -> RunSummary:
        """The run's summary as it stands; `status` and `final` as given."""
        from bnbench.model.build import parameter_counts
        from bnbench.results.environment import library_versions
        from bnbench.train.instruction_set import cpu_description

        run, training = self.prep, self.prep.spec.training
        target_step, target_seconds = self.target or (None, None)
        best = _best(self.history, run.metric_names)
        chance = _chance(run) if run.data.task == "classification" else None
        return RunSummary.model_validate({
            "run_id": self.run_dir.name,
            "status": status,
            "name": run.spec.name,
            "seed": run.spec.seed,
            "backend": run.backend,
            "config_hash": self.fingerprint,
            "total_steps": run.schedule.total_steps,
            "steps_per_epoch": run.schedule.steps_per_epoch,
            "batch_size": training.batch_size,
            "learning_rate": training.learning_rate,
            "effective_learning_rate": training.effective_learning_rate,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "versions": library_versions(),
            "machine": cpu_description(),
            "diverged_step": self.monitor.diverged_at,
            "steps_done": self.monitor.step,
            "metric": run.metric_names[0] if run.metric_names else None,
            "metrics": run.metric_names,
            "final": final or {},
            "best": best,
            "target": Target(metric=training.target_metric, value=training.target_value,
                             step=target_step, seconds=target_seconds),
            "params": Params(**parameter_counts(run.model)),
            "step_time_ms": self._step_time_ms(),
            "train_seconds": time.perf_counter() - self.t0,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "bn_statistics": run.spec.evaluation.bn_statistics if self.evaluator.bn_layers
            else "moving",
            "bn_layers": len(self.evaluator.bn_layers),
            "initial_loss": self.initial_loss,
            "divergence_factor": training.divergence_factor,
            "diverged_reason": self.diverged_reason,
            "chance_accuracy": chance,
            "timings": self._timings(),
            "stalled": _stalled(best, final or {}, run, chance) if status == "completed" else None,
            "shifted": self.shifted,
            "vectorized": self.vectorized,
            "vectorized_reason": self.vectorized_reason,
            "evaluated": run.evaluated,
        })  # fmt: skip

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def _timings(self) -> dict[str, float]:
        """Where the run's time went, in seconds (README: Performance)."""
        per_step = (self._step_time_ms() or 0.0) / 1000
        # Every step done at the steady rate; the rest of fit's time is its set-up and the
        # compilation.
        stepping = min(self.seconds["fit"], self.monitor.step * per_step)
        return {
            **self.prep.timings,
            "compile_and_setup": self.seconds["fit"] - stepping,
            "steps": stepping,
            "evaluation": self.seconds["evaluation"],
            "writing": self.seconds["writing"],
        }

    def _step_time_ms(self) -> float | None:
        """Milliseconds per step, without each chunk's first step (set-up, compilation)."""
        steps, seconds = self.steady
        if steps > 0:
            return seconds / steps * 1000
        # Only chunks of one call (one step, or no more than steps_per_execution): their times
        # include the set-up; the later ones at least no compilation.
        times = [t for t in (self.chunk_times[1:] or self.chunk_times) if t > 0.0]
        return float(np.median(times)) * 1000 if times else None


def _as_trained(resolved: dict[str, Any], prepared: Prepared) -> dict[str, Any]:
    """The config as trained: with the divisor `normalize: scale` resolved from the data.

    Written to config.yaml (and hashed as the summary's config_hash) so that a reader sees what
    the inputs were divided by, and a re-run of that file divides by the same number.
    """
    divisor = prepared.data.scale_divisor
    if divisor is None:
        return resolved
    dataset = {**resolved["dataset"], "scale_by": divisor}
    return {**resolved, "dataset": dataset}


def _views(prepared: Prepared) -> tuple[str, ...]:
    """The extra evaluations recorded beside the chosen one (`rundir.VIEWS`)."""
    views = []
    if prepared.spec.evaluation.train_mode_metrics:
        views.append("train_mode")
    if prepared.spec.evaluation.bn_statistics == "recalibrated":
        views.append("moving")  # both numbers on record
    return tuple(views)


def _chance(run: Prepared) -> float:
    """The accuracy of always predicting the validation split's most common class."""
    counts = np.bincount(np.asarray(run.data.y_val, dtype=np.int64).ravel())
    return float(counts.max() / counts.sum()) if counts.size else 0.0


def _stalled(
    best: dict[str, Any], final: dict[str, float], run: Prepared, chance: float | None
) -> bool | None:
    """Whether a classifier's validation accuracy never left chance, or ended back at it
    (within 1 / (2 k) of it): a run at a high learning rate can clear the bar at one early
    point and then collapse, and a run that ends at chance has learned nothing usable."""
    value, last = best.get("val_accuracy"), final.get("val_accuracy")
    if chance is None or value is None or run.data.num_classes is None:
        return None
    bar = chance + 1 / (2 * run.data.num_classes)
    return bool(value <= bar or (last is not None and last <= bar))


def _reached(name: str, value: float, target: float) -> bool:
    return value <= target if lower_is_better(name) else value >= target


def _best(history: list[HistoryRow], metric_names: list[str]) -> dict[str, Any]:
    name = f"val_{metric_names[0]}" if metric_names else "val_loss"
    values = [
        (float(row.values[name]), row.step)
        for row in history
        if math.isfinite(float(row.values[name]))
    ]
    if not values:
        return {name: None, "step": None}
    pick = min if lower_is_better(name) else max
    value, step = pick(values)
    return {name: value, "step": step}


def _save_model(model: Any, path: Path) -> None:
    from bnbench.results.files import replacing

    # Keras insists on the .keras suffix; the temporary name is one our cleanup recognises.
    with replacing(path, suffix=".tmp.keras") as tmp:
        model.save(tmp)
