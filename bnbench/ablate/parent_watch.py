"""A worker ends when the `bnbench ablate` that started it dies, and never writes a run whose
lease another process has taken over.

Killing only the parent (`kill -9 PID`, not its process group) used to leave its workers
training on as orphans; a re-run then took over their (stale) leases and trained the same runs
a second time into the same folders. Two guards, both cheap:

- `exit_with_parent`: on Linux the kernel sends the worker a signal when its parent dies
  (`PR_SET_PDEATHSIG`, set through `prctl`); a thread also polls the parent's pid every second,
  the portable fallback (and a check against the signal's caveat: it fires when the *thread*
  that spawned the worker ends, so the handler exits only when the parent really changed).
- `LeaseGuard`: a worker notes the lease its run was given and, before each evaluation point
  and before the run's results are written, checks that lease is still the run's current one
  and its holder alive; if another process took it over, or the holder is gone, the worker
  exits at once, writing nothing more. This also ends a SLURM job (`--slurm-cluster local`:
  under submitit's job controller, not a child of `ablate`) whose `ablate` was killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from bnbench.ablate.leases import LEASES_DIR, Lease, read_leases

_PR_SET_PDEATHSIG = 1
# A worker that outlives its parent, or loses its lease, exits with this code, writing nothing.
ORPHANED = 75
_POLL_S = 1.0
_WATCHING = False  # set once per process (a Ray worker serves many runs)


def exit_with_parent() -> None:
    """Make this worker process exit when its parent process dies (Linux signal + pid poll)."""
    parent = os.getppid()

    def leave_if_orphaned(signum: int = 0, frame: FrameType | None = None) -> None:
        if os.getppid() != parent:
            os._exit(ORPHANED)  # no clean-up: a dead parent has nobody to report to

    global _WATCHING
    if _WATCHING:
        return
    _WATCHING = True
    if sys.platform.startswith("linux"):
        death = signal.SIGRTMIN + 3  # a signal of its own: SIGTERM stays the pool's to send
        try:
            signal.signal(death, leave_if_orphaned)  # ValueError outside the main thread
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(death), 0, 0, 0)
        except (OSError, AttributeError, ValueError):
            pass  # the poll below still works
    leave_if_orphaned()  # the parent may have died before the signal was asked for

    def poll() -> None:
        while True:
            time.sleep(_POLL_S)
            leave_if_orphaned()

    threading.Thread(target=poll, name="bnbench-parent-watch", daemon=True).start()


class LeaseGuard:
    """The lease a run was given when its worker started it, checked before writing."""

    def __init__(self, run_dir: Path, every_s: float = 2.0) -> None:
        # run_dir is <results>/runs/<run id> (`layout.run_path`).
        self.results_dir = run_dir.parent.parent
        self.run_id = run_dir.name
        self.every_s = every_s
        self.lease = self._current()
        self._checked = time.monotonic()

    def _current(self) -> Lease | None:
        return read_leases(self.results_dir).get(self.run_id)

    def check(self, *, now: bool = False) -> None:
        """Exit this process when the run's lease is no longer the one it started with.

        Args:
            now: check even when the last check was less than `every_s` ago (before results
                are written).
        """
        if self.lease is None or not (self.results_dir / LEASES_DIR).is_dir():
            return  # not leased (a single run outside an ablation): nothing to lose
        if not now and time.monotonic() - self._checked < self.every_s:
            return
        self._checked = time.monotonic()
        current = self._current()
        if current is None or current.token != self.lease.token or (
            current.generation != self.lease.generation
        ):
            os._exit(ORPHANED)  # another process trains this run now: write nothing more
        # Our launcher is gone (seen on its machine): the next one will take the run over. A
        # lease only late in its heartbeat (a suspended laptop, a slow file server) is not
        # reason enough: its holder may beat again, and a takeover is caught above.
        if current.stale_reason() == "process gone":
            os._exit(ORPHANED)
