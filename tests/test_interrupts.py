"""Stopping an ablation: Ctrl-C once, Ctrl-C twice, a worker killed; then resuming it.

Each test runs `bnbench ablate` in a session of its own and signals its whole process group, as a
terminal does on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bnbench.results import rundir
from tests.support.grid import ABLATION, write_ablation

pytestmark = pytest.mark.slow


def _start(tmp_path: Path, grid: dict, jobs: int) -> tuple[subprocess.Popen[str], list[str]]:
    command = [sys.executable, "-m", "bnbench", "ablate", str(write_ablation(tmp_path, grid)),
               "--out", str(tmp_path / "r"), "--jobs", str(jobs), "-q", "--no-plots"]  # fmt: skip
    proc = subprocess.Popen(command, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    return proc, command


def _runs(results: Path) -> dict[str, str]:
    runs = results / "runs"
    return {run.name: rundir.run_state(run) for run in runs.iterdir()} if runs.exists() else {}


def _wait_for_history(proc: subprocess.Popen[str], results: Path) -> None:
    """Wait until a run is training (it has written its history), or fail the test."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        runs = results / "runs"
        if runs.exists() and any((run / rundir.HISTORY).exists() for run in runs.iterdir()):
            return
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"no run got going:\n{proc.communicate()[1]}")


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"still running {timeout} s after the signal:\n{err}")
    assert "Traceback" not in out + err, err
    return proc.returncode, err


def test_one_ctrl_c_lets_the_running_run_finish_and_launches_no_other(tmp_path):
    grid = {**ABLATION, "overrides": {"training.steps": 300, "training.eval_every": 20}}
    proc, _ = _start(tmp_path, grid, jobs=1)
    _wait_for_history(proc, tmp_path / "r")
    started = _runs(tmp_path / "r")
    os.killpg(proc.pid, signal.SIGINT)
    code, err = _finish(proc, timeout=240)
    assert code == 130, err
    assert "stopping: waiting for 1 running run; Ctrl-C again to stop it now" in err
    line = " ".join(err.split())
    assert "runs not finished; to resume, run the same command: bnbench ablate" in line
    runs = _runs(tmp_path / "r")
    assert runs.keys() == started.keys()  # nothing launched after the Ctrl-C
    assert set(runs.values()) == {"completed"}  # and what was running finished
    assert len(runs) < 4


def test_two_ctrl_c_stop_the_running_runs_and_the_same_command_resumes(tmp_path):
    grid = {**ABLATION, "seeds": [0], "overrides": {"training.steps": 1000,
                                                    "training.eval_every": 20}}  # fmt: skip
    proc, command = _start(tmp_path, grid, jobs=2)
    _wait_for_history(proc, tmp_path / "r")
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    stopped_at = time.monotonic()
    code, err = _finish(proc, timeout=60)
    assert code == 130, err
    assert time.monotonic() - stopped_at < 30
    assert "stopping now: terminating" in err and "stopped midway, left incomplete" in err
    runs = _runs(tmp_path / "r")
    assert set(runs.values()) == {"incomplete"}, runs  # never failed
    for run in (tmp_path / "r" / "runs").iterdir():
        if (run / rundir.INCOMPLETE).exists():
            assert (run / rundir.INCOMPLETE).read_text() == "interrupted by the user\n"

    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert set(_runs(tmp_path / "r").values()) == {"completed"}
    assert len(_runs(tmp_path / "r")) == 2


def _worker_pids(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if stat.rsplit(")", 1)[1].split()[1] == str(parent) and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers through /proc")
def test_a_killed_worker_leaves_its_run_incomplete(tmp_path):
    grid = {**ABLATION, "seeds": [0], "overrides": {"training.steps": 1000,
                                                    "training.eval_every": 20}}  # fmt: skip
    proc, _ = _start(tmp_path, grid, jobs=1)
    _wait_for_history(proc, tmp_path / "r")
    for pid in _worker_pids(proc.pid):
        os.kill(pid, signal.SIGKILL)  # what the out-of-memory killer does
    code, err = _finish(proc, timeout=60)
    assert code == 2, err
    assert "worker process died" in err and "re-run the same command" in " ".join(err.split())
    assert set(_runs(tmp_path / "r").values()) == {"incomplete"}


# --- the two private handles stopping relies on, checked against the libraries themselves --------


def test_terminate_stops_a_busy_pool_worker():
    # Before Python 3.14 `terminate` reads the pool's private `_processes`; a change of the
    # standard library fails here, not in a user's Ctrl-C.
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from bnbench.ablate.interrupts import terminate

    pool = ProcessPoolExecutor(max_workers=1)
    try:
        busy = pool.submit(time.sleep, 60)
        deadline = time.monotonic() + 60
        while not busy.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not hasattr(pool, "terminate_workers"):
            workers = list(pool._processes.values())
            assert workers and all(hasattr(w, "terminate") for w in workers), pool._processes
        terminate(pool)
        with pytest.raises(BrokenProcessPool):  # not the 60 s sleep's end: a TimeoutError
            busy.result(timeout=30)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def test_a_local_submitit_job_hands_over_its_controller(tmp_path):
    # submitit offers no public handle on a local job's process (its `cancel` sends SIGINT,
    # which our controllers ignore); `local_controller` reads the private one.
    submitit = pytest.importorskip("submitit")
    from bnbench.ablate.slurm_executor import local_controller

    executor = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="local")
    executor.update_parameters(timeout_min=5)
    job = executor.submit(time.sleep, 60)
    process = local_controller(job)
    assert isinstance(process, subprocess.Popen), type(process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) != 0
    assert local_controller(object()) is None  # not a local job: left to scancel
