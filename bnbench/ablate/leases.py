"""Per-run leases: which process trains which run of a results tree that several share.

Several `bnbench ablate` invocations (shards, executors, machines) may fill one results tree at
once, so no lock covers the tree. Instead, before a run trains, the invocation launching it
leases it: it creates `.leases/<run id>.<generation>.json` (whole or not at all, failing when
it exists: `files.create_exclusive`), naming its host, process id and start time, and refreshes
the lease's heartbeat every `HEARTBEAT_S` seconds until the run's outcome is known; then it
deletes the lease. The lease with the highest generation is the run's lease.

A lease is *stale* when its process is gone (checked with `kill(pid, 0)`, only on the machine
and process namespace that wrote it) or its heartbeat is older than `LEASE_S` (any machine; so
clocks must agree to well within the lease, as NTP keeps them). A stale lease is taken over by
creating the next generation: of several processes taking over one lease at once exactly one
creates it, and a live lease is never touched. Nothing here relies on `flock`, which does not
reach across the machines of an NFS mount.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from bnbench.results import files, rundir
from bnbench.results.layout import run_path

LEASES_DIR = ".leases"
# A lease whose heartbeat is older than this is stale. Long enough for a loaded file server or a
# busy machine to miss several heartbeats; short enough that a run of a lost node is picked up
# again within minutes.
LEASE_S = 120.0
HEARTBEAT_S = 15.0


def _process_space() -> str:
    """Where a process id means the same process: this host, boot and pid namespace."""
    parts = [socket.gethostname()]
    with suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


_SPACE = _process_space()

@dataclass(frozen=True)
class Lease:
    """One lease file: who trains `run_id`, since when, and when it last said so."""

    run_id: str
    generation: int
    token: str
    host: str
    pid: int
    space: str
    leased_at: float
    heartbeat: float
    executor: str

    @property
    def holder(self) -> str:
        return f"{self.host}:{self.pid}"

    def age(self, now: float | None = None) -> float:
        """Seconds since the last heartbeat."""
        return (time.time() if now is None else now) - self.heartbeat

    def stale_reason(self, now: float | None = None) -> str | None:
        """Why the lease is stale ('process gone', 'no heartbeat for 300 s'), or None if live."""
        if self.space == _SPACE and not files.pid_alive(self.pid):
            return "process gone"
        age = self.age(now)
        if age > LEASE_S:
            return f"no heartbeat for {age:.0f} s"
        return None

    def encode(self) -> bytes:
        return (json.dumps(asdict(self), indent=1) + "\n").encode("utf-8")


def _name(run_id: str, generation: int) -> str:
    return f"{run_id}.{generation}.json"


def _listing(folder: Path) -> dict[str, list[int]]:
    """Generations of the lease files in `folder`, by run id (ascending)."""
    found: dict[str, list[int]] = {}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return found
    for name in names:
        if name.startswith("."):  # a temporary file of a writer
            continue
        run_id, _, rest = name.rpartition(".json")[0].rpartition(".")
        if run_id and rest.isdigit():
            found.setdefault(run_id, []).append(int(rest))
    return {run_id: sorted(gens) for run_id, gens in found.items()}


def _read(folder: Path, run_id: str, generation: int) -> Lease | None:
    """The lease, or None when it vanished meanwhile.

    An unreadable lease (being written where hard links are not supported, or damaged) has
    its file's modification time as heartbeat: it goes stale after the lease, like any other.
    """
    path = folder / _name(run_id, generation)
    try:
        data: dict[str, Any] = json.loads(path.read_bytes())
        return Lease(**{**data, "run_id": run_id, "generation": generation})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        try:
            written = path.stat().st_mtime
        except OSError:
            return None
        return Lease(run_id, generation, "", "?", 0, "", written, written, "?")


def read_leases(results_dir: Path) -> dict[str, Lease]:
    """The current lease (highest generation) of every leased run in `results_dir`."""
    folder = results_dir / LEASES_DIR
    current = {}
    for run_id, generations in _listing(folder).items():
        lease = _read(folder, run_id, generations[-1])
        if lease is not None:
            current[run_id] = lease
    return current


class Leases:
    """The leases of this process in one results tree, kept alive by a heartbeat thread.

    Use as a context manager: leaving it releases every lease still held.
    """

    def __init__(self, results_dir: Path, executor: str = "local") -> None:
        self.folder = results_dir / LEASES_DIR
        self.executor = executor
        self.token = uuid.uuid4().hex
        self._held: dict[str, Lease] = {}
        # Runs whose lease another process took over while this one held it (its heartbeat
        # stopped for longer than the lease: a paused or overloaded machine).
        self.lost: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_forever, daemon=True)

    def __enter__(self) -> Leases:
        self.remove_stale_of_finished()
        self._thread.start()
        return self

    def remove_stale_of_finished(self) -> list[str]:
        """Delete the stale leases of runs that are finished (their launcher died after the
        run ended, before it released the lease); returns their run ids."""
        removed = []
        for run_id, generations in _listing(self.folder).items():
            lease = _read(self.folder, run_id, generations[-1])
            run_dir = run_path(self.folder.parent, run_id)
            if lease is None or lease.stale_reason() is None:
                continue
            if rundir.run_state(run_dir) not in rundir.FINISHED:
                continue
            for generation in generations:
                (self.folder / _name(run_id, generation)).unlink(missing_ok=True)
            removed.append(run_id)
        return removed

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self._stop.set()
        self._thread.join()
        for run_id in list(self._held):
            self.release(run_id)

    def acquire(self, run_id: str) -> Lease | None:
        """Lease `run_id` (taking over a stale lease).

        Returns:
            None when this process now holds the run; otherwise the live lease of the process
            that does.
        """
        current = None
        for attempt in range(5):
            time.sleep(0.05 * attempt)  # a file server's directory cache may lag a moment
            generations = _listing(self.folder).get(run_id, [])
            current = _read(self.folder, run_id, generations[-1]) if generations else None
            if generations and current is None:
                continue  # released or taken over as we looked
            if current is not None and current.stale_reason() is None:
                return current
            generation = current.generation + 1 if current is not None else 0
            now = time.time()
            mine = Lease(run_id, generation, self.token, socket.gethostname(), os.getpid(),
                         _SPACE, now, now, self.executor)  # fmt: skip
            if files.create_exclusive(self.folder / _name(run_id, generation), mine.encode()):
                with self._lock:
                    self._held[run_id] = mine
                for old in generations:  # stale: their processes are gone or silent
                    (self.folder / _name(run_id, old)).unlink(missing_ok=True)
                return None
        # Leases of this run kept changing under us: someone else is busy with it.
        return current or Lease(run_id, -1, "", "?", 0, "", 0.0, time.time(), "?")

    def release(self, run_id: str) -> None:
        """Give up the lease on `run_id` (when its outcome is recorded or it is left incomplete)."""
        with self._lock:
            mine = self._held.pop(run_id, None)
            if mine is not None and self._still_mine(mine):
                (self.folder / _name(run_id, mine.generation)).unlink(missing_ok=True)

    def others(self, run_ids: set[str]) -> dict[str, Lease]:
        """The live leases of other processes on `run_ids`."""
        leases = read_leases(self.folder.parent)
        return {run_id: lease for run_id, lease in leases.items()
                if run_id in run_ids and lease.token != self.token
                and lease.stale_reason() is None}  # fmt: skip

    def _still_mine(self, mine: Lease) -> bool:
        current = _read(self.folder, mine.run_id, mine.generation)
        newer = _listing(self.folder).get(mine.run_id, [mine.generation])[-1] > mine.generation
        return current is not None and current.token == self.token and not newer

    def _beat_forever(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self.beat()

    def beat(self) -> None:
        """Refresh the heartbeat of every lease held (the thread does, every `HEARTBEAT_S`)."""
        with self._lock:
            for run_id, mine in list(self._held.items()):
                try:
                    if not self._still_mine(mine):
                        del self._held[run_id]
                        self.lost.append(run_id)
                        continue
                    fresh = Lease(**{**asdict(mine), "heartbeat": time.time()})
                    files.atomic_write_bytes(self.folder / _name(run_id, mine.generation),
                                             fresh.encode())  # fmt: skip
                    self._held[run_id] = fresh
                except OSError:  # a file-server hiccup: the next beat tries again
                    continue
