"""The SLURM executor: each unit of work (a run, or a vectorized group of seeds) is a SLURM job,
submitted through submitit.

Units launched together go in as one job array. A job asks for `--cpus-per-run` cores and
`--gpus-per-run` GPUs on `--partition` for `--time` minutes, plus any `--slurm-option
key=value`; submitit keeps its job scripts, pickles and logs in `<results>/.slurm/`, hidden in
the results tree. A job is not requeued when SLURM preempts it or its time runs out (submitit
would start it again from scratch behind bnbench's back): the run is left incomplete and the
same `bnbench ablate` command resumes it. `--slurm-cluster local` runs the same jobs as
processes on this machine (submitit's local executor), to try a setup without a cluster.

The `bnbench ablate` process stays up while the jobs run: it keeps the runs' leases alive and
records their outcomes (run it in tmux, or as a small job of its own).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any

from bnbench.ablate.executor import (
    SLURM_DIR,
    Executor,
    ExecutorOptions,
    RunLost,
    RunTask,
    WorkerReply,
    missing_engine,
)
from bnbench.ablate.interrupts import sigint_blocked
from bnbench.ablate.worker import run_remote
from bnbench.errors import SpecError

POLL_S = 1.0  # how often job states are looked at (submitit reads result files first)
CANCEL_WAIT_S = 60.0  # how long a cancelled job may take to stop before its run is released


def slurm_parameters(options: ExecutorOptions) -> dict[str, Any]:
    """submitit's `update_parameters` for `options` (prefixed `slurm_` as AutoExecutor wants)."""
    parameters: dict[str, Any] = {
        "name": "bnbench",
        "timeout_min": options.time_minutes or 60,
        "cpus_per_task": options.cpus_per_run or 1,
        "tasks_per_node": 1,
        "nodes": 1,
    }
    if options.gpus_per_run:
        parameters["gpus_per_node"] = options.gpus_per_run
    if options.partition:
        parameters["slurm_partition"] = options.partition
    if options.slurm_options:
        parameters["slurm_additional_parameters"] = dict(options.slurm_options)
    return parameters


def connect(options: ExecutorOptions, results_dir: Path) -> SlurmExecutor:
    """An executor submitting to SLURM (or, with `slurm_cluster='local'`, to this machine).

    Raises:
        SpecError: submitit is not installed, or there is no SLURM here (no `sbatch`).
    """
    try:
        import submitit
    except ImportError:
        raise missing_engine("submitit", "slurm") from None
    cluster = options.slurm_cluster
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise SpecError(
            "--executor slurm: no SLURM here (sbatch is not on PATH); run bnbench on a login "
            "node, or try the setup on this machine with --slurm-cluster local"
        )
    executor = submitit.AutoExecutor(folder=results_dir / SLURM_DIR / "%j", cluster=cluster)
    parameters = slurm_parameters(options)
    if cluster == "local":  # the local executor knows none of SLURM's own options
        parameters = {k: v for k, v in parameters.items() if not k.startswith("slurm_")}
    try:
        executor.update_parameters(**parameters)
    except ValueError as err:  # a --slurm-option sbatch would reject
        raise SpecError(f"--slurm-option: {err}") from None
    return SlurmExecutor(executor, options)


class SlurmExecutor(Executor):
    """Runs as SLURM jobs, `slots` at a time (default: all of them; SLURM queues them)."""

    def __init__(self, executor: Any, options: ExecutorOptions) -> None:
        self._executor = executor
        self._threads = options.cpus_per_run or 1
        self.slots = options.jobs or 1_000_000
        self._jobs: dict[Any, Future[WorkerReply]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def submit(self, task: RunTask) -> Future[WorkerReply]:
        return self.submit_many([task])[0]

    def submit_many(self, tasks: list[RunTask]) -> list[Future[WorkerReply]]:
        if not tasks:
            return []
        try:
            # A local job (--slurm-cluster local) is a process of this terminal: blocked here,
            # a Ctrl-C is left to this process, as for the jobs of a real cluster.
            with sigint_blocked():
                jobs = self._executor.map_array(run_job, tasks, [self._threads] * len(tasks))
        except (OSError, RuntimeError, subprocess.CalledProcessError) as err:
            # sbatch refused them (an unknown partition or option, say): a user error.
            raise SpecError(f"SLURM did not take the jobs: {err}") from None
        futures: list[Future[WorkerReply]] = []
        with self._lock:
            for job in jobs:
                future: Future[WorkerReply] = Future()
                future.set_running_or_notify_cancel()
                self._jobs[job] = future
                futures.append(future)
        return futures

    def cancel(self) -> None:
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            process = local_controller(job)
            if process is not None:
                # It ignores SIGINT (see submit_many); SIGTERM reaches the run, as on SLURM.
                process.send_signal(signal.SIGTERM)
            else:
                job.cancel(check=False)  # scancel
        # Wait until the jobs have stopped, so that no job still writes a run once it is left
        # incomplete and released.
        deadline = time.monotonic() + CANCEL_WAIT_S
        while self._jobs and time.monotonic() < deadline:
            time.sleep(POLL_S)

    def close(self) -> None:
        self._stop.set()
        self._watcher.join()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            with self._lock:
                jobs = list(self._jobs.items())
            for job, future in jobs:
                if job.done():
                    with self._lock:
                        del self._jobs[job]
                    _settle(job, future)


def local_controller(job: Any) -> subprocess.Popen[bytes] | None:
    """The controller process of a submitit *local* job; None for a SLURM job.

    submitit's public `LocalJob.cancel` sends SIGINT, which the controller ignores here (see
    `submit_many`), and offers no other handle; so its private `_process` is read here alone.
    tests/test_interrupts.py checks it on a real local job, so a submitit change fails there.
    """
    from submitit.local.local import LocalJob

    if not isinstance(job, LocalJob):
        return None
    process: subprocess.Popen[bytes] | None = job._process
    return process


def _settle(job: Any, future: Future[WorkerReply]) -> None:
    """Give `future` the finished job's result, or `RunLost` when the job did not finish it."""
    try:
        future.set_result(job.result())
    except Exception as err:  # submitit's UncompletedJobError, FailedJobError
        last = str(err).strip().splitlines()[-1:] or [type(err).__name__]
        future.set_exception(RunLost(f"SLURM job {job.job_id} ended early: {last[0]}"))


class Preempted(BaseException):
    """SLURM announced the end of a job (preemption or its time limit) with SIGUSR2.

    A BaseException, so that training does not record it as the run's failure: the run stays
    incomplete.
    """


def _preempted(signum: int, frame: FrameType | None) -> None:
    raise Preempted(f"stopped by {signal.Signals(signum).name} (preempted, out of time or "
                    "cancelled); the run is left incomplete")  # fmt: skip


def run_job(task: RunTask, threads: int) -> WorkerReply | list[WorkerReply]:
    """The function a SLURM job runs: `worker.run_remote`, leaving the run incomplete when the
    job is stopped. SLURM warns with SIGUSR2 (submitit's own handler would requeue the job, to
    start the run over) and stops with SIGTERM (which submitit's handler ignores).
    """
    for stop in (signal.SIGUSR2, signal.SIGTERM):
        signal.signal(stop, _preempted)
    try:
        return run_remote(task, threads)
    except Preempted as stopped:  # an ordinary error for submitit, so it records the job's end
        raise RuntimeError(str(stopped)) from None
