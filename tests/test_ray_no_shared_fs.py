"""Ray on a cluster whose nodes share no filesystem with the driver.

The head runs no tasks (0 CPUs); every run trains on a worker node started in its own mount
namespace with a tmpfs over the folder that holds the results, so that node cannot see (or
write) the driver's results tree: every run directory must come back through Ray.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bnbench.ablate.executor import ExecutorOptions, RunTask, open_executor
from bnbench.config.ablation import load_ablation
from bnbench.results import rundir
from bnbench.results.layout import run_path
from tests.support.grid import ABLATION, final_losses, write_ablation
from tests.support.ray_cluster import Cluster, in_scratch, private_mounts_work, ray_cluster

pytestmark = pytest.mark.slow

# Long enough to kill something midway through a run, short enough for a 2-core machine.
LONG = {**ABLATION, "overrides": {"training.steps": 240, "training.eval_every": 20}}


def _command(path: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(out), "-q",
            "--no-plots", *options]  # fmt: skip


def _ablate(path: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(path, out, *options), capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def shared_nothing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """A head with no CPUs and one private node of 2 CPUs; the folder it cannot see."""
    pytest.importorskip("ray")
    reason = private_mounts_work()
    if reason:
        pytest.skip(reason)
    hidden = tmp_path_factory.mktemp("hidden")
    # A lost node is noticed within ~3 s rather than Ray's default ~30 s.
    with ray_cluster(0, health_check_period_ms="1000", health_check_failure_threshold="3",
                     health_check_initial_delay_ms="1000") as cluster:  # fmt: skip
        cluster.add_node(2, private=hidden)
        yield cluster, hidden


def _same_numbers(got: Path, want: Path) -> None:
    a, b = final_losses(got), final_losses(want)
    assert a.keys() == b.keys() and len(a) == 4
    for run_id in b:
        assert a[run_id] == pytest.approx(b[run_id], rel=1e-6), run_id


def _states(results: Path) -> dict[str, str]:
    return {run.name: rundir.run_state(run) for run in (results / "runs").iterdir()}


def _started(results: Path) -> dict[str, str | None]:
    """When each finished run started training: a run trained again would start later."""
    found = {}
    for run in (results / "runs").iterdir():
        summary = rundir.read_summary(run)
        if summary is not None:
            found[run.name] = summary.started_at
    return found


def test_a_node_that_cannot_see_the_results_ships_every_run_back(tmp_path, shared_nothing):
    cluster, hidden = shared_nothing
    path = write_ablation(hidden, ABLATION)
    local = _ablate(path, hidden / "local", "--jobs", "1", "--save-models")
    assert local.returncode == 0, local.stderr
    done = _ablate(path, hidden / "ray", "--executor", "ray", "--address", cluster.address,
                   "--save-models")  # fmt: skip
    assert done.returncode == 0, done.stderr
    _same_numbers(hidden / "ray", hidden / "local")
    assert set(_states(hidden / "ray").values()) == {"completed"}
    for run in (hidden / "local" / "runs").iterdir():
        shipped = hidden / "ray" / "runs" / run.name
        names = sorted(p.relative_to(run) for p in run.rglob("*"))
        assert sorted(p.relative_to(shipped) for p in shipped.rglob("*")) == names
        assert (shipped / rundir.CONFIG).read_text() == (run / rundir.CONFIG).read_text()
        with zipfile.ZipFile(shipped / rundir.MODEL) as model:
            assert model.testzip() is None
    assert not [p for p in (hidden / "ray" / "runs").iterdir() if p.name.startswith(".")]
    assert not list((hidden / "ray" / ".leases").iterdir())
    assert cluster.nodes[0].listing(hidden) == []  # nothing of the grid on the node's side


def test_a_runs_steps_reach_the_driver_from_a_node_that_shares_nothing(shared_nothing):
    cluster, hidden = shared_nothing
    folder = hidden / "events"
    folder.mkdir()
    run = load_ablation(write_ablation(folder, ABLATION)).runs[0]
    results = folder / "r"
    task = RunTask(run.run_id, run.spec.model_dump(mode="json"), run.entry(),
                   str(run_path(results, run.run_id)), False, run.spec.backend)  # fmt: skip
    executor = open_executor(ExecutorOptions("ray", address=cluster.address), results)
    try:
        future, events = executor.submit(task), []
        deadline = time.monotonic() + 240
        while not any(kind == "step" and payload["step"] == payload["total"]
                      for kind, payload in events) and time.monotonic() < deadline:  # fmt: skip
            events += executor.events()
            time.sleep(0.2)
        assert future.result(timeout=60)[:2] == (run.run_id, "completed")
    finally:
        executor.close()
    steps = [payload["step"] for kind, payload in events if kind == "step"]
    assert steps and steps == sorted(steps) and steps[-1] == run.spec.training.steps, events
    assert {payload["run_id"] for _, payload in events} == {run.run_id}
    assert rundir.run_state(run_path(results, run.run_id)) == "completed"


def _wait_for(check, seconds: float, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"gave up waiting (exit {proc.returncode}): {err}")
        time.sleep(0.1)


def _training_on_node(run_ids: set[str]) -> bool:
    """Whether a run of `run_ids` is midway through training in a node's scratch folder."""
    return any(in_scratch(run_id) for run_id in run_ids)


def _finished(results: Path) -> int:
    runs = results / "runs"
    return sum(rundir.run_state(r) == "completed" for r in runs.iterdir()) if runs.is_dir() else 0


@pytest.fixture(scope="module")
def long_local(shared_nothing) -> Path:
    """The numbers of `LONG`, run locally."""
    _, hidden = shared_nothing
    folder = hidden / "long"
    folder.mkdir()
    path = write_ablation(folder, LONG)
    done = _ablate(path, folder / "local", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    return folder / "local"


def test_a_node_killed_mid_grid_and_the_same_command_completes_it(shared_nothing, long_local):
    cluster, hidden = shared_nothing
    folder = hidden / "node_kill"
    folder.mkdir()
    path, results = write_ablation(folder, LONG), folder / "r"
    run_ids = {run.run_id for run in load_ablation(path).runs}
    command = _command(path, results, "--executor", "ray", "--address", cluster.address,
                       "--jobs", "1")  # fmt: skip
    proc = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: _finished(results) >= 1, 240, proc)
    _wait_for(lambda: _training_on_node(run_ids - set(_started(results))), 120, proc)
    before = _started(results)
    cluster.nodes.pop(0).kill()  # the machine is lost, with the run it was training
    cluster.add_node(2, private=hidden)  # a replacement joins; the grid goes on there
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "left incomplete" in " ".join(err.split()), err
    assert sorted(_states(results).values()) == ["completed"] * 3 + ["incomplete"]

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert set(_states(results).values()) == {"completed"}
    _same_numbers(results, long_local)
    after = _started(results)
    assert {run: after[run] for run in before} == before  # finished runs were not trained again
    assert cluster.nodes[-1].listing(hidden) == []


def test_a_driver_killed_mid_grid_and_the_same_command_completes_it(shared_nothing, long_local):
    cluster, hidden = shared_nothing
    folder = hidden / "driver_kill"
    folder.mkdir()
    path, results = write_ablation(folder, LONG), folder / "r"
    run_ids = {run.run_id for run in load_ablation(path).runs}
    command = _command(path, results, "--executor", "ray", "--address", cluster.address,
                       "--jobs", "1")  # fmt: skip
    proc = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: _finished(results) >= 1, 240, proc)
    _wait_for(lambda: _training_on_node(run_ids - set(_started(results))), 120, proc)
    before = _started(results)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert set(_states(results).values()) <= {"completed", "incomplete"}

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert set(_states(results).values()) == {"completed"}
    _same_numbers(results, long_local)
    after = _started(results)
    assert {run: after[run] for run in before} == before  # finished runs were not trained again
    assert not [p for p in (results / "runs").iterdir() if p.name.startswith(".")]
    assert cluster.nodes[-1].listing(hidden) == []
