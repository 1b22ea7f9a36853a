"""Killing only the `bnbench ablate` parent (`kill -9 PID`, not its process group) leaves no
worker behind: a real subprocess, a real SIGKILL, /proc read for what is still alive; the re-run
then trains each unfinished run once, to the same numbers as an uninterrupted ablation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bnbench.ablate.leases import LEASES_DIR, Leases, read_leases
from bnbench.results import rundir
from bnbench.results.layout import run_path
from tests.support.grid import ABLATION, final_losses, write_ablation
from tests.support.leases import write_lease

# Loaded into every Python process of the test's `bnbench ablate` (through PYTHONPATH): logs the
# run id each time a run's summary is written (a run trained to its end).
_FINISHES = """
import os, sys
_log = os.environ.get("BNBENCH_TEST_FINISHES")
if _log:
    _fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    def _hook(event, args):
        if event == "os.rename" and str(args[1]).endswith("/summary.json") and (
                "/runs/" in str(args[1])):
            os.write(_fd, (os.path.basename(os.path.dirname(str(args[1]))) + "\\n").encode())
    sys.addaudithook(_hook)
"""
GRID = {**ABLATION, "overrides": {"training.steps": 300, "training.eval_every": 20}}


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state first), or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _alive_in_session(session: int) -> list[int]:
    """Processes of `session` still alive (a zombie is dead: it only awaits its reaper)."""
    alive = []
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields is not None and int(fields[3]) == session and fields[0] != "Z":
            alive.append(int(entry))
    return alive


def _children(pid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and (f := _stat(int(e))) is not None and int(f[1]) == pid]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, float]:
    """The final losses of the grid, trained by one uninterrupted `ablate`."""
    folder = tmp_path_factory.mktemp("reference")
    path = write_ablation(folder, GRID)
    done = subprocess.run([sys.executable, "-m", "bnbench", "ablate", str(path), "--out",
                           str(folder / "r"), "-q", "--no-plots", "--jobs", "2"],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return final_losses(folder / "r")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("executor", [
    [],
    # submitit's job controllers are children of `ablate`, its jobs theirs: the jobs end on the
    # lease check (their launcher is gone), not on their parent's death.
    ["--executor", "slurm", "--slurm-cluster", "local"],
], ids=["local", "slurm-local"])  # fmt: skip
def test_killing_only_the_parent_leaves_no_worker_and_no_run_trained_twice(tmp_path, reference,
                                                                           executor):  # fmt: skip
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_FINISHES)
    finishes = tmp_path / "finishes.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), os.getcwd()]),
           "BNBENCH_TEST_FINISHES": str(finishes)}  # fmt: skip
    path, results = write_ablation(tmp_path, GRID), tmp_path / "r"
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(results),
               "-q", "--no-plots", "--jobs", "2", *executor]  # fmt: skip
    parent = subprocess.Popen(command, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 400
        while len(list((results / "runs").glob("*/history.csv"))) < 2:
            assert time.monotonic() < deadline, "no two runs got going"
            assert parent.poll() is None, "the ablation ended before it was killed"
            time.sleep(0.05)
        workers = _children(parent.pid)
        assert len(workers) >= 2  # the pool's workers (and multiprocessing's helpers)
        os.kill(parent.pid, signal.SIGKILL)  # the parent only, not its group
        parent.wait()
        deadline = time.monotonic() + 20
        while _alive_in_session(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        orphans = _alive_in_session(parent.pid)
        assert orphans == [], f"orphaned workers still running: {orphans}"

        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, again.stderr
    finally:
        with_pid = _alive_in_session(parent.pid)
        if with_pid:
            os.killpg(parent.pid, signal.SIGKILL)
    trained = Counter(finishes.read_text().split())
    assert len(trained) == 4 and set(trained.values()) == {1}, trained
    assert read_leases(results) == {}

    assert final_losses(results) == reference


def test_stale_leases_of_finished_runs_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from bnbench.ablate import leases as leases_module

    here = leases_module._SPACE
    for run_id, status in [("done", "completed"), ("broke", "failed"), ("half", None),
                           ("live", "completed")]:  # fmt: skip
        run_dir = run_path(tmp_path, run_id)
        rundir.begin(run_dir, {"name": run_id})
        if status is not None:
            rundir.finish(run_dir, rundir.RunSummary(run_id=run_id, status=status))
        pid = os.getpid() if run_id == "live" else dead.pid
        write_lease(tmp_path, run_id, host="here", pid=pid, heartbeat_age=0.0, space=here)
    with Leases(tmp_path):
        left = sorted(os.listdir(tmp_path / LEASES_DIR))
    # A finished run's stale lease goes; an unfinished run's stays (to be taken over, so that
    # `status` can say so); a live process's lease is never touched.
    assert left == ["half.0.json", "live.0.json"]
