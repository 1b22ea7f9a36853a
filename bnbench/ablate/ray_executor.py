"""The Ray executor: each unit of work (a run, or a vectorized group of seeds) is a task of Ray
core on a cluster (Ray Tune is not used).

`--address` joins a running cluster (`auto`, or the head's `host:port`); without it a Ray
instance is started on this machine. A task asks for `--cpus-per-run` CPUs and
`--gpus-per-run` GPUs; Ray starts a pool of worker processes per environment, and each task's
environment names its Keras backend and thread cap, so a worker imports Keras once, on one
backend, with its threads capped before the import and pinned to its own cores of the node
(`worker.pin_to_free_cores`), and then serves run after run. Tasks are
never retried by Ray (`max_retries=0`): a run whose worker dies is left incomplete, and the
same `bnbench ablate` command is the retry.

The nodes need not share a filesystem with this driver: a task trains into node-local scratch
and streams its finished run directory (every seed's, for a group) back through Ray's object
store in chunks (`worker.run_shipped`), and a thread here writes each run into the results tree
whole or not at all (`shipping.unpack_runs`). Leases stay here; progress events come back
through a small relay actor.
Each task's runtime environment carries this driver's `bnbench` package (`py_modules`), so
every node runs the same code; its dependencies (Keras and the backend) must be installed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import bnbench
from bnbench.ablate.executor import (
    Event,
    Executor,
    ExecutorOptions,
    RunLost,
    RunTask,
    WorkerReply,
    missing_engine,
)
from bnbench.ablate.interrupts import sigint_blocked
from bnbench.ablate.shipping import mark_away, unpack_runs
from bnbench.ablate.worker import run_shipped
from bnbench.errors import SpecError

# How long to wait for a cluster's head to accept a connection before saying it does not.
CONNECT_TIMEOUT_S = 3.0
# Chunks of a run directory a task may have sent ahead of the driver's writing them: the
# object store holds at most this many per run in flight.
CHUNKS_AHEAD = 4
# How long the display waits for the relay actor's events before drawing without them.
EVENTS_TIMEOUT_S = 1.0


def connect(options: ExecutorOptions, results_dir: Path) -> RayExecutor:
    """Join (or start) the Ray cluster of `options` and check that a run fits on a node.

    Raises:
        SpecError: Ray is not installed, the cluster cannot be reached, or no node has the
            CPUs and GPUs a run asks for.
    """
    try:
        import ray
    except ImportError:
        raise missing_engine("Ray", "ray") from None
    address = options.address
    if address is not None and address != "auto" and not address.startswith("ray://"):
        _check_reachable(address)
    # Every task and actor of this driver gets its `bnbench` package (uploaded once, cached by
    # content): the nodes run the driver's code whatever version, if any, they have installed.
    package = str(Path(bnbench.__file__).parent)
    shipped = {"py_modules": [package], "excludes": ["__pycache__"]}
    settings: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False,
                                "runtime_env": shipped}  # fmt: skip
    if address is None and not os.environ.get("RAY_ADDRESS"):
        settings.update(num_cpus=_cores(), include_dashboard=False)
    try:
        with sigint_blocked():  # a local instance's processes must not see a terminal Ctrl-C
            ray.init(address=address, **settings)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"--address {address}" if address else "a local Ray instance"
        hint = (
            "; is it the same Ray version, and does it use token authentication (then set "
            "RAY_AUTH_MODE=token here too, with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN)?"
            if address
            else ""
        )
        raise SpecError(f"{where}: cannot start Ray: {err}{hint}") from None
    try:
        fits = _runs_that_fit(ray, options.cpus_per_run or 1, options.gpus_per_run, address)
    except SpecError:
        ray.shutdown()
        raise
    return RayExecutor(ray, options, options.jobs or fits)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_reachable(address: str) -> None:
    """Refuse within seconds a head that is not there (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SpecError(f"--address expects host:port or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise SpecError(
            f"--address {address}: cannot connect ({err.strerror or err}); is a Ray head "
            f"running there (ray start --head --port={port})?"
        ) from None


def _runs_that_fit(ray: Any, cpus: int, gpus: int, address: str | None) -> int:
    """How many runs of `cpus` CPUs and `gpus` GPUs the cluster's live nodes hold at once.

    Raises:
        SpecError: none (a task that fits no node would wait forever).
    """
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    fits = 0
    for resources in nodes:
        per_node = int(resources.get("CPU", 0) // cpus)
        if gpus:
            per_node = min(per_node, int(resources.get("GPU", 0) // gpus))
        fits += per_node
    if fits:
        return fits
    cluster = f"the Ray cluster at {address}" if address else "the local Ray instance"
    total = ray.cluster_resources()
    have = f"{total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs"
    if gpus and not total.get("GPU"):
        raise SpecError(f"--gpus-per-run {gpus}: {cluster} has no GPU ({have})")
    raise SpecError(
        f"no node of {cluster} has {cpus} CPUs and {gpus} GPUs for a run (all nodes together: "
        f"{have}); lower --cpus-per-run / --gpus-per-run"
    )


class RayExecutor(Executor):
    """Runs as Ray tasks, `slots` at a time; their run directories are written here."""

    def __init__(self, ray: Any, options: ExecutorOptions, slots: int) -> None:
        self._ray = ray
        self.slots = slots
        self._cpus = options.cpus_per_run or 1
        self._gpus = options.gpus_per_run
        self._remote = ray.remote(run_shipped)
        # No CPU: it may sit on a head that runs no tasks; one per driver, gone with it.
        self._relay = ray.remote(_Relay).options(num_cpus=0).remote()
        self._in_flight: dict[Future[WorkerReply], Any] = {}

    def submit(self, task: RunTask) -> Future[WorkerReply]:
        env = {"KERAS_BACKEND": task.backend, "OMP_NUM_THREADS": str(self._cpus),
               "TF_FORCE_GPU_ALLOW_GROWTH": "true"}  # fmt: skip
        remote = self._remote.options(
            name=task.run_id, num_cpus=self._cpus, num_gpus=self._gpus, max_retries=0,
            runtime_env={"env_vars": env}, num_returns="streaming",
            _generator_backpressure_num_objects=CHUNKS_AHEAD,
        )  # fmt: skip
        for member in task.group or (task,):  # incomplete until its files arrive, if ever
            mark_away(Path(member.run_dir))
        pieces = remote.remote(task, self._cpus, True, self._relay)  # pinned to its own cores
        future: Future[WorkerReply] = Future()
        future.set_running_or_notify_cancel()
        self._in_flight[future] = pieces
        future.add_done_callback(lambda done: self._in_flight.pop(done, None))
        threading.Thread(target=self._receive, args=(task, pieces, future), daemon=True,
                         name=f"receive {task.run_id}").start()  # fmt: skip
        return future

    def _receive(self, task: RunTask, pieces: Any, future: Future[WorkerReply]) -> None:
        """Wait for `task`'s reply, write its run directories, then settle `future`."""
        places = {member.run_id: Path(member.run_dir) for member in task.group or (task,)}
        try:
            first = next(pieces, None)
            if first is None:
                raise RunLost("its Ray task sent nothing back")
            reply: WorkerReply = self._ray.get(first)  # a list for a group
            unpack_runs((self._ray.get(piece) for piece in pieces), places)
        except BaseException as error:  # a lost worker or node, a cancel, a shutdown
            future.set_exception(error if isinstance(error, RunLost) else _lost(error))
        else:
            future.set_result(reply)

    def cancel(self) -> None:
        for pieces in list(self._in_flight.values()):
            self._ray.cancel(pieces, force=True)  # kills the worker: the run is left incomplete

    def events(self) -> list[Event]:
        try:
            found: list[Event] = self._ray.get(self._relay.drain.remote(),
                                               timeout=EVENTS_TIMEOUT_S)  # fmt: skip
        except Exception:  # a slow or lost relay: draw without its events
            return []
        return found

    def close(self) -> None:
        self._ray.shutdown()  # disconnects; stops the instance if it was started here


class _Relay:
    """A Ray actor holding the progress events that tasks put, until the driver drains them."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def put(self, event: Event) -> None:
        self._events.append(event)

    def drain(self) -> list[Event]:
        found, self._events = self._events, []
        return found


def _lost(error: BaseException) -> RunLost:
    name = type(error).__name__
    if name in ("TaskCancelledError", "CancelledError"):
        return RunLost("cancelled")
    if name in ("WorkerCrashedError", "NodeDiedError", "OwnerDiedError", "ObjectLostError"):
        return RunLost(f"its Ray worker died ({name})")
    return RunLost(f"its Ray task raised: {error}")
