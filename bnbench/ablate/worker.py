"""The worker side of an ablation: what runs in each worker, wherever the executor put it.

A local worker ignores Ctrl-C (the parent decides), runs on its own share of the CPU cores with
its math libraries capped to match, imports Keras once on its backend, then trains the runs it
is given; progress events ('phase' before a run's first step, then 'step') go back to the
parent through a queue. A Ray worker or a SLURM job is set up the same way, minus the pinning
(`run_remote`). Every run is `run_one`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bnbench.ablate.executor import RunLost, RunTask, WorkerReply
from bnbench.ablate.parent_watch import LeaseGuard, exit_with_parent
from bnbench.results import rundir
from bnbench.results.files import out_of_space, pid_alive
from bnbench.train.backend import worker_cores

if TYPE_CHECKING:
    from bnbench.train.prepare import Phase


def init_worker(backend: str, threads: int, events: Any, slots: Any) -> None:
    """Set a spawned worker up: Ctrl-C ignored, its own cores and thread cap, the backend."""
    # Ignore Ctrl-C: the parent decides. SIGINT was blocked while this process was spawned, so
    # one sent before now is pending; ignoring it discards it, and only then is it unblocked.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    from bnbench.train.backend import activate, limit_threads, pin_to_cores

    exit_with_parent()  # killing only the parent (kill -9 PID) must not leave us training on
    slot, jobs = slots.get()
    pin_to_cores(worker_cores(slot, jobs))
    limit_threads(threads)
    # TensorFlow takes all of a GPU's memory at start-up unless told to grow into it.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    activate(backend)
    global _EVENTS
    _EVENTS = events


def run_remote(task: RunTask, threads: int, pin: bool = False) -> WorkerReply | list[WorkerReply]:
    """Train `task` in a process of a remote executor (a Ray worker, a SLURM job).

    The process is set up as `init_worker` sets up a local one: math libraries capped at
    `threads`, TensorFlow's GPU memory growth on, the backend activated, and with `pin` its own
    cores (`pin_to_free_cores`). A Ray worker serves many runs, so this happens once; its
    backend is the one it was started with (Ray keeps a worker pool per environment).
    """
    from bnbench.train.backend import activate, limit_threads

    if "keras" not in sys.modules:
        exit_with_parent()  # a submitit job of a killed driver, a Ray worker of a dead raylet
        if pin:
            pin_to_free_cores(threads)
        limit_threads(threads)
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    activate(task.backend)
    return run_task(task)


_HELD: list[IO[str]] = []  # the lock file of this worker's cores, held for the process's life


def pin_to_free_cores(threads: int) -> None:
    """Pin this long-lived worker to a share of `threads` of this node's cores that no other
    worker holds, as local workers are pinned (JAX's runtime starts threads on every core it
    sees, and two unpinned workers on two cores compete for both: ~1.5x the step time).

    Ray reserves CPUs by count, not by core, so the workers of a node share them out among
    themselves: slot k is held through an `flock` on a file in the node's temporary folder
    (node-local, so `flock` is sound), released when the worker ends. With no slot free (more
    workers than slots), the worker is left unpinned.
    """
    from bnbench.train.backend import pin_to_cores, worker_cores

    if not hasattr(os, "sched_getaffinity"):
        return
    slots = max(1, len(os.sched_getaffinity(0)) // max(1, threads))
    for slot in range(slots):
        name = f"bnbench-{os.getuid()}-cores-{slot}-of-{slots}.lock"
        handle = open(Path(tempfile.gettempdir()) / name, "a")  # noqa: SIM115  (held open)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _HELD.append(handle)
        pin_to_cores(worker_cores(slot, slots))
        return


_EVENTS: Any = None


def run_task(task: RunTask) -> WorkerReply | list[WorkerReply]:
    """Train a task: one run (`run_one`), or a vectorized group of seeds (`run_group`)."""
    if task.group:
        from bnbench.ablate.groups import run_group

        return run_group(task, _EVENTS)
    return run_one(task.run_id, task.spec, task.entry, task.run_dir, task.save_model,
                   task.reason)  # fmt: skip


def run_one(run_id: str, spec_data: dict[str, Any], entry: dict[str, Any], run_dir: str,
            save_model: bool, reason: str = "a single run") -> WorkerReply:  # fmt: skip
    """Train one run in a worker; never raises (a failure is recorded in its directory)."""
    from bnbench.config.schema import RunSpec
    from bnbench.train.loop import train

    path = Path(run_dir)
    lease = LeaseGuard(path)
    lease.check(now=True)  # a run leased by a launcher that died meanwhile is not ours
    rundir.write_entry(path, entry)

    def progress(step: int, total: int, loss: float | None) -> None:
        lease.check(now=step >= total)  # and before the results are written
        if _EVENTS is not None:
            _EVENTS.put(("step", {"run_id": run_id, "step": step, "total": total, "loss": loss}))

    def phase(name: Phase) -> None:  # what the run does before its first step
        if _EVENTS is not None:
            _EVENTS.put(("phase", {"run_id": run_id, "phase": name}))

    try:
        result = train(RunSpec.model_validate(spec_data), path, save_model=save_model,
                       progress=progress, phase=phase, per_seed_reason=reason)  # fmt: skip
        return run_id, result.status, None
    except Exception as err:  # recorded by train(); the grid carries on
        if isinstance(err, OSError) and out_of_space(err):  # not the run's fault: left
            # incomplete, as for a lost worker; the grid stops, as no run could be written
            raise RunLost(f"no space left to write {err.filename or path}", fatal=True) from None
        if rundir.run_state(path) != "failed":  # it failed before training started
            rundir.record_failure(path, err, brief=True)
        return run_id, "failed", f"{type(err).__name__}: {err}"


# --- Ray: training into node-local scratch, shipping the run back -----------------------------

# Scratch folders of this node's workers: `bnbench-run-<pid>-<random>` in its temporary folder.
_SCRATCH = "bnbench-run-"
# At most this often a run's 'step' events go to the driver (its display redraws ~5 times a
# second; every step would be a message through the cluster).
_STEP_EVERY_S = 0.2


def run_shipped(task: RunTask, threads: int, pin: bool, relay: Any) -> Iterator[Any]:
    """Train `task` (set up as `run_remote`) in node-local scratch, then yield its reply and
    the files of its run directory, or of each of a group's, as `shipping.pack_runs` pieces,
    for the driver to write.

    The worker never touches the results tree, so it needs no filesystem shared with the
    driver. Progress events go to `relay` (an actor of the driver's with a `put` method).
    """
    from bnbench.ablate.shipping import pack_runs

    _remove_dead_scratch()
    global _EVENTS
    _EVENTS = _Forward(relay)
    scratch = tempfile.mkdtemp(prefix=f"{_SCRATCH}{os.getpid()}-")
    try:
        local = dataclasses.replace(
            task, run_dir=str(Path(scratch) / task.run_id),
            group=tuple(dataclasses.replace(member, run_dir=str(Path(scratch) / member.run_id))
                        for member in task.group),
        )  # fmt: skip
        yield run_remote(local, threads, pin)
        yield from pack_runs([Path(member.run_dir) for member in local.group or (local,)])
    finally:
        _EVENTS = None
        shutil.rmtree(scratch, ignore_errors=True)


def _remove_dead_scratch() -> None:
    """Remove the scratch folders of this node's workers that died (`kill -9`, out of memory)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_SCRATCH}*"):
        pid = folder.name.removeprefix(_SCRATCH).partition("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


class _Forward:
    """`run_one`'s event queue for a Ray worker: events to the driver's relay actor, each run's
    steps at most every `_STEP_EVERY_S` seconds (and always its last): the seeds of a group
    report one after another, so each run has its own clock."""

    def __init__(self, relay: Any) -> None:
        self._relay = relay
        self._last: dict[str, float] = {}

    def put(self, event: tuple[str, dict[str, Any]]) -> None:
        kind, payload = event
        if kind == "step" and payload["step"] < payload["total"]:
            run_id = payload["run_id"]
            if time.monotonic() - self._last.get(run_id, 0.0) < _STEP_EVERY_S:
                return
            self._last[run_id] = time.monotonic()
        self._relay.put.remote(event)  # fire and forget: a lost event only delays the display
