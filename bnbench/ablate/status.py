"""What a results tree holds right now: each planned run's state and who, if anyone, trains it.

Read from the tree alone (the manifest's plan, run directories and leases), so `bnbench status`
works from any machine that mounts the folder, while invocations elsewhere fill it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bnbench.ablate.leases import Lease, read_leases
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.layout import ABLATION, RUNS_DIR, run_path
from bnbench.results.tree_files import PlannedRunRecord, read_manifest


@dataclass(frozen=True)
class RunStatus:
    """One planned run: its state in the tree, and its lease if it has one.

    Attributes:
        state: 'running' when a live process holds its lease; otherwise the run directory's
            state ('missing', 'incomplete', 'completed', 'diverged', 'failed').
        lease: the run's lease, live or stale, or None.
        stale: why the lease is stale ('process gone', 'no heartbeat for 300 s'), or None.
    """

    run_id: str
    arm: str
    cell: str
    seed: int
    state: str
    lease: Lease | None
    stale: str | None


def grid_status(results_dir: Path) -> list[RunStatus]:
    """The status of every planned run of the ablation in `results_dir`, in plan order.

    Raises:
        SpecError: `results_dir` holds no ablation, or its manifest is unreadable.
    """
    if not (results_dir / ABLATION).is_file():
        raise SpecError(f"{results_dir}: holds no ablation ({ABLATION} is missing)")
    leases = read_leases(results_dir)
    now = time.time()
    rows = []
    for run in _planned(results_dir):
        state = rundir.run_state(run_path(results_dir, run.run_id))
        lease = leases.get(run.run_id)
        stale = lease.stale_reason(now) if lease is not None else None
        if lease is not None and stale is None and not rundir.is_done(state):
            state = "running"
        rows.append(RunStatus(run.run_id, run.arm, run.cell, run.seed, state, lease, stale))
    return rows


def _planned(results_dir: Path) -> list[PlannedRunRecord]:
    """The manifest's planned runs; for a tree written before it listed them, the run
    directories there are."""
    manifest = read_manifest(results_dir)
    if manifest is not None and manifest.plan is not None:
        return manifest.plan
    runs = results_dir / RUNS_DIR
    found = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    return [PlannedRunRecord.model_validate({"run_id": p.name, **rundir.read_entry(p)})
            for p in found]  # fmt: skip


def counts(rows: list[RunStatus]) -> dict[str, int]:
    """How many runs are in each state, plus 'stale leases'."""
    found = Counter(row.state for row in rows)
    stale = sum(row.stale is not None for row in rows)
    return {**dict(sorted(found.items())), **({"stale leases": stale} if stale else {})}


def holders(rows: list[RunStatus]) -> dict[str, int]:
    """Runs being trained per live holder ('host:pid (executor)')."""
    found = Counter(f"{row.lease.holder} ({row.lease.executor})" for row in rows
                    if row.state == "running" and row.lease is not None)  # fmt: skip
    return dict(sorted(found.items()))
