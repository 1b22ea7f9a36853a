"""Where a single run goes, and what happens to what is already there."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bnbench import rundir
from bnbench.errors import SpecError


def prepare_run_dir(out: Path | None, resolved: Mapping[str, Any], *, overwrite: bool) -> Path:
    """Pick the run directory and clear what may be cleared; creates nothing.

    A finished run is never replaced silently: it needs `overwrite`. An incomplete run (killed or
    interrupted) is cleared, since it can only be re-run. A folder that is not a run directory
    and is not empty is left alone unless `overwrite` is given.

    Raises:
        SpecError: `out` holds a finished run, or other files, and `overwrite` is false.
    """
    run_dir = out if out is not None else Path("results") / rundir.run_id(resolved)
    if not run_dir.exists():
        return run_dir
    if not run_dir.is_dir():
        raise SpecError(f"{run_dir}: exists and is not a folder")
    state = rundir.run_state(run_dir)
    is_run = (run_dir / rundir.CONFIG).exists() or (run_dir / rundir.INCOMPLETE).exists()
    if overwrite:
        shutil.rmtree(run_dir)
    elif state in rundir.FINISHED_STATUSES:
        raise SpecError(
            f"{run_dir}: holds a finished run (status {state}); pass --overwrite to replace it "
            "or choose another --out"
        )
    elif is_run:
        shutil.rmtree(run_dir)
    elif any(run_dir.iterdir()):
        raise SpecError(f"{run_dir}: is not empty and is not a run directory; choose another --out")
    return run_dir
