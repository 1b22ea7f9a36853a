"""Where a single run goes, and what happens to what is already there."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bnbench.config.identity import run_id
from bnbench.errors import SpecError
from bnbench.results import rundir


def prepare_run_dir(out: Path | None, resolved: Mapping[str, Any], *, overwrite: bool) -> Path:
    """Pick the run directory and clear what may be cleared; creates nothing.

    A finished run is never replaced silently: it needs `overwrite`. An incomplete run (killed or
    interrupted) is cleared, since it can only be re-run. A folder holding anything else (an
    ablation, your own files) is never touched, `overwrite` or not.

    Raises:
        SpecError: `out` holds other files, or a finished run and `overwrite` is false.
    """
    run_dir = out if out is not None else Path("results") / run_id(resolved)
    if not run_dir.exists():
        return run_dir
    if not run_dir.is_dir():
        raise SpecError(f"{run_dir}: exists and is not a folder")
    state = rundir.run_state(run_dir)
    is_run = _looks_like_run(run_dir)
    if not is_run and any(run_dir.iterdir()):
        raise SpecError(
            f"{run_dir}: is not empty and is not a run directory; choose another --out "
            "(--overwrite only ever replaces a run directory)"
        )
    if state in rundir.FINISHED and not overwrite:
        raise SpecError(
            f"{run_dir}: holds a finished run (status {state}); pass --overwrite to replace it "
            "or choose another --out"
        )
    if is_run:  # a finished run being replaced, or an incomplete one that can only be re-run
        shutil.rmtree(run_dir)
    return run_dir


def _looks_like_run(path: Path) -> bool:
    """Whether `path` holds a run and nothing else, so that removing it loses nothing else."""
    names = {entry.name for entry in path.iterdir() if not entry.name.startswith(".")}
    return bool(names & rundir.MARKERS) and names <= rundir.RUN_FILES
