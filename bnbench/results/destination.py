"""Where a single run goes, and what happens to what is already there."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bnbench.config.identity import config_hash, run_id
from bnbench.config.schema import RunSpec
from bnbench.errors import SpecError
from bnbench.results import files, locks, rundir


@contextmanager
def reserve_run_dir(
    out: Path | None, resolved: Mapping[str, Any], *, overwrite: bool
) -> Iterator[Path]:
    """Pick the run directory, lock it, and clear what may be cleared; yields it, locked.

    A finished run is never replaced silently: it needs `overwrite`. An incomplete run (killed or
    interrupted) of the same config is cleared, since it can only be re-run; one of another
    config needs `overwrite` too, as its folder may be the only trace of that run. A folder
    holding anything else (an ablation, your own files) is never touched, `overwrite` or not. A
    refusal writes nothing; the lock (`files.LOCK` inside the directory) makes a second `train`
    into it wait its turn.

    Raises:
        SpecError: `out` holds other files, or a finished run or an incomplete run of another
            config and `overwrite` is false, or a run to clear is a symbolic link, or another
            process is writing it.
    """
    run_dir = out if out is not None else Path("results") / run_id(resolved)
    _check(run_dir, resolved, overwrite)
    with locks.folder_lock(run_dir, "bnbench train"):
        # Again: it may have changed before we held the lock.
        if _check(run_dir, resolved, overwrite):
            files.clear_folder(run_dir, keep={files.LOCK})
        else:
            files.remove_temp_files(run_dir)
        yield run_dir


def _check(run_dir: Path, resolved: Mapping[str, Any], overwrite: bool) -> bool:
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
    if state == rundir.UNFINISHED and not overwrite and not _same_config(run_dir, resolved):
        raise SpecError(
            f"{run_dir}: holds an interrupted run of another config; pass --overwrite to "
            "replace it or choose another --out"
        )
    if run_dir.is_symlink():
        raise SpecError(
            f"{run_dir}: is a symbolic link (to {os.readlink(run_dir)}) holding a run; bnbench "
            "never deletes through a link: clear it yourself, or choose another --out"
        )
    return True


def _same_config(run_dir: Path, resolved: Mapping[str, Any]) -> bool:
    """Whether the run in `run_dir` was started from `resolved` (or recorded no config).

    `dataset.scale_by`, which training fills in from the data (`normalize: scale`), counts only
    when `resolved` sets it; a config written before a default was added is read back through
    the spec schema, so that the new default is no difference. A config that cannot be read is
    another config.
    """
    try:
        stored = rundir.read_config(run_dir)
    except SpecError:
        return False
    if not stored:
        return True  # killed before it wrote its config: nothing of it to lose
    if _hash(stored, resolved) == config_hash(resolved):
        return True
    try:
        return _hash(RunSpec.model_validate(stored).model_dump(mode="json"), resolved) == (
            config_hash(resolved)
        )
    except ValidationError:
        return False


def _hash(stored: Mapping[str, Any], resolved: Mapping[str, Any]) -> str:
    """`config_hash` of a stored config, without the `dataset.scale_by` training filled in
    when `resolved` leaves it to the data."""
    data, dataset, kept = dict(stored), resolved.get("dataset"), stored.get("dataset")
    from_data = isinstance(dataset, Mapping) and dataset.get("scale_by") is None
    if from_data and isinstance(kept, Mapping):
        data["dataset"] = {**kept, "scale_by": None}
    return config_hash(data)


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
