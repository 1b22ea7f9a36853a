"""How long an ablation will take, before it runs: timed from finished runs, or from a probe.

A run's time is modelled as a fixed cost (data, building, compilation and set-up, writing), its
steps at the step time, and its evaluations (each evaluation point, plus the final test) at the
time of one evaluation; each worker also pays its start-up (Python, Keras) once. The costs come
from the `summary.json` timings of finished runs in the results tree, matched by backend and
architecture (model, data and batch size) where possible, or else from a short probe: one run of
the grid trained for a few dozen steps by `bnbench train` in a fresh process, in a temporary
folder. The runs still to train are then spread over `jobs` slots, longest first, one backend
after another, as `bnbench ablate` runs them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bnbench.config.ablation import Ablation, PlannedRun
from bnbench.config.loading import EXCLUSIVE_KEYS, apply_overrides, validate
from bnbench.config.schema import RunSpec
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.layout import RUNS_DIR, run_path
from bnbench.train.schedule import evaluation_points, run_length

# Steps of the probe: enough for a steady step time after compilation, few enough to take
# seconds. A run shorter than this is probed at its own length.
PROBE_STEPS = 40
# The timings that are neither steps, evaluation, nor the process's start-up.
_FIXED = ("data", "build", "compile_and_setup", "writing")


@dataclass(frozen=True)
class Costs:
    """What one run costs, and what that was measured from.

    Attributes:
        fixed_s: Seconds per run besides steps and evaluation (data, build, compile, writing).
        step_ms: Milliseconds per optimizer step.
        evaluation_s: Seconds per evaluation (an evaluation point, or the final test).
        startup_s: Seconds a worker needs before its first run (None: not measured).
        source: What the costs were measured from, for the user.
    """

    fixed_s: float
    step_ms: float
    evaluation_s: float
    startup_s: float | None
    source: str

    def seconds(self, steps: int, points: int) -> float:
        """Predicted seconds of a run of `steps` steps and `points` evaluation points."""
        return self.fixed_s + steps * self.step_ms / 1000 + (points + 1) * self.evaluation_s


@dataclass
class Estimate:
    """The predicted time of the runs an `ablate` would still train.

    Attributes:
        seconds: Predicted wall time of the estimated runs at `jobs` (None: none estimated).
        jobs: Runs at once.
        remaining: Runs still to train (not finished, not failed).
        failed: Runs recorded as failed, which `ablate` skips without `--retry-failed`.
        bases: Each `Costs` used, with how many of the remaining runs it estimated.
        missing: Why some remaining runs could not be estimated: reason -> how many runs.
        ignored: Finished runs in the tree whose summary has no timings to learn from.
    """

    seconds: float | None
    jobs: int
    remaining: int
    failed: int
    bases: list[tuple[Costs, int]] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    ignored: int = 0

    @property
    def estimated(self) -> int:
        return sum(count for _, count in self.bases)


@dataclass(frozen=True)
class _Finished:
    """One finished run's measured costs and what it ran."""

    backend: str
    architecture: str
    fixed_s: float
    step_ms: float
    evaluation_s: float


def estimate_runtime(
    ablation: Ablation,
    results_dir: Path | None,
    jobs: int = 1,
    probe: bool = False,
    probe_run: Callable[[PlannedRun, int], Costs] | None = None,
) -> Estimate:
    """Predict how long `bnbench ablate` takes to train the runs not yet finished in
    `results_dir`, at `jobs` runs at once. Writes nothing in `results_dir`.

    Args:
        ablation: the loaded ablation.
        results_dir: the results tree to learn from and to check for finished runs (or None).
        jobs: runs at once.
        probe: time a short probe run for each backend that no finished run has timed.
        probe_run: how to probe a run for some steps (default `probe_costs`).

    Returns:
        The estimate; its `missing` says which runs could not be estimated and why.

    Raises:
        SpecError: `jobs` is below 1, or a probe run failed.
    """
    if jobs < 1:
        raise SpecError(f"--jobs must be at least 1, got {jobs}")
    states = {run.run_id: _state(results_dir, run) for run in ablation.runs}
    # What `ablate` would train: not finished, and not failed (skipped without --retry-failed).
    todo = [
        run for run in ablation.runs if states[run.run_id] in (rundir.MISSING, rundir.UNFINISHED)
    ]
    failed = sum(state == "failed" for state in states.values())
    finished, ignored = _finished_runs(results_dir) if results_dir else ([], 0)
    estimate = Estimate(None, jobs, len(todo), failed, ignored=ignored)
    if not todo:
        estimate.seconds = 0.0
        return estimate
    costs = _costs_from_finished(todo, finished, results_dir)
    sizes: dict[str, int] = {}  # training-set sizes, read only for runs that can be timed
    lengths: dict[str, tuple[int, int] | None] = {}  # None: not known here (counted once)

    def length(run: PlannedRun) -> tuple[int, int] | None:
        if run.run_id not in lengths:
            try:
                lengths[run.run_id] = run_length(run.spec, sizes)
            except SpecError as err:
                lengths[run.run_id] = None
                _count(estimate.missing, f"their length is not known here ({err})")
        return lengths[run.run_id]

    if probe:
        for backend in sorted({run.spec.backend for run in todo if run.run_id not in costs}):
            group = [run for run in todo if run.spec.backend == backend and run.run_id not in costs]
            for run in group:  # the first whose length is known
                found = length(run)
                if found:
                    probed = (probe_run or probe_costs)(run, min(PROBE_STEPS, found[0]))
                    costs |= {other.run_id: probed for other in group}
                    break
    for run in todo:
        if run.run_id in costs:
            length(run)
        elif run.run_id not in lengths:
            _count(estimate.missing, f"no finished {run.spec.backend} run to time them")
    known = {run_id: found for run_id, found in lengths.items() if found and run_id in costs}
    timed = [run for run in todo if run.run_id in known]
    if not timed:
        return estimate
    counts: dict[Costs, int] = {}
    for run in timed:
        _count(counts, costs[run.run_id])
    estimate.bases = list(counts.items())
    estimate.seconds = 0.0
    for backend in sorted({run.spec.backend for run in timed}):  # as `ablate`: one at a time
        group = [run for run in timed if run.spec.backend == backend]
        durations = [costs[run.run_id].seconds(*known[run.run_id]) for run in group]
        startup = max((costs[run.run_id].startup_s or 0.0) for run in group)
        estimate.seconds += makespan(durations, jobs, startup)
    return estimate


def _count(counts: dict[Any, int], key: Any) -> None:
    counts[key] = counts.get(key, 0) + 1


def makespan(durations: list[float], jobs: int, startup: float = 0.0) -> float:
    """Seconds until `durations` are done on `jobs` slots, longest first to the freest slot;
    each slot that gets a run first pays `startup`."""
    slots = [0.0] * min(jobs, len(durations))
    for seconds in sorted(durations, reverse=True):
        free = slots.index(min(slots))
        slots[free] += seconds + (startup if slots[free] == 0.0 else 0.0)
    return max(slots, default=0.0)


def _state(results_dir: Path | None, run: PlannedRun) -> str:
    return rundir.run_state(run_path(results_dir, run.run_id)) if results_dir else rundir.MISSING


def architecture_key(config: dict[str, Any]) -> str:
    """What a run's step time depends on: backend, model, data and batch size, as a key."""
    dataset = {k: v for k, v in dict(config.get("dataset") or {}).items() if k != "scale_by"}
    training = dict(config.get("training") or {})
    key = [config.get("backend"), config.get("model"), dataset, training.get("batch_size")]
    return json.dumps(key, sort_keys=True, default=str)


def _finished_runs(results_dir: Path) -> tuple[list[_Finished], int]:
    """The measured costs of every completed run in the tree, and how many completed runs
    lacked the timings to learn from."""
    folder = results_dir / RUNS_DIR
    if not folder.is_dir():
        return [], 0
    found, ignored = [], 0
    for run_dir in sorted(folder.iterdir()):
        if run_dir.is_symlink() or not run_dir.is_dir():
            continue
        summary = rundir.read_summary(run_dir)
        if summary is None or summary.status != "completed":
            continue
        measured = _measured(summary, rundir.read_config(run_dir))
        if measured is None:
            ignored += 1
        else:
            found.append(measured)
    return found, ignored


def _measured(summary: rundir.RunSummary, config: dict[str, Any]) -> _Finished | None:
    timings, every = summary.timings, (config.get("training") or {}).get("eval_every")
    if (summary.step_time_ms is None or summary.total_steps is None or not summary.backend
            or summary.steps_per_epoch is None or "evaluation" not in timings):  # fmt: skip
        return None
    points = len(evaluation_points(summary.total_steps, every or summary.steps_per_epoch))
    return _Finished(
        backend=summary.backend,
        architecture=architecture_key({**config, "backend": summary.backend}),
        fixed_s=sum(timings.get(name, 0.0) for name in _FIXED),
        step_ms=summary.step_time_ms,
        evaluation_s=timings["evaluation"] / (points + 1),
    )


def _costs_from_finished(todo: list[PlannedRun], finished: list[_Finished],
                         results_dir: Path | None) -> dict[str, Costs]:  # fmt: skip
    """Costs for each run of `todo` that finished runs can time: the medians of those with
    the same backend and architecture, else of those with the same backend."""
    out: dict[str, Costs] = {}
    for run in todo:
        resolved = run.spec.model_dump(mode="json")
        same = [f for f in finished if f.architecture == architecture_key(resolved)]
        how = "the same backend, model, data and batch size"
        if not same:
            same = [f for f in finished if f.backend == run.spec.backend]
            how = f"the same backend ({run.spec.backend}) but another model, data or batch size"
        if same:
            runs = f"{len(same)} finished run{'s' if len(same) != 1 else ''}"
            out[run.run_id] = Costs(
                fixed_s=statistics.median(f.fixed_s for f in same),
                step_ms=statistics.median(f.step_ms for f in same),
                evaluation_s=statistics.median(f.evaluation_s for f in same),
                startup_s=None,
                source=f"{runs} in {results_dir} with {how}",
            )
    return out


def probe_costs(run: PlannedRun, steps: int = PROBE_STEPS) -> Costs:
    """Time `run` shortened to `steps` steps (at least 2), trained by `bnbench train` in a
    fresh process inside a temporary folder (removed afterwards).

    The process's wall time beyond the run's own work is the start-up a worker pays once.

    Raises:
        SpecError: the probe run failed.
    """
    steps = max(2, steps)
    every = max(1, steps // 2)  # two evaluation points, so that evaluation is timed too
    data = apply_overrides(run.spec.model_dump(mode="json"),
                           [("training.steps", steps), ("training.eval_every", every)],
                           RunSpec, EXCLUSIVE_KEYS)  # fmt: skip
    validate(RunSpec, data, None)
    with tempfile.TemporaryDirectory(prefix="bnbench-probe-") as tmp:
        spec_path, out = Path(tmp) / "probe.yaml", Path(tmp) / "run"
        spec_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        command = [sys.executable, "-m", "bnbench", "train", str(spec_path), "--out", str(out),
                   "--quiet", "--no-save-model"]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        summary = rundir.read_summary(out)
        if done.returncode != 0 or summary is None:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise SpecError(f"the probe run of {run.run_id} failed: {last}")
    measured = _measured(summary, data)
    if measured is None:
        raise SpecError(f"the probe run of {run.run_id} recorded no step time")
    work = sum(summary.timings.values()) - summary.timings.get("imports", 0.0)
    return Costs(
        fixed_s=measured.fixed_s,
        step_ms=measured.step_ms,
        evaluation_s=measured.evaluation_s,
        startup_s=max(0.0, wall - work),
        source=f"a probe of {run.run_id} for {steps} steps ({run.spec.backend}, in one fresh "
        "process using the whole machine)",
    )


def describe_estimate(estimate: Estimate, results_dir: Path | str | None, probe: bool) -> list[str]:
    """What `bnbench plan` prints about an estimate: the time, what it was estimated from,
    the measured costs, and which runs it leaves out (and how to include them).

    `results_dir` is the tree the estimate learned from, or words saying why none was used."""
    failed = _failed_line(estimate)
    if not estimate.remaining:
        return ["estimated runtime: nothing left to train", *failed]
    hint = "" if probe else "; add --estimate to time a short probe run (a few dozen steps)"
    if not estimate.bases:
        if all("no finished" in why for why in estimate.missing):
            where = results_dir or "--out (none given)"
            return [f"no runtime estimate: no finished runs in {where} to time them{hint}", *failed]
        reasons = "; ".join(f"{n} runs: {why}" for why, n in estimate.missing.items())
        return [f"no runtime estimate: {reasons}", *failed]
    n, total = estimate.estimated, estimate.remaining
    of = f"{n} run{'s' if n != 1 else ''}" if n == total else f"{n} of the {total} runs to train"
    head = f"estimated runtime ≈ {duration(estimate.seconds or 0.0)} for {of}"
    head += f" at --jobs {estimate.jobs}"
    if len(estimate.bases) == 1:
        ((costs, _),) = estimate.bases
        lines = [f"{head} (estimated from {costs.source}; {_costs(costs)})"]
    else:
        lines = [head]
        lines += [f"  {k} run{'s' if k != 1 else ''} estimated from {costs.source}; "
                  f"{_costs(costs)}" for costs, k in estimate.bases]  # fmt: skip
    for why, k in estimate.missing.items():
        more = hint if "no finished" in why else ""
        lines.append(f"  not estimated: {k} run{'s' if k != 1 else ''}: {why}{more}")
    if estimate.jobs > 1:
        lines.append("  (assumes runs at once do not slow each other down; on a machine with "
                     "fewer free cores than --jobs they do)")  # fmt: skip
    if estimate.ignored:
        lines.append(f"  ({estimate.ignored} finished runs without timings were not used)")
    return lines + failed


def _failed_line(estimate: Estimate) -> list[str]:
    n = estimate.failed
    if not n:
        return []
    runs = f"{n} run{'s' if n != 1 else ''} failed earlier and {'are' if n != 1 else 'is'}"
    return [f"{runs} not counted: ablate skips them unless given --retry-failed"]


def _costs(costs: Costs) -> str:
    startup = ("worker start-up not included" if costs.startup_s is None
               else f"worker start-up {costs.startup_s:.1f} s")  # fmt: skip
    return (f"fixed cost per run {costs.fixed_s:.2f} s, step {costs.step_ms:.2f} ms, "
            f"evaluation {costs.evaluation_s * 1000:.0f} ms each, {startup}")  # fmt: skip


def duration(seconds: float) -> str:
    """Seconds in words: '8.2 s', '41 s', '3.5 min', '1.2 h'."""
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
