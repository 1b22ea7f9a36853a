"""Claim files as another process, on this machine or another, would have left them."""

from __future__ import annotations

import time
from pathlib import Path

from bnbench.ablate.claims import CLAIMS_DIR, Claim


def write_claim(results: Path, run_id: str, *, host: str, pid: int, heartbeat_age: float,
                space: str = "elsewhere", generation: int = 0) -> Path:  # fmt: skip
    """Write the claim of `host:pid` on `run_id`, last refreshed `heartbeat_age` seconds ago.

    `space` is where its process id means something; use `claims._SPACE` for this machine.
    """
    now = time.time()
    claim = Claim(run_id, generation, f"token-{host}-{pid}", host, pid, space,
                  now - heartbeat_age - 5, now - heartbeat_age, "local")  # fmt: skip
    path = results / CLAIMS_DIR / f"{run_id}.{generation}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(claim.encode())
    return path
