"""Lease files as another process, on this machine or another, would have left them."""

from __future__ import annotations

import time
from pathlib import Path

from bnbench.ablate.leases import LEASES_DIR, Lease


def write_lease(results: Path, run_id: str, *, host: str, pid: int, heartbeat_age: float,
                space: str = "elsewhere", generation: int = 0) -> Path:  # fmt: skip
    """Write the lease of `host:pid` on `run_id`, last refreshed `heartbeat_age` seconds ago.

    `space` is where its process id means something; use `leases._SPACE` for this machine.
    """
    now = time.time()
    lease = Lease(run_id, generation, f"token-{host}-{pid}", host, pid, space,
                  now - heartbeat_age - 5, now - heartbeat_age, "local")  # fmt: skip
    path = results / LEASES_DIR / f"{run_id}.{generation}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lease.encode())
    return path
