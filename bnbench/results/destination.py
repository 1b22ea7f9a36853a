"""Where a single run goes, and what happens to what is already there."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bnbench.config.identity import run_id
from bnbench.errors import SpecError
from bnbench.results import files, locks, rundir


@contextmanager
def reserve_run_dir(
    out: Path | None, resolved: Mapping[str, Any], *, overwrite: bool
) -> Iterator[Path]:
    """Pick the run directory, lock it, and clear what may be cleared; yields it, locked.

    A finished run is never replaced silently: it needs `overwrite`. An incomplete run (killed or
    interrupted) is cleared, since it can only be re-run. A folder holding anything else (an
    ablation, your own files) is never touched, `overwrite` or not. A refusal writes nothing; the
    lock (`files.LOCK` inside the directory) makes a second `train` into it wait its turn.

    Raises:
        SpecError: `out` holds other files, or a finished run and `overwrite` is false, or a run
            to clear is a symbolic link, or another process is writing it.
    """
    run_dir = out if out is not None else Path("results") / run_id(resolved)
    _check(run_dir, overwrite)
    with locks.folder_lock(run_dir, "bnbench train"):
        if _check(run_dir, overwrite):  # again: it may have changed before we held the lock
            files.clear_folder(run_dir, keep={files.LOCK})
        else:
            files.remove_temp_files(run_dir)
        yield run_dir


def _check(run_dir: Path, overwrite: bool) -> bool:
    """Refuse `run_dir` as `reserve_run_dir` documents; True when it holds a run to clear."""
    if not run_dir.exists():
        return False
    if not run_dir.is_dir():
        raise SpecError(f"{run_dir}: exists and is not a folder")
    # Our lock file and a killed writer's temporary files are not content.
    if all(name == files.LOCK or files.is_temp_name(name) for name in os.listdir(run_dir)):
        return False
    if not _looks_like_run(run_dir):
        raise SpecError(
            f"{run_dir}: is not empty and is not a run directory (it holds "
            f"{_foreign(run_dir)}); choose another --out (--overwrite only ever replaces a run "
            "directory, and never deletes a file it did not write)"
        )
    state = rundir.run_state(run_dir)
    if state in rundir.FINISHED and not overwrite:
        raise SpecError(
            f"{run_dir}: holds a finished run (status {state}); pass --overwrite to replace it "
            "or choose another --out"
        )
    if run_dir.is_symlink():
        raise SpecError(
            f"{run_dir}: is a symbolic link (to {os.readlink(run_dir)}) holding a run; bnbench "
            "never deletes through a link: clear it yourself, or choose another --out"
        )
    return True


def _looks_like_run(path: Path) -> bool:
    """Whether `path` holds a run and nothing else, so that removing it loses nothing else.

    Hidden names count too (a `.git/`, your `.notes`): only our lock file and a killed
    writer's temporary files are not content.
    """
    names = {name for name in os.listdir(path)
             if name != files.LOCK and not files.is_temp_name(name)}  # fmt: skip
    return bool(names & rundir.MARKERS) and names <= rundir.RUN_FILES


def _foreign(path: Path) -> str:
    """The names in `path` that are not a run's, for the refusal (at most three)."""
    names = sorted(name for name in os.listdir(path) if name not in rundir.RUN_FILES
                   and name != files.LOCK and not files.is_temp_name(name))  # fmt: skip
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return shown or f"no {', '.join(sorted(rundir.MARKERS))}"
