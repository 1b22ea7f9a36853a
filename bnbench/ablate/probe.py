"""Timing a unit of work before an ablation runs: the probe behind `bnbench plan --estimate`.

The probe trains one unit of the grid (a run alone, or a vectorized group of seeds), shortened
to a few dozen steps, in fresh processes set up as `ablate` workers are (`init_worker`: a share
of the cores, the thread cap, which is part of what XLA compiles for, and the backend), as many
at once as `ablate` would start, so that it sees what runs at once cost each other; inside a
temporary folder. Each process trains the unit in passes, with a JAX compilation cache of its
own that starts empty. The first pass compiles the unit's programs, as the first run of an arm
does; the second loads them from the cache, as every later run of the arm does (in any
worker): their difference is the compilation. The third evaluates ten times as often as the
second: their difference gives the time of one evaluation, and the rest of the second's
evaluation time (each new model's first evaluation sets its functions up) is a fixed cost of
every run. A process's wall time beyond its passes' work is a worker's start-up (Python,
Keras, the backend). The user's compilation cache is neither read (a program cached there
would hide the compilation) nor written. Where nothing is cached (TensorFlow traces every
run's functions anew; JAX with the cache off, `BNBENCH_JAX_CACHE=0`) every run compiles, as
the second pass does, and what the first pass costs more is a worker's first set-up: that pass
then trains `WARM_UP_STEPS` steps only, as its programs are not reused anyway.

The passes evaluate at most the first `EVALUATED` examples of the validation and of the test
split: on CIFAR-10's conv stack on a CPU one evaluation of the whole validation split takes
seconds, and the third pass makes twenty. Where a split was cut, a fourth pass evaluates twice
as many (`wide`) as often as the second: their difference is the cost of one more example
evaluated, and an evaluation of the whole split is the cut one's plus that cost for each
example cut (evaluation is linear in the examples: they go in batches of a fixed size). Small
splits (the digits', MNIST-1D's) are evaluated whole, and that pass does not run.

Each process runs `python -m bnbench.ablate.probe UNITS.yaml OUT SLOT WORKERS JOBS`, and trains
every unit probed for one backend (a run alone, a vectorized group), one after another.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from bnbench.ablate.estimate import Costs, measured
from bnbench.ablate.groups import Unit
from bnbench.config.loading import EXCLUSIVE_KEYS, apply_overrides, validate
from bnbench.config.schema import RunSpec
from bnbench.errors import SpecError
from bnbench.results import rundir

# The passes of the probe, in order, with the evaluation points of each and how many of the
# validation and test examples they evaluate at most, in `EVALUATED`s: compiling, then loading
# what was compiled, then the same with more evaluation points, then with more examples (only
# where the second cut a split).
PASSES = {"first": (2, 1), "again": (2, 1), "often": (20, 1), "wide": (2, 2)}
EVALUATED = 1024
# The first pass's steps where no compiled program is reused (`main`).
WARM_UP_STEPS = 4


def probe_costs(units: Sequence[tuple[Unit, int]], jobs: int, workers: int) -> list[Costs]:
    """Time each unit, shortened to its steps (at least 2), in `workers` worker-like processes
    at once, as `ablate` at `jobs` runs them, inside a temporary folder (removed afterwards).

    The units share one backend; each process trains them one after another, so that a
    worker's start-up is paid once.

    Returns:
        Per-run costs of each unit, averaged over the processes (for a group, each seed's share
        of the group's time).

    Raises:
        SpecError: the probe failed.
    """
    plans = [{name: {"evaluated_at_most": EVALUATED * share,
                     "specs": [_shortened(run.spec, max(2, steps), points) for run in unit.runs]}
              for name, (points, share) in PASSES.items()} for unit, steps in units]  # fmt: skip
    first = units[0][0].runs[0]
    with tempfile.TemporaryDirectory(prefix="bnbench-probe-") as tmp:
        plan_path = Path(tmp) / "units.yaml"
        plan_path.write_text(yaml.safe_dump(plans, sort_keys=False), encoding="utf-8")
        started, procs = time.perf_counter(), []
        try:
            for slot in range(workers):
                command = [sys.executable, "-m", "bnbench.ablate.probe", str(plan_path),
                           str(Path(tmp) / f"runs-{slot}"), str(slot), str(workers),
                           str(jobs)]  # fmt: skip
                env = dict(os.environ)
                if env.get("BNBENCH_JAX_CACHE") != "0":  # with the cache off, every run compiles
                    cache = str(Path(tmp) / f"jax-cache-{slot}")  # each compiles, as workers do
                    env["JAX_COMPILATION_CACHE_DIR"] = cache
                # stderr to a file: a full pipe would stall a process nobody reads yet
                with open(Path(tmp) / f"stderr-{slot}", "w", encoding="utf-8") as stderr:
                    procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                                  stderr=stderr, env=env))  # fmt: skip
            walls = _wait(procs, started)
        finally:
            for proc in procs:  # after a failure or Ctrl-C (probes ignore it, as workers do)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        found: list[list[tuple[float, ...]]] = [[] for _ in units]  # per unit, per process
        for slot, (proc, wall) in enumerate(zip(procs, walls, strict=True)):
            if proc.returncode != 0:
                text = (Path(tmp) / f"stderr-{slot}").read_text(encoding="utf-8")
                last = (text.strip().splitlines() or ["no message"])[-1]
                raise SpecError(f"the probe run of {first.run_id} failed: {last}")
            out = Path(tmp) / f"runs-{slot}"
            summaries = [_summaries(out / str(i), plan) for i, plan in enumerate(plans)]
            work = sum(sum(s.timings.values()) - s.timings.get("imports", 0.0)
                       for passes in summaries for done in passes.values() for s in done if s)
            for i, (plan, passes) in enumerate(zip(plans, summaries, strict=True)):
                costs = _pass_costs(passes, plan)
                if costs is None:
                    raise SpecError(f"the probe run of {units[i][0].runs[0].run_id} recorded "
                                    "no step time")  # fmt: skip
                found[i].append((*costs, max(0.0, wall - work)))
    at_once = f"{workers} processes at once, each" if workers > 1 else "one process"
    return [_costs(unit, steps, jobs, at_once, measured_costs)
            for (unit, steps), measured_costs in zip(units, found, strict=True)]  # fmt: skip


def _costs(unit: Unit, steps: int, jobs: int, at_once: str,
           measured_costs: list[tuple[float, ...]]) -> Costs:  # fmt: skip
    """A unit's `Costs`: its processes' measures, averaged."""
    first = unit.runs[0]
    what = (f"a vectorized group of {len(unit.runs)} seeds ({first.run_id}, ...)"
            if len(unit.runs) > 1 else first.run_id)  # fmt: skip
    mean = [statistics.mean(values) for values in zip(*measured_costs, strict=True)]
    return Costs(
        fixed_s=mean[0],
        step_ms=mean[1],
        evaluation_s=mean[2],
        compile_s=mean[3],
        startup_s=mean[4],
        source=f"a probe of {what} for {max(2, steps)} steps ({first.spec.backend}, trained "
        f"in up to four passes in {at_once} set up as a worker at --jobs {jobs})",
        grouped=len(unit.runs) > 1,
    )


def _wait(procs: list[subprocess.Popen[bytes]], started: float) -> list[float]:
    """Wait for every process; each one's seconds from `started` to its end."""
    ends: dict[int, float] = {}
    while len(ends) < len(procs):
        for i, proc in enumerate(procs):
            if i not in ends and proc.poll() is not None:
                ends[i] = time.perf_counter() - started
        time.sleep(0.05)
    return [ends[i] for i in range(len(procs))]


Plan = dict[str, dict[str, Any]]  # pass -> {"evaluated_at_most": n, "specs": [spec, ...]}


def _summaries(out: Path, plan: Plan) -> dict[str, list[rundir.RunSummary | None]]:
    """Each pass's run summaries of one probed unit, written under `out`/<pass>/<i> (none for a
    pass that did not run)."""
    return {name: [rundir.read_summary(out / name / str(i)) for i in range(len(found["specs"]))]
            for name, found in plan.items()}  # fmt: skip


def _pass_costs(summaries: dict[str, list[rundir.RunSummary | None]],
                plan: Plan) -> tuple[float, ...] | None:  # fmt: skip
    """(fixed_s, step_ms, evaluation_s, compile_s) from one process's passes over a unit, for
    its whole validation and test splits; None when a pass recorded no step time.

    With e the time of one evaluation of the cut validation split (from the third pass) and c
    that of one more example (from the fourth), a run of p points evaluates its whole splits
    (V validation and T test examples, cut to v and t) in p (e + c (V - v)) plus the final
    test's e_t + c (T - t); the model charges (p + 1) evaluations at the same cost, so the
    test's difference goes into the fixed cost.
    """
    timed = {name: [measured(s, spec) if s else None
                    for s, spec in zip(found, plan[name]["specs"], strict=True)]
             for name, found in summaries.items()}  # fmt: skip
    cold, warm, often, wide = ([m for m in timed[name] if m] for name in PASSES)
    runs = len(plan["first"]["specs"])
    if not (len(cold) == len(warm) == len(often) == runs):
        return None
    again = statistics.mean(m.overhead for m in warm)
    # One evaluation: what the third pass's extra evaluations added to the second's.
    extra = statistics.mean(m.points for m in often) - statistics.mean(m.points for m in warm)
    evaluation = max(0.0, (statistics.mean(m.overhead for m in often) - again) / extra)
    fixed = again - statistics.mean(m.points + 1 for m in warm) * evaluation
    cut = next((s.evaluated for s in summaries["again"] if s), {})
    wider = next((s.evaluated for s in summaries["wide"] if s), {})
    val, test = _counts(cut, wider, "val"), _counts(cut, wider, "test")
    points = statistics.mean(m.points for m in warm)
    added = points * (val[1] - val[0]) + (test[1] - test[0])  # examples the fourth added
    if len(wide) == runs and added > 0:
        # Only evaluation differs between the two passes: their evaluation time alone, not
        # their whole overhead, whose set-up varies with the steps' pace by seconds.
        evaluated = (statistics.mean(m.evaluation_s * (m.points + 1) for m in wide)
                     - statistics.mean(m.evaluation_s * (m.points + 1) for m in warm))  # fmt: skip
        per_example = max(0.0, evaluated / added)
        evaluation += per_example * (val[2] - val[0])
        fixed += per_example * ((test[2] - test[0]) - (val[2] - val[0]))
    return (
        max(0.0, fixed),
        statistics.mean(m.step_ms for m in warm),  # the third's chunks are too short
        evaluation,
        max(0.0, statistics.mean(m.overhead for m in cold) - again),
    )


def _counts(cut: dict[str, list[int]], wider: dict[str, list[int]],
            split: str) -> tuple[int, int, int]:  # fmt: skip
    """(examples the second pass evaluated, the fourth's, the whole split's) of `split`; a
    split no pass cut counts 0 of 0."""
    if split not in cut:
        return 0, 0, 0
    kept, whole = cut[split]
    return kept, wider.get(split, [whole, whole])[0], whole


def _shortened(spec: RunSpec, steps: int, points: int) -> dict[str, Any]:
    """`spec` as the probe trains it: `steps` steps, evaluated at `points` points."""
    changes = [("training.steps", steps), ("training.eval_every", max(1, steps // points))]
    data = apply_overrides(spec.model_dump(mode="json"), changes, RunSpec, EXCLUSIVE_KEYS)
    validate(RunSpec, data, None)
    return data


class _Slot:
    """The worker slot a probe process takes (`init_worker` reads it from a queue)."""

    def __init__(self, slot: int, workers: int) -> None:
        self.slot, self.workers = slot, workers

    def get(self) -> tuple[int, int]:
        return self.slot, self.workers


def main(plan_path: str, out: str, slot: str, workers: str, jobs: str) -> None:
    """A probe process: set up as worker `slot` of `workers` at `jobs`, train each pass of
    each unit of `plan_path` into `out`/<unit>/<pass>/<i>."""
    from bnbench.ablate.worker import init_worker
    from bnbench.config.backend_policy import choose_backend

    plans = yaml.safe_load(Path(plan_path).read_text(encoding="utf-8"))
    threads = max(1, (os.cpu_count() or 1) // int(jobs))  # as `LocalExecutor.group`
    backend = choose_backend(RunSpec.model_validate(plans[0]["first"]["specs"][0]))
    init_worker(backend, threads, None, _Slot(int(slot), int(workers)))
    cached = backend == "jax" and os.environ.get("BNBENCH_JAX_CACHE") != "0"
    for u, plan in enumerate(plans):
        for name, found in plan.items():
            if name == "wide" and not _cut(Path(out) / str(u) / "again"):
                continue  # the splits are whole already: more examples would time the same
            specs = [RunSpec.model_validate(data) for data in found["specs"]]
            if name == "first" and not cached:  # nothing it compiles is reused: a warm-up
                specs = [RunSpec.model_validate(_shortened(spec, min(WARM_UP_STEPS,
                                                                     spec.training.steps or 2), 2))
                         for spec in specs]  # fmt: skip
            _train(specs, [Path(out) / str(u) / name / str(i) for i in range(len(specs))],
                   found["evaluated_at_most"])  # fmt: skip


def _cut(folder: Path) -> bool:
    """Whether the pass trained in `folder` evaluated fewer examples than its splits hold."""
    summary = rundir.read_summary(folder / "0")
    return summary is not None and bool(summary.evaluated)


def _train(specs: list[RunSpec], dirs: list[Path], evaluated_at_most: int) -> Any:
    if len(specs) == 1:
        from bnbench.train.loop import train

        return train(specs[0], dirs[0], save_model=False, evaluated_at_most=evaluated_at_most)
    from bnbench.train.vectorized import train_group

    return train_group(specs, dirs, save_model=False, evaluated_at_most=evaluated_at_most)


if __name__ == "__main__":
    main(*sys.argv[1:6])
