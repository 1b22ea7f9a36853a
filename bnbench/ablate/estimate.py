"""How long an ablation will take, before it runs: timed from finished runs, or from a probe.

A worker pays three kinds of cost, and the estimate charges each where it occurs:

* its start-up (Python, Keras and the backend), once per worker of each backend's pool;
* the compilation of a program (the training and evaluation functions), by the first run of
  each program and by any run of it that starts before that compilation is done; later runs of
  the program (the other seeds and learning rates of an arm), in any worker, load it from JAX's
  compilation cache instead. A vectorized group of seeds is a program of its own;
* per run, a fixed cost (data, building, set-up, writing), its steps at the steady step time
  and its evaluations (each evaluation point, plus the final test) at the time of one.

The costs come from the `summary.json` timings of finished runs in the results tree, matched by
backend, architecture (model, data and batch size) and whether they trained in vectorized
groups, where possible; or else from a probe (`bnbench.ablate.probe`): one unit of the grid
trained for a few dozen steps in fresh processes set up as workers, first compiling its
programs, then loading them. The units still to train are then handed out in plan order to the
first free of `jobs` workers, one backend after another, as `bnbench ablate` hands them out.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnbench.ablate.groups import DEFAULT_GROUP_SIZE, Unit, units
from bnbench.config.ablation import Ablation, PlannedRun
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
# Finished runs split into the runs that compiled their program and those that loaded it when
# their fixed costs differ by more than this factor (below it, they all look alike).
_COMPILED_APART = 2.0


@dataclass(frozen=True)
class Costs:
    """What one run costs, and what that was measured from.

    Attributes:
        fixed_s: Seconds per run besides steps, evaluation and compilation (data, building,
            set-up, writing) when its program is compiled already.
        step_ms: Milliseconds per optimizer step, at the steady rate.
        evaluation_s: Seconds per evaluation (an evaluation point, or the final test).
        compile_s: Seconds a run pays on top when its program is not compiled yet (compiling
            the training and evaluation functions, rather than loading them from the cache).
        startup_s: Seconds a worker needs before its first run (None: not measured).
        source: What the costs were measured from, for the user.
        grouped: Measured on vectorized groups: each cost is one seed's share of the group.
    """

    fixed_s: float
    step_ms: float
    evaluation_s: float
    compile_s: float
    startup_s: float | None
    source: str
    grouped: bool = False

    def seconds(self, steps: int, points: int) -> float:
        """Predicted seconds of a run of `steps` steps and `points` evaluation points whose
        program is compiled already."""
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
class Measured:
    """One run's measured costs (for a run of a group, its share of the group's) and what it
    ran.

    Attributes:
        backend: The run's backend.
        architecture: `architecture_key` of its config.
        grouped: It trained in a vectorized group of seeds.
        fixed_s: Seconds of data, building, compilation and set-up, and writing.
        step_ms: Milliseconds per step at the steady rate.
        evaluation_s: Seconds per evaluation, compilation included.
        points: Its evaluation points.
    """

    backend: str
    architecture: str
    grouped: bool
    fixed_s: float
    step_ms: float
    evaluation_s: float
    points: int

    @property
    def overhead(self) -> float:
        """Seconds of the run besides its steps: fixed costs and every evaluation."""
        return self.fixed_s + (self.points + 1) * self.evaluation_s


# Probes units of work of one backend, each for some steps, as `workers` of `ablate --jobs`
# would train them at once: ([(unit, steps)], jobs, workers) -> each unit's per-run costs.
ProbeUnits = Callable[[Sequence[tuple[Unit, int]], int, int], list[Costs]]


def estimate_runtime(
    ablation: Ablation,
    results_dir: Path | None,
    jobs: int = 1,
    probe: ProbeUnits | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> Estimate:
    """Predict how long `bnbench ablate` takes to train the runs not yet finished in
    `results_dir`, at `jobs` runs at once. Writes nothing in `results_dir`.

    Args:
        ablation: the loaded ablation.
        results_dir: the results tree to learn from and to check for finished runs (or None).
        jobs: runs at once.
        probe: how to time short probes of units of work (`bnbench.ablate.probe.probe_costs`),
            given one unit of each kind (a run alone, a vectorized group) of a backend that no
            finished run has timed; None: no probe.
        group_size: the most seeds in one vectorized group, as `ablate --group-size`.

    Returns:
        The estimate; its `missing` says which runs could not be estimated and why.

    Raises:
        SpecError: `jobs` or `group_size` is below 1, or a probe run failed.
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
    pools = {
        backend: units([run for run in todo if run.spec.backend == backend], group_size, jobs)
        for backend in sorted({run.spec.backend for run in todo})
    }
    grouped = {run.run_id: unit.vectorized for found in pools.values() for unit in found
               for run in unit.runs}  # fmt: skip
    costs = _costs_from_finished(todo, grouped, finished, results_dir)
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

    if probe is not None:
        for found in pools.values():
            chosen: list[tuple[Unit, int, list[Unit]]] = []  # (unit, steps, the units it times)
            for kind in (False, True):  # runs alone, then vectorized groups
                untimed = [unit for unit in found if unit.vectorized == kind
                           and any(run.run_id not in costs for run in unit.runs)]  # fmt: skip
                for unit in untimed:  # the first whose length is known
                    run_steps = (length(unit.runs[0]) or (0, 0))[0]
                    if run_steps:
                        chosen.append((unit, min(PROBE_STEPS, run_steps), untimed))
                        break
            if chosen:
                workers = min(jobs, len(found))  # as `ablate` starts them
                probed = probe([(unit, steps) for unit, steps, _ in chosen], jobs, workers)
                for (_, _, timed_by), measured_costs in zip(chosen, probed, strict=True):
                    costs |= {run.run_id: measured_costs for unit in timed_by
                              for run in unit.runs if run.run_id not in costs}  # fmt: skip
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
    for found in pools.values():  # as `ablate`: one backend's pool after another
        work = [_work(unit, costs, known) for unit in found]
        estimate.seconds += makespan([w for w in work if w is not None], jobs)
    return estimate


def _count(counts: dict[Any, int], key: Any) -> None:
    counts[key] = counts.get(key, 0) + 1


@dataclass(frozen=True)
class Work:
    """One unit of work as the schedule sees it.

    Attributes:
        seconds: Its time when its program is compiled already (in JAX's compilation cache).
        compile_s: What it pays on top when its program is not compiled yet.
        program: What the unit compiles (`program_key`); units of one program share it.
        startup_s: What a worker pays before its first unit.
    """

    seconds: float
    compile_s: float = 0.0
    program: str = ""
    startup_s: float = 0.0


def makespan(work: list[Work], jobs: int) -> float:
    """Seconds until `work` is done by `jobs` workers that take the units in order, each the
    next unit as it comes free (the lowest-numbered on a tie), as `ablate` hands them out.

    A worker pays its start-up before its first unit. A unit pays its compilation unless its
    program was compiled before it starts: the first unit of a program compiles it, and so does
    every unit of it that starts before that compilation is done (workers share compiled
    programs through JAX's compilation cache, not while compiling). No program is assumed
    compiled at the start.
    """
    free = [0.0] * min(jobs, len(work))
    started = [False] * len(free)
    compiled: dict[str, float] = {}  # program -> when it is first compiled
    for unit in work:
        slot = free.index(min(free))
        begin = free[slot] + (0.0 if started[slot] else unit.startup_s)
        started[slot] = True
        if compiled.get(unit.program, math.inf) > begin:
            begin += unit.compile_s
            compiled[unit.program] = min(compiled.get(unit.program, math.inf), begin)
        free[slot] = begin + unit.seconds
    return max(free, default=0.0)


def _work(unit: Unit, costs: dict[str, Costs],
          known: dict[str, tuple[int, int]]) -> Work | None:  # fmt: skip
    """The unit's `Work`, from the runs of it that can be timed (None: none can)."""
    runs = [run for run in unit.runs if run.run_id in known]
    if not runs:
        return None
    return Work(
        seconds=sum(costs[run.run_id].seconds(*known[run.run_id]) for run in runs),
        compile_s=sum(costs[run.run_id].compile_s for run in runs),
        program=program_key(unit.runs[0].spec, len(unit.runs) if unit.vectorized else 0),
        startup_s=max(costs[run.run_id].startup_s or 0.0 for run in runs),
    )


def program_key(spec: RunSpec, group: int = 0) -> str:
    """What decides the programs a run compiles: its spec but the seed, name, learning rate
    (a variable of Keras' optimizers, not a constant of the program: runs of two rates share
    one compilation, measured) and target; and the size of its vectorized group (0: alone)."""
    data = spec.model_dump(mode="json")
    for key in ("seed", "name"):
        data.pop(key, None)
    training = dict(data.get("training") or {})
    for key in ("learning_rate", "target_metric", "target_value", "divergence_factor"):
        training.pop(key, None)
    return json.dumps([{**data, "training": training}, group], sort_keys=True, default=str)


def _state(results_dir: Path | None, run: PlannedRun) -> str:
    return rundir.run_state(run_path(results_dir, run.run_id)) if results_dir else rundir.MISSING


def architecture_key(config: dict[str, Any]) -> str:
    """What a run's step time depends on: backend, model, data and batch size, as a key."""
    dataset = {k: v for k, v in dict(config.get("dataset") or {}).items() if k != "scale_by"}
    training = dict(config.get("training") or {})
    key = [config.get("backend"), config.get("model"), dataset, training.get("batch_size")]
    return json.dumps(key, sort_keys=True, default=str)


# Settings that change a network's numbers but not its arithmetic: what a step, an evaluation
# or a compilation costs is the same whatever they are (`cost_key`).
_COSTLESS = ("initializer", "activation", "momentum", "epsilon", "placement")


def cost_key(config: dict[str, Any]) -> str:
    """`architecture_key` without the settings that cost nothing (`_COSTLESS`): the
    initializer and its scale, the activation, BN's momentum, epsilon and placement. Runs alike
    in it take the same time: the claims suite's probe of one times them all (every
    initialization scale of init_scale, every momentum of train_inference_gap)."""
    model = _costly(config.get("model") or {})
    return architecture_key({**config, "model": model})


def _costly(value: Any) -> Any:
    """`value` with the `_COSTLESS` keys of every mapping in it removed."""
    if isinstance(value, dict):
        return {k: _costly(v) for k, v in value.items() if k not in _COSTLESS}
    if isinstance(value, list):
        return [_costly(v) for v in value]
    return value


def _finished_runs(results_dir: Path) -> tuple[list[Measured], int]:
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
        costs = measured(summary, rundir.read_config(run_dir))
        if costs is None:
            ignored += 1
        else:
            found.append(costs)
    return found, ignored


def measured(summary: rundir.RunSummary, config: dict[str, Any]) -> Measured | None:
    """What a finished run's summary says it cost (None: it lacks the timings)."""
    timings, every = summary.timings, (config.get("training") or {}).get("eval_every")
    if (summary.step_time_ms is None or summary.total_steps is None or not summary.backend
            or summary.steps_per_epoch is None or "evaluation" not in timings):  # fmt: skip
        return None
    points = len(evaluation_points(summary.total_steps, every or summary.steps_per_epoch))
    return Measured(
        backend=summary.backend,
        architecture=architecture_key({**config, "backend": summary.backend}),
        grouped=bool(summary.vectorized),
        fixed_s=sum(timings.get(name, 0.0) for name in _FIXED),
        step_ms=summary.step_time_ms,
        evaluation_s=timings["evaluation"] / (points + 1),
        points=points,
    )


def learned_costs(same: list[Measured], source: str) -> Costs:
    """Per-run costs from finished runs alike, with the compilation taken apart.

    The first runs of a program compiled it; the later ones loaded it. So when the runs' fixed
    costs (compilation included) fall into two clusters, more than
    `_COMPILED_APART` times apart at their ends, the cheaper cluster gives the costs per run
    and the dearer one what compiling added (on the fixed costs and on every evaluation).
    Otherwise the runs all look alike (all compiled, or none) and compile nothing extra.
    """
    low, high = min(f.fixed_s for f in same), max(f.fixed_s for f in same)
    cut = math.sqrt(low * high) if low > 0 and high > _COMPILED_APART * low else math.inf
    reused = [f for f in same if f.fixed_s <= cut]
    fixed = statistics.median(f.fixed_s for f in reused)
    evaluation = statistics.median(f.evaluation_s for f in reused)
    compiled = [f.fixed_s - fixed + (f.points + 1) * (f.evaluation_s - evaluation)
                for f in same if f.fixed_s > cut]  # fmt: skip
    return Costs(
        fixed_s=fixed,
        step_ms=statistics.median(f.step_ms for f in same),
        evaluation_s=evaluation,
        compile_s=max(0.0, statistics.median(compiled)) if compiled else 0.0,
        startup_s=None,
        source=source,
        grouped=all(f.grouped for f in same),
    )


def _costs_from_finished(todo: list[PlannedRun], grouped: dict[str, bool],
                         finished: list[Measured], results_dir: Path | None,
                         ) -> dict[str, Costs]:  # fmt: skip
    """Costs for each run of `todo` that finished runs can time: from those with the same
    backend and architecture that trained as it will (alone, or in a vectorized group), else
    from the closest: the same backend trained alike, the same architecture, the same backend.
    `grouped` says which runs will train in a vectorized group."""
    out: dict[str, Costs] = {}
    for run in todo:
        architecture = architecture_key(run.spec.model_dump(mode="json"))
        kind = grouped[run.run_id]
        how = "in vectorized groups" if kind else "alone"
        other = f"the same backend ({run.spec.backend}) but another model, data or batch size"
        tiers = [  # (same architecture, trained alike, in words)
            (True, True, f"the same backend, model, data and batch size, trained {how}"),
            (False, True, f"{other}, trained {how}"),
            (True, False, f"the same backend, model, data and batch size, not trained {how}"),
            (False, False, f"{other}, not trained {how}"),
        ]
        for same_architecture, alike, words in tiers:
            same = [f for f in finished if f.backend == run.spec.backend
                    and (f.architecture == architecture or not same_architecture)
                    and (f.grouped == kind or not alike)]  # fmt: skip
            if same:
                runs = f"{len(same)} finished run{'s' if len(same) != 1 else ''}"
                out[run.run_id] = learned_costs(same, f"{runs} in {results_dir} with {words}")
                break
    return out


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
    lines.append("  (from the workers' start to the last run's end: ablate's own start-up and the "
                 "tables and figures after the runs come on top)")  # fmt: skip
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
    per = "per seed (its share of the group)" if costs.grouped else "per run"
    return (f"fixed cost {per} {costs.fixed_s:.2f} s, step {costs.step_ms:.2f} ms, "
            f"evaluation {costs.evaluation_s * 1000:.0f} ms each, compilation "
            f"{costs.compile_s:.1f} s per program, {startup}")  # fmt: skip


def duration(seconds: float) -> str:
    """Seconds in words: '8.2 s', '41 s', '3.5 min', '1.2 h'."""
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
