"""The local executor: each run trains in a spawned worker process of this machine.

Spawned, so that a crash or `kill -9` of one run cannot corrupt another; a pool serves one
Keras backend at a time, and each of its workers runs on its own share of the cores with its
math libraries capped to match (`worker.init_worker`). Workers ignore Ctrl-C and stream step
events back through a pipe.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from bnbench.ablate.executor import (
    Event,
    Executor,
    ExecutorOptions,
    RunLost,
    RunTask,
    WorkerReply,
    relay,
)
from bnbench.ablate.interrupts import sigint_blocked, terminate
from bnbench.ablate.worker import init_worker, run_one


def connect(options: ExecutorOptions, results_dir: Path) -> LocalExecutor:
    """The local executor for `options` (`jobs` workers; by default one per available core)."""
    return LocalExecutor(options.jobs or available_cores())


def available_cores() -> int:
    """The cores this process may run on (its affinity, which a container or `taskset` sets;
    `os.cpu_count` counts the whole machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS has no affinity
        return max(1, os.cpu_count() or 1)


class LocalExecutor(Executor):
    """Runs in worker processes here, `slots` at a time, one backend's pool after another."""

    def __init__(self, jobs: int) -> None:
        self.slots = jobs
        self._context = multiprocessing.get_context("spawn")
        # A plain pipe, not a Manager: a Manager is a process of its own that Ctrl-C would kill.
        self._events = self._context.SimpleQueue()
        self._pool: ProcessPoolExecutor | None = None

    @contextmanager
    def group(self, backend: str, runs: int) -> Iterator[None]:
        workers = min(self.slots, runs)
        slots = self._context.SimpleQueue()
        for slot in range(workers):  # each worker takes a slot: its share of the cores
            slots.put((slot, workers))
        threads = max(1, (os.cpu_count() or 1) // self.slots)
        setup = (backend, threads, self._events, slots)
        with ProcessPoolExecutor(max_workers=workers, mp_context=self._context,
                                 initializer=init_worker, initargs=setup) as pool:  # fmt: skip
            self._pool = pool
            try:
                yield
            finally:
                self._pool = None

    def submit(self, task: RunTask) -> Future[WorkerReply]:
        if self._pool is None:
            raise RuntimeError("LocalExecutor.submit outside group()")
        with sigint_blocked():  # submit() may spawn a worker, which must not see a Ctrl-C
            future = self._pool.submit(run_one, task.run_id, task.spec, task.entry,
                                       task.run_dir, task.save_model)  # fmt: skip
        return relay(future, _lost)

    def cancel(self) -> None:
        if self._pool is not None:
            terminate(self._pool)

    def close(self) -> None:
        return None  # each group's pool is shut down as the group ends

    def events(self) -> list[Event]:
        # Every message is one small pipe write (atomic), so a reader never sees half of one.
        found = []
        while not self._events.empty():
            found.append(self._events.get())
        return found


def _lost(error: BaseException) -> RunLost:
    if isinstance(error, BrokenProcessPool):
        # The pool has terminated every worker: every run in flight is lost, and it takes no more.
        return RunLost("a worker process died (out of memory?)", fatal=True)
    return RunLost(f"{type(error).__name__}: {error}", fatal=True)
