"""Launching one backend's runs through an executor: lease, submit, record, release.

Runs are leased lazily, as slots free up, so that several invocations on one results tree
interleave over the grid; a run leased by a live process elsewhere is passed over, and looked
at again once this invocation's own runs are done (its holder may have died meanwhile).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnbench.ablate.executor import Executor, RunLost, RunTask, WorkerReply
from bnbench.ablate.groups import Unit, group_task
from bnbench.ablate.interrupts import CtrlC
from bnbench.ablate.leases import Leases
from bnbench.config.ablation import PlannedRun
from bnbench.errors import SpecError
from bnbench.results import files, rundir
from bnbench.results.layout import run_path

# (event, payload) -> None, for the live display: 'start', 'step' and 'done' of a run (payload
# has its "run_id"), 'elsewhere' for a run another process is training ("holder": host:pid),
# and 'stopping' after a Ctrl-C ("running": runs still running, "now": a second Ctrl-C is
# terminating them).
Listener = Callable[[str, dict[str, Any]], None]


@dataclass
class Outcome:
    """What happened to the selected runs of one `ablate` invocation."""

    total: int
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Ctrl-C was pressed; runs stopped midway (by a second Ctrl-C) are left incomplete.
    interrupted: bool = False
    stopped_midway: list[str] = field(default_factory=list)
    # Runs whose worker was lost (killed, node lost, preempted): left incomplete. Run id -> why.
    lost: dict[str, str] = field(default_factory=dict)
    # Runs of the grid that other processes are training as this one ends: run id -> host:pid.
    elsewhere: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [run_id for run_id, status in self.statuses.items() if status == "failed"]

    @property
    def unfinished(self) -> int:
        """Selected runs that neither were finished before nor finished now."""
        return self.total - len(self.statuses)


@dataclass
class Launcher:
    """Runs groups of runs through `executor`, `executor.slots` at a time, until done or Ctrl-C."""

    results_dir: Path
    executor: Executor
    leases: Leases
    ctrl_c: CtrlC
    outcome: Outcome
    listener: Listener | None
    save_model: bool = False
    retry_failed: bool = False
    _passed: dict[str, PlannedRun] = field(default_factory=dict)  # leased elsewhere

    def run(self, group: list[Unit]) -> list[PlannedRun]:
        """Run `group` (one backend's units of work: runs alone, vectorized groups of seeds);
        returns the runs a second Ctrl-C stopped midway."""
        waiting = deque(group)
        running: dict[Future[WorkerReply], list[PlannedRun]] = {}
        announced = 0  # runs said to be running since the Ctrl-C
        while running or waiting:
            if self.ctrl_c.presses and not running:
                break
            self._launch(waiting, running)
            # Runs, not units: a group of seeds is one unit of several runs.
            in_flight = sum(len(runs) for runs in running.values())
            if self.ctrl_c.presses >= 2:
                self._emit("stopping", {"running": in_flight, "now": True})
                self.executor.cancel()
                return [run for runs in running.values() for run in runs]
            done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            for kind, payload in self.executor.events():
                self._emit(kind, payload)
            for future in done:
                self._record(future, running)
            in_flight = sum(len(runs) for runs in running.values())
            if self.ctrl_c.presses == 1 and 0 < in_flight != announced:
                announced = in_flight
                self._emit("stopping", {"running": in_flight, "now": False})
            if not running and not waiting and not self.ctrl_c.presses:
                waiting.extend(Unit((run,), "a group of one seed")
                               for run in self._releasable_elsewhere(group))  # fmt: skip
        return []

    def _launch(self, waiting: deque[Unit],
                running: dict[Future[WorkerReply], list[PlannedRun]]) -> None:  # fmt: skip
        batch: list[tuple[Unit, list[PlannedRun]]] = []
        while waiting and len(running) + len(batch) < self.executor.slots:
            if self.ctrl_c.presses:
                return
            unit = waiting.popleft()
            taken = [run for run in unit.runs if self._take(run)]
            if taken:
                batch.append((unit, taken))
        tasks = [group_task(unit, [self._task(run) for run in taken]) for unit, taken in batch]
        for (_, taken), future in zip(batch, self.executor.submit_many(tasks), strict=True):
            running[future] = taken
            for run in taken:
                self._emit("start", {"run_id": run.run_id})

    def _take(self, run: PlannedRun) -> bool:
        """Lease `run` and clear what an earlier attempt left; False when it is not ours to run."""
        holder = self.leases.acquire(run.run_id)
        if holder is not None:
            self._passed[run.run_id] = run
            self._emit("elsewhere", {"run_id": run.run_id, "holder": holder.holder})
            return False
        self._passed.pop(run.run_id, None)
        run_dir = run_path(self.results_dir, run.run_id)
        state = rundir.run_state(run_dir)  # again: another process may have finished it
        if rundir.is_done(state) or (state == "failed" and not self.retry_failed):
            self.leases.release(run.run_id)
            self.outcome.skipped.append(run.run_id)
            self.outcome.statuses[run.run_id] = state
            self._emit("done", {"run_id": run.run_id, "status": state})
            return False
        if run_dir.exists() or run_dir.is_symlink():
            # incomplete (or failed, being retried): start clean
            files.remove_tree(run_dir, self.results_dir)
        return True

    def _releasable_elsewhere(self, group: list[Unit]) -> list[PlannedRun]:
        """Runs of `group` passed over because another process held them, whose lease has
        since gone (released, or its holder died)."""
        passed = [run for unit in group for run in unit.runs if run.run_id in self._passed]
        live = self.leases.others({run.run_id for run in passed})
        return [run for run in passed if run.run_id not in live]

    def _task(self, run: PlannedRun) -> RunTask:
        return RunTask(run.run_id, run.spec.model_dump(mode="json"), run.entry(),
                       str(run_path(self.results_dir, run.run_id)), self.save_model,
                       run.spec.backend)  # fmt: skip

    def _record(self, future: Future[WorkerReply],
                running: dict[Future[WorkerReply], list[PlannedRun]]) -> None:  # fmt: skip
        runs = running.pop(future)
        try:
            result: Any = future.result()  # a group's task gives one reply per run
        except RunLost as lost:
            for run in runs:
                self.leases.release(run.run_id)  # left incomplete, for anyone to resume
            if lost.fatal:
                self.executor.cancel()
                names = ", ".join(r.run_id for r in [*runs, *(r for rs in running.values()
                                                                for r in rs)])  # fmt: skip
                raise SpecError(f"{lost} while running {names}; left incomplete: re-run the "
                                "same command to resume") from None  # fmt: skip
            for run in runs:
                self.outcome.lost[run.run_id] = str(lost)
                self._emit("done", {"run_id": run.run_id, "status": "lost"})
            return
        for run_id, status, error in result if isinstance(result, list) else [result]:
            self.leases.release(run_id)
            self.outcome.statuses[run_id] = status
            if error:
                self.outcome.errors[run_id] = error
            self._emit("done", {"run_id": run_id, "status": status})

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        if self.listener is not None:
            self.listener(event, payload)
