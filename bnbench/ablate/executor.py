"""Executors: where and when the runs of an ablation train (STYLE habit 17).

A unit of work is always `bnbench.ablate.worker.run_task`: one run (`run_one`) or a vectorized
group of seeds (`groups.run_group`), writing the same run directories; an executor only decides
where (worker processes here, a Ray cluster, SLURM jobs) and when (`slots` units at once). Its
interface: submit a unit and get a `Future` of its outcome, cancel the units in flight, close.
An engine's own experiment machinery (trial folders, retries, result stores) is not used: a run
whose worker is lost is left incomplete, and bnbench's resume is the retry.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bnbench.errors import SpecError

ExecutorName = Literal["local", "ray", "slurm"]
SlurmCluster = Literal["slurm", "local"]
# What a run's worker returns: (run id, status, one-line error or None); see `worker.run_one`.
# A group's task (`RunTask.group`) gives a list of them, one per run.
WorkerReply = tuple[str, str, str | None]
# (event, payload) progress messages from workers, e.g. ("step", {"run_id": ..., "step": 3}).
Event = tuple[str, dict[str, Any]]
# submitit's folder of job scripts, pickles and logs, hidden inside the results tree.
SLURM_DIR = ".slurm"


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to train one run, as plain data (it is pickled)."""

    run_id: str
    spec: dict[str, Any]
    entry: dict[str, Any]
    run_dir: str
    save_model: bool
    backend: str
    # Why the run trains alone (recorded in its summary), and for a vectorized group of seeds
    # (`bnbench.ablate.groups`) the task of each of its runs: then this task stands for them all.
    reason: str = "a single run"
    group: tuple[RunTask, ...] = ()


class RunLost(Exception):
    """A run's worker went away before the run finished: killed, out of memory, its node lost,
    preempted, or cancelled. The run is left incomplete, never failed.

    Args:
        reason: what happened, for the user.
        fatal: the executor cannot go on (a local worker pool is broken): stop the grid.
    """

    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.fatal = fatal


class Executor(ABC):
    """Trains runs somewhere. `slots` runs at once; the caller never submits more."""

    slots: int = 1

    def group(self, backend: str, runs: int) -> AbstractContextManager[None]:
        """Prepare workers for the next `runs` runs, all on `backend` (one group at a time)."""
        return nullcontext()

    @abstractmethod
    def submit(self, task: RunTask) -> Future[WorkerReply]:
        """Start training `task`; the future gives its `WorkerReply` (a list of them for a
        group's task) or raises `RunLost`."""

    def submit_many(self, tasks: list[RunTask]) -> list[Future[WorkerReply]]:
        """Start several runs at once (a SLURM job array); by default one by one."""
        return [self.submit(task) for task in tasks]

    @abstractmethod
    def cancel(self) -> None:
        """Stop every run in flight now; their futures then raise `RunLost`."""

    def events(self) -> list[Event]:
        """Progress events ('step') received since the last call; remote executors send none,
        so the display shows their runs' start and end only."""
        return []

    @abstractmethod
    def close(self) -> None:
        """Release the workers (and a cluster connection); runs in flight are not waited for."""


@dataclass(frozen=True)
class ExecutorOptions:
    """The `--executor` of `bnbench ablate` and its options.

    Attributes:
        name: local (worker processes here), ray or slurm.
        jobs: runs at once; None lets the executor decide (1 here, what the Ray cluster fits,
            every run for SLURM, which queues them).
        address: Ray: the cluster to connect to ('auto', 'host:port'); None starts one here.
        cpus_per_run: Ray and SLURM: CPU cores of each run (its thread cap).
        gpus_per_run: Ray and SLURM: GPUs of each run.
        partition: SLURM partition.
        time_minutes: SLURM time limit of each run's job (default 60).
        slurm_options: further sbatch options (`key=value`, e.g. account, qos, mem).
        slurm_cluster: 'local' runs the jobs as processes here through submitit's local
            executor (to try the SLURM path without a cluster).
    """

    name: ExecutorName = "local"
    jobs: int | None = None
    address: str | None = None
    cpus_per_run: int | None = None
    gpus_per_run: int = 0
    partition: str | None = None
    time_minutes: int | None = None
    slurm_options: dict[str, str] = field(default_factory=dict)
    slurm_cluster: SlurmCluster = "slurm"

    def check(self) -> None:
        """Refuse options that do not apply to this executor or make no sense.

        Raises:
            SpecError: naming the option and the value received.
        """
        if self.jobs is not None and self.jobs < 1:
            raise SpecError(f"--jobs must be at least 1, got {self.jobs}")
        if self.cpus_per_run is not None and self.cpus_per_run < 1:
            raise SpecError(f"--cpus-per-run must be at least 1, got {self.cpus_per_run}")
        if self.gpus_per_run < 0:
            raise SpecError(f"--gpus-per-run must be 0 or more, got {self.gpus_per_run}")
        if self.time_minutes is not None and self.time_minutes < 1:
            raise SpecError(f"--time must be at least 1 minute, got {self.time_minutes}")
        applies = [
            ("--address", self.address is not None, ("ray",)),
            ("--cpus-per-run", self.cpus_per_run is not None, ("ray", "slurm")),
            ("--gpus-per-run", self.gpus_per_run > 0, ("ray", "slurm")),
            ("--partition", self.partition is not None, ("slurm",)),
            ("--time", self.time_minutes is not None, ("slurm",)),
            ("--slurm-option", bool(self.slurm_options), ("slurm",)),
            ("--slurm-cluster", self.slurm_cluster != "slurm", ("slurm",)),
        ]
        for option, given, executors in applies:
            if given and self.name not in executors:
                raise SpecError(f"{option} applies to --executor {' and '.join(executors)}, "
                                f"not to --executor {self.name}")  # fmt: skip

    def command_words(self) -> list[str]:
        """These options as `bnbench ablate` words (without --jobs), to repeat the command."""
        words = [] if self.name == "local" else ["--executor", self.name]
        named = {"--address": self.address, "--cpus-per-run": self.cpus_per_run,
                 "--gpus-per-run": self.gpus_per_run or None, "--partition": self.partition,
                 "--time": self.time_minutes}  # fmt: skip
        words += [word for option, value in named.items() if value is not None
                  for word in (option, str(value))]  # fmt: skip
        for key, value in self.slurm_options.items():
            words += ["--slurm-option", f"{key}={value}"]
        if self.slurm_cluster != "slurm":
            words += ["--slurm-cluster", self.slurm_cluster]
        return words


def relay(source: Future[Any], lost: Callable[[BaseException], RunLost]) -> Future[WorkerReply]:
    """A future with `source`'s result, whose failure (an engine's own error) is `lost(error)`."""
    target: Future[WorkerReply] = Future()
    target.set_running_or_notify_cancel()

    def copy(done: Future[Any]) -> None:
        try:
            target.set_result(done.result())
        except BaseException as error:  # CancelledError, an engine's worker-died error
            target.set_exception(error if isinstance(error, RunLost) else lost(error))

    source.add_done_callback(copy)
    return target


_MODULES = {"local": "local_executor", "ray": "ray_executor", "slurm": "slurm_executor"}


def open_executor(options: ExecutorOptions, results_dir: Path) -> Executor:
    """Connect the executor `options` names; nothing is written to `results_dir` yet.

    Raises:
        SpecError: its engine is not installed, the cluster cannot be reached or cannot run
            a run of the size asked for.
    """
    options.check()
    module = importlib.import_module(f"bnbench.ablate.{_MODULES[options.name]}")
    executor: Executor = module.connect(options, results_dir)
    return executor


def missing_engine(package: str, extra: str) -> SpecError:
    """The error for an executor whose engine is not installed."""
    return SpecError(
        f"--executor {extra} needs {package}, which is not installed: "
        f'pip install "bnbench[{extra}]"'
    )
