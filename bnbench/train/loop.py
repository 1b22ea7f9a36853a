"""Training: a function of its spec that writes a run directory and returns the result.

`train` prepares the run (`bnbench.train.prepare`), fits it with `model.fit` in chunks that end
at the evaluation points, and records one history row per evaluation point. It never plots,
prints tables, or reads other runs. Divergence is a result (status 'diverged'), not an exception.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.config.identity import config_hash
from bnbench.config.registries import lower_is_better
from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.results.rundir import HistoryRow, Params, RunSummary, Target
from bnbench.train.monitor import ProgressHook, StepMonitor, keras_callback
from bnbench.train.plan import resolved_config
from bnbench.train.prepare import Prepared, prepare


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
) -> RunResult:
    """Train one run and write its directory.

    Args:
        spec: the validated run spec.
        run_dir: where to write; created if missing; must not hold a finished run.
        save_model: also write `model.keras`.
        progress: called with (step, total_steps, loss) during training.
        fast_feeding: use the backend's fast input path (see `bnbench.train.feeding`).

    Returns:
        The result, whose status is 'completed' or 'diverged'.

    Raises:
        SpecError: the spec cannot be trained (data missing, blocks not fitting). Nothing is
            written in that case.
        KeyboardInterrupt: re-raised after marking the directory incomplete.
    """
    prepared = prepare(spec)
    # From here on the directory exists; the marker says so until the summary is written.
    resolved = resolved_config(spec)
    rundir.begin(run_dir, resolved)
    loop: _Loop | None = None
    try:
        loop = _Loop(prepared, run_dir, config_hash(resolved), progress, fast_feeding)
        return loop.run(save_model)
    except KeyboardInterrupt:
        rundir.mark_interrupted(run_dir)
        raise
    except Exception as err:
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
        from bnbench.train.feeding import Feeder

        self.prep = prepared
        self.run_dir = run_dir
        self.fingerprint = fingerprint
        self.progress = progress
        self.started = time.time()
        self.monitor = StepMonitor(prepared.plan.total_steps, progress)
        training = prepared.spec.training
        eval_batch_size = max(256, training.batch_size)
        self.feeder = Feeder(
            prepared.model, training.batch_size, eval_batch_size, fast=fast_feeding
        )
        self.history: list[HistoryRow] = []
        self.chunk_times: list[float] = []  # seconds per step of each fit chunk
        self.target: tuple[int, float] | None = None  # (step, seconds) when first reached
        self.t0 = time.perf_counter()
        # Train loss/metrics at an evaluation point: the mean over the steps since the previous
        # one, pooled over the chunks in between (diagnostics can split an interval).
        self.since_eval: dict[str, float] = {}
        self.steps_since_eval = 0

    def stops(self) -> list[int]:
        """Steps at which fitting pauses: the evaluation points and the diagnostics' steps."""
        plan, recorder = self.prep.plan, self.prep.recorder
        stops = set(plan.eval_steps)
        if recorder is not None:
            stops |= set(recorder.steps(plan.total_steps, list(plan.eval_steps)))
            if 0 in stops:
                recorder.record(0)
        stops.discard(0)
        return sorted(stops)

    def run(self, save_model: bool) -> RunResult:
        """Train to the end (or to divergence), then write the summary and the model."""
        run, monitor = self.prep, self.monitor
        step = 0
        callback = keras_callback(monitor)
        for stop in self.stops():
            step = self._fit_chunk(step, stop, callback)
            if monitor.diverged_at is not None:
                break
            if run.recorder is not None:
                run.recorder.record(step)
            if step in run.plan.eval_steps and not self._evaluate(step):
                break
        if self.progress is not None:
            last = self.history[-1].values["train_loss"] if self.history else None
            self.progress(monitor.step, run.plan.total_steps, last)
        if run.recorder is not None:
            run.recorder.finish(self.run_dir)
        diverged = monitor.diverged_at is not None
        final: dict[str, float] = {}
        if not diverged:
            test = self.feeder.evaluate(run.data.x_test, run.data.y_test)
            final = {f"test_{k}": float(v) for k, v in test.items() if k != "compile_metrics"}
        if self.history:
            last_row = self.history[-1].values
            final.update({k: float(v) for k, v in last_row.items() if k.startswith("val_")})
        else:
            rundir.write_history(self.run_dir, [], run.metric_names)
        summary = self.summary("diverged" if diverged else "completed", final)
        if save_model and not diverged:
            _save_model(run.model, self.run_dir / rundir.MODEL)
        rundir.finish(self.run_dir, summary)
        return RunResult(self.run_dir, summary, self.history)

    def _fit_chunk(self, step: int, stop: int, callback: Any) -> int:
        """Fit the steps from `step` to `stop`; returns the step reached."""
        run, monitor = self.prep, self.monitor
        batch_size = run.spec.training.batch_size
        idx = run.order[step * batch_size : stop * batch_size]
        monitor.chunk_start = step
        fit_start = time.perf_counter()
        logs = self.feeder.fit(run.data.x_train[idx], run.data.y_train[idx], [callback])
        self.chunk_times.append((time.perf_counter() - fit_start) / max(1, stop - step))
        chunk_steps = monitor.step - step
        for key in ["loss", *run.metric_names]:
            pooled = self.since_eval.get(key, 0.0) + float(logs[key][-1]) * chunk_steps
            self.since_eval[key] = pooled
        self.steps_since_eval += chunk_steps
        return monitor.step

    def _evaluate(self, step: int) -> bool:
        """Evaluate on the validation split and record a history row; False when it diverged."""
        run = self.prep
        val = self.feeder.evaluate(run.data.x_val, run.data.y_val)
        values = {"train_loss": self.since_eval["loss"] / self.steps_since_eval}
        values |= {"val_loss": val["loss"]}
        for m in run.metric_names:
            values[f"train_{m}"] = self.since_eval[m] / self.steps_since_eval
            values[f"val_{m}"] = val[m]
        columns = rundir.history_columns(run.metric_names)[4:]
        row = HistoryRow(
            step=step,
            epoch=run.plan.epoch(step),
            examples_seen=step * run.plan.batch_size,
            wall_seconds=time.perf_counter() - self.t0,
            values={name: values[name] for name in columns},
        )
        self.since_eval, self.steps_since_eval = {}, 0
        self.history.append(row)
        rundir.write_history(self.run_dir, self.history, run.metric_names)
        if not math.isfinite(float(val["loss"])):
            self.monitor.diverged_at = step
            return False
        name, goal = run.spec.training.target_metric, run.spec.training.target_value
        if name and self.target is None and _reached(name, float(values[name]), goal or 0.0):
            self.target = (step, row.wall_seconds)
        return True

    def summary(self, status: str = "failed", final: dict[str, float] | None = None) -> RunSummary:
        """The run's summary as it stands; `status` and `final` as given."""
        from bnbench.model.build import parameter_counts
        from bnbench.results.environment import library_versions

        run, training = self.prep, self.prep.spec.training
        steady = self.chunk_times[1:] if len(self.chunk_times) > 1 else self.chunk_times
        target_step, target_seconds = self.target or (None, None)
        return RunSummary.model_validate({
            "run_id": self.run_dir.name,
            "status": status,
            "name": run.spec.name,
            "seed": run.spec.seed,
            "backend": run.backend,
            "config_hash": self.fingerprint,
            "total_steps": run.plan.total_steps,
            "steps_per_epoch": run.plan.steps_per_epoch,
            "batch_size": training.batch_size,
            "learning_rate": training.learning_rate,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
            "versions": library_versions(),
            "diverged_step": self.monitor.diverged_at,
            "steps_done": self.monitor.step,
            "metric": run.metric_names[0] if run.metric_names else None,
            "metrics": run.metric_names,
            "final": final or {},
            "best": _best(self.history, run.metric_names),
            "target": Target(metric=training.target_metric, value=training.target_value,
                             step=target_step, seconds=target_seconds),
            "params": Params(**parameter_counts(run.model)),
            "step_time_ms": float(np.median(steady)) * 1000 if steady else None,
            "train_seconds": time.perf_counter() - self.t0,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })  # fmt: skip


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
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    tmp.replace(path)
