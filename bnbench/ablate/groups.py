"""Units of work: the seeds of one arm and cell, trained as one vectorized group.

Runs of one arm and grid cell differ only in their seed, so on JAX they train as one program
(`bnbench.train.vectorized`); such a group is one unit of work for the executor: it takes one
slot, its runs are leased together, and each still writes its own run directory. A group holds
at most `group_size` seeds (memory grows with it: every seed's weights, optimizer state and
activations are held at once). Runs that cannot group (TensorFlow, diagnostics, ...: the reason
is `fallback_reason`'s) stay units of one, trained alone and recorded with that reason.

A group is formed from the runs still to do, so after a kill the unfinished seeds of a group
train again as a smaller group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bnbench.ablate.executor import RunLost, RunTask, WorkerReply
from bnbench.config.ablation import PlannedRun
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.train.vectorized import fallback_reason
from bnbench.train.vectorized_memory import GroupMemory, format_bytes, group_memory

# Seeds per group unless `--group-size` says otherwise: enough for the verdicts' seed counts
# (10 and more), small enough that a group of the shipped MLPs stays well under 1 GiB.
DEFAULT_GROUP_SIZE = 16


@dataclass(frozen=True)
class Unit:
    """Runs that train as one unit of work.

    Attributes:
        runs: The runs, in plan order.
        reason: Why they train alone (then `runs` holds one run), or None for a vectorized
            group of two or more seeds.
    """

    runs: tuple[PlannedRun, ...]
    reason: str | None

    @property
    def vectorized(self) -> bool:
        return self.reason is None


def check_group_size(size: int) -> None:
    """Raises: SpecError: `size` is below 1."""
    if size < 1:
        raise SpecError(f"--group-size must be at least 1, got {size}")


def units(runs: list[PlannedRun], group_size: int = DEFAULT_GROUP_SIZE,
          jobs: int = 1) -> list[Unit]:  # fmt: skip
    """Split `runs` into units: the runs of one arm and cell, at most `group_size` seeds each.

    A cell's seeds are split into groups of near-equal size, into enough groups that `jobs`
    workers share the groups evenly (3 cells on 2 workers: 2 groups per cell); a worker with
    nothing to do while another trains two groups would cost more than the grouping saves.

    Args:
        runs: The runs to do, in plan order.
        group_size: The most seeds in one group; 1 trains every run alone.
        jobs: Workers that will train the units at once.

    Returns:
        The units, in the order of their first run.

    Raises:
        SpecError: `group_size` is below 1.
    """
    check_group_size(group_size)
    cells: dict[tuple[str, str, str], list[PlannedRun]] = {}
    for run in runs:
        cells.setdefault((run.arm, run.cell, run.spec.backend), []).append(run)
    found: list[Unit] = []
    spread = max(1, jobs) // math.gcd(len(cells), max(1, jobs)) if cells else 1
    for cell in cells.values():
        count = min(len(cell), max(math.ceil(len(cell) / group_size), spread))
        sizes = [len(cell) // count + (i < len(cell) % count) for i in range(count)]
        starts = [sum(sizes[:i]) for i in range(count)]
        for start, size in zip(starts, sizes, strict=True):
            part = cell[start : start + size]
            reason = fallback_reason([run.spec for run in part])
            if group_size == 1:
                reason = "a group of one seed (--group-size 1)"
            if reason is None:
                found.append(Unit(tuple(part), None))
            else:
                found += [Unit((run,), reason) for run in part]
    return sorted(found, key=lambda unit: unit.runs[0].index)


def unit_of(runs: list[PlannedRun], group_size: int, jobs: int = 1,
            memories: dict[str, GroupMemory | None] | None = None) -> dict[str, str]:  # fmt: skip
    """Each run's vectorized group as `plan` shows it ("g3", or with `memories` "g3 ~1.2 MiB"),
    or "-" for a run trained alone.

    Raises:
        SpecError: `group_size` is below 1.
    """
    shown: dict[str, str] = {}
    for label, unit in _groups(runs, group_size, jobs).items():
        memory = (memories or {}).get(label)
        text = label if memory is None else f"{label} ~{format_bytes(memory.bytes)}"
        shown |= {run.run_id: text for run in unit.runs}
    return {run.run_id: shown.get(run.run_id, "-") for run in runs}


def group_memories(runs: list[PlannedRun], group_size: int,
                   jobs: int = 1) -> dict[str, GroupMemory | None]:  # fmt: skip
    """Each vectorized group's estimated memory (`vectorized_memory.group_memory`) by its label
    ("g3"); None where its data is not on this machine (nothing is downloaded) or unreadable.
    Reads each dataset once.

    Raises:
        SpecError: `group_size` is below 1.
    """
    from bnbench.data.datasets import REGISTRY, Dataset, load_dataset
    from bnbench.train.schedule import Schedule

    loaded: dict[str, Dataset | None] = {}
    found: dict[str, GroupMemory | None] = {}
    for label, unit in _groups(runs, group_size, jobs).items():
        spec = unit.runs[0].spec
        key = spec.dataset.model_dump_json()
        if key not in loaded:
            here = spec.dataset.path is not None or REGISTRY[spec.dataset.name].cached()
            try:
                loaded[key] = load_dataset(spec.dataset, download=False) if here else None
            except SpecError:
                loaded[key] = None
        data = loaded[key]
        if data is None:
            found[label] = None
            continue
        steps = Schedule.from_spec(spec.training, len(data.x_train)).total_steps
        found[label] = group_memory(spec, data.input_shape, data.output_units, steps,
                                    len(unit.runs))  # fmt: skip
    return found


def _groups(runs: list[PlannedRun], group_size: int, jobs: int) -> dict[str, Unit]:
    """The vectorized groups by their label in `plan` ("g1", "g2", ...), in plan order."""
    found = [unit for unit in units(runs, group_size, jobs) if unit.vectorized]
    return {f"g{number}": unit for number, unit in enumerate(found, start=1)}


def describe_units(runs: list[PlannedRun], group_size: int, jobs: int = 1,
                   memories: dict[str, GroupMemory | None] | None = None) -> list[str]:  # fmt: skip
    """What `plan` says about the units of work: the groups (with `memories`, the largest
    group's estimated memory), and why the other runs train alone.

    Raises:
        SpecError: `group_size` is below 1.
    """
    found = units(runs, group_size, jobs)
    groups = [unit for unit in found if unit.vectorized]
    lines = []
    if groups:
        seeds = max(len(unit.runs) for unit in groups)
        lines.append(f"{len(groups)} vectorized groups of seeds (up to {seeds} seeds each, "
                     f"--group-size {group_size}): each trains as one JAX program, one unit "
                     "of work")  # fmt: skip
    if memories:
        lines += _memory_lines(memories, group_size)
    reasons: dict[str, int] = {}
    for unit in found:
        if unit.reason is not None:
            reasons[unit.reason] = reasons.get(unit.reason, 0) + 1
    for reason, count in reasons.items():
        lines.append(f"{count} run{'s' if count != 1 else ''} train alone: {reason}")
    return lines


def _memory_lines(memories: dict[str, GroupMemory | None], group_size: int) -> list[str]:
    known = {label: memory for label, memory in memories.items() if memory is not None}
    lines = []
    if known:
        label, largest = max(known.items(), key=lambda item: item[1].bytes)
        lines.append(f"memory of a group (estimated, shown beside each): seeds × (float32 weights, "
                     "gradients and optimizer slots + BN statistics + one batch's activations "
                     f"+ the batch order), the data once besides; the largest is {label}, "
                     f"~{format_bytes(largest.bytes)} for {largest.seeds} seeds; --group-size "
                     f"{group_size} caps the seeds")  # fmt: skip
    if len(known) < len(memories):
        lines.append(f"memory not estimated for {len(memories) - len(known)} groups: their data "
                     "is not on this machine")  # fmt: skip
    return lines


def group_task(unit: Unit, tasks: list[RunTask]) -> RunTask:
    """The one task of a unit whose runs' tasks are `tasks`: the task itself for a run alone,
    else a group task standing for them all (`RunTask.group`)."""
    if len(tasks) == 1:
        return replace(tasks[0], reason=unit.reason or "a group of one seed")
    return replace(tasks[0], group=tuple(tasks))


def run_group(task: RunTask, events: Any) -> list[WorkerReply]:
    """Train a group task's runs as one vectorized group, in a worker; never raises but
    `RunLost` (a full disk, as `worker.run_one`).

    A failure of one seed's own results is recorded on that seed alone, the others go on; a
    failure of what the seeds share is recorded on every run not finished, as a
    `GroupProgramError` naming the seeds (`bnbench.train.vectorized`). `events` (a queue or
    None) receives each run's 'phase' and 'step' events.
    """
    from bnbench.ablate.parent_watch import LeaseGuard
    from bnbench.config.schema import RunSpec
    from bnbench.results.files import out_of_space
    from bnbench.train.vectorized import GroupProgramError, train_group

    paths = [Path(member.run_dir) for member in task.group]
    # As `worker.run_one`: a run whose lease was taken over (its launcher died) is not ours.
    leases = {member.run_id: LeaseGuard(path) for member, path in zip(task.group, paths,
                                                                        strict=True)}  # fmt: skip
    for member, path in zip(task.group, paths, strict=True):
        leases[member.run_id].check(now=True)
        rundir.write_entry(path, member.entry)

    def hook(run_id: str) -> Any:
        def progress(step: int, total: int, loss: float | None) -> None:
            leases[run_id].check(now=step >= total)  # and before the results are written
            if events is not None:
                events.put(("step", {"run_id": run_id, "step": step, "total": total,
                                     "loss": loss}))  # fmt: skip

        return progress

    def phase(name: str) -> None:
        for member in task.group:
            if events is not None:
                events.put(("phase", {"run_id": member.run_id, "phase": name}))

    try:
        specs = [RunSpec.model_validate(member.spec) for member in task.group]
        results = train_group(specs, paths, save_model=task.save_model, phase=phase,
                              progress=[hook(member.run_id) for member in task.group])  # fmt: skip
        return [(m.run_id, r.status, r.summary.error) for m, r in zip(task.group, results,
                                                                       strict=True)]  # fmt: skip
    except Exception as err:  # recorded by train_group where it could; the grid carries on
        if isinstance(err, OSError) and out_of_space(err):  # left incomplete, as run_one does
            raise RunLost(f"no space left to write {err.filename or paths[0]}",
                          fatal=True) from None  # fmt: skip
        seeds = [int(member.spec["seed"]) for member in task.group]
        shared = err if isinstance(err, GroupProgramError) else GroupProgramError(seeds, err)
        replies: list[WorkerReply] = []
        for member, path in zip(task.group, paths, strict=True):
            state = rundir.run_state(path)
            if state != "failed" and not rundir.is_done(state):  # it failed before training
                rundir.record_failure(path, shared, brief=True)
                state = "failed"
            summary = rundir.read_summary(path) if state == "failed" else None
            error = (summary.error if summary else None) or f"GroupProgramError: {shared}"
            replies.append((member.run_id, state, error if state == "failed" else None))
        return replies
