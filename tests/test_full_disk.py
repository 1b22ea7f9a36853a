"""A full disk is not the run's fault: on a real, tiny tmpfs, a run whose `model.keras` does
not fit is left incomplete (trained again by the next command), never recorded `failed`."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from bnbench.ablate.executor import RunLost
from bnbench.ablate.worker import run_one
from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.train.loop import train
from tests.support.mounts import tmpfs

# Room for the run's small files (config, history, a summary, a traceback), not for the model.
ROOM = 24 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB tmpfs."""
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def _fill(disk: Path, leave: int) -> Path:
    """Fill `disk` with one file until only about `leave` bytes are free."""
    filler = disk / f"filler-{uuid.uuid4().hex[:6]}"
    stats = os.statvfs(disk)
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def _filling_at_the_end(disk: Path):
    """A progress hook that fills the disk once the last step is reached."""
    fillers: list[Path] = []

    def progress(step: int, total: int, loss: float | None) -> None:
        if step >= total and not fillers:
            fillers.append(_fill(disk, ROOM))

    return progress, fillers


def test_a_full_disk_while_saving_the_model_leaves_the_run_incomplete(tiny_spec, small_disk):
    spec = RunSpec.model_validate(tiny_spec)
    run_dir = small_disk / "run"
    progress, fillers = _filling_at_the_end(small_disk)
    with pytest.raises(OSError) as raised:
        train(spec, run_dir, save_model=True, progress=progress)
    assert raised.value.errno == errno.ENOSPC
    assert raised.value.filename == str(run_dir / rundir.MODEL)
    assert rundir.run_state(run_dir) == "incomplete"
    assert not (run_dir / rundir.SUMMARY).exists() and not (run_dir / rundir.TRACEBACK).exists()
    assert not (run_dir / rundir.MODEL).exists()
    assert sorted(os.listdir(run_dir)) == sorted([rundir.CONFIG, rundir.HISTORY, rundir.INCOMPLETE])
    fillers[0].unlink()  # space again: the same run trains to the end
    assert train(spec, run_dir, save_model=True).status == "completed"


def test_an_ablation_worker_reports_a_full_disk_as_a_lost_run(tiny_spec, small_disk, monkeypatch):
    import bnbench.ablate.worker as worker

    run_dir = small_disk / "runs" / "r0"
    progress, fillers = _filling_at_the_end(small_disk)
    real_train = train
    monkeypatch.setattr("bnbench.train.loop.train", lambda *a, **k: real_train(
        *a, **{**k, "progress": progress}))  # the worker's own hook only feeds the display
    assert worker._EVENTS is None
    with pytest.raises(RunLost, match="no space left to write") as lost:
        run_one("r0", tiny_spec, {"arm": "bn"}, str(run_dir), True)
    assert lost.value.fatal  # a full disk stops the grid: the next run could not be written
    assert rundir.run_state(run_dir) == "incomplete"  # not failed: the next `ablate` retrains it
    fillers[0].unlink()
    assert run_one("r0", tiny_spec, {"arm": "bn"}, str(run_dir), True)[1] == "completed"
