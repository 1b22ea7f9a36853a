"""Executors: the same runs, the same numbers, through Ray (a real local cluster) and SLURM
(submitit's local executor; a fake `sbatch` for the job script a real cluster would get)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.ablate.executor import ExecutorOptions, open_executor
from bnbench.ablate.runner import run_ablation
from bnbench.cli import app
from bnbench.config.ablation import load_ablation
from bnbench.errors import SpecError
from bnbench.results import rundir
from tests.support.grid import ABLATION, final_losses, write_ablation
from tests.support.ray_cluster import free_port, in_scratch
from tests.support.ray_cluster import ray_cluster as start_ray_cluster

cli = CliRunner()


def _ablate(path: Path, out: Path, *options: str,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:  # fmt: skip
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(out), "-q",
               "--no-plots", *options]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _same_numbers(got: Path, want: Path) -> None:
    a, b = final_losses(got), final_losses(want)
    assert a.keys() == b.keys() and len(a) == 4
    for run_id in b:
        assert a[run_id] == pytest.approx(b[run_id], rel=1e-6), run_id


@pytest.fixture(scope="module")
def local_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The grid of `ABLATION`, run by the local executor: the numbers to match."""
    folder = tmp_path_factory.mktemp("local")
    run_ablation(load_ablation(write_ablation(folder, ABLATION)), folder / "r", jobs=2)
    return folder / "r"


# --- options and engines that are not there ----------------------------------------------------


def test_an_unknown_executor_is_refused(tmp_path):
    result = cli.invoke(app, ["ablate", str(write_ablation(tmp_path, ABLATION)), "--out",
                              str(tmp_path / "r"), "--executor", "dask"])  # fmt: skip
    assert result.exit_code == 2
    assert "Invalid value for '--executor'" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--address", "auto"], "--address applies to --executor ray, not to --executor local"),
        (["--executor", "ray", "--partition", "gpu"], "--partition applies to --executor slurm"),
        (["--cpus-per-run", "2"], "--cpus-per-run applies to --executor ray and slurm"),
        (["--executor", "slurm", "--slurm-option", "account"], "expects key=value"),
        (["--executor", "ray", "--gpus-per-run", "-1"], "--gpus-per-run must be 0 or more"),
    ],
)
def test_options_of_another_executor_are_refused(tmp_path, options, message):
    result = cli.invoke(app, ["ablate", str(write_ablation(tmp_path, ABLATION)), "--out",
                              str(tmp_path / "r"), *options])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("name", "module", "extra"), [("ray", "ray", "ray"),
                                                       ("slurm", "submitit", "slurm")])  # fmt: skip
def test_a_missing_engine_says_what_to_install(tmp_path, monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # `import` raises ImportError
    result = cli.invoke(app, ["ablate", str(write_ablation(tmp_path, ABLATION)), "--out",
                              str(tmp_path / "r"), "--executor", name])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f'pip install "bnbench[{extra}]"' in result.output
    assert not (tmp_path / "r").exists()


def test_a_ray_address_that_refuses_is_an_error_within_seconds(tmp_path):
    pytest.importorskip("ray")
    # An error, not a wait for a cluster that never answers: bnbench tries the address with a
    # plain socket first (`CONNECT_TIMEOUT_S`); the timeout here only stops a hang, it times
    # nothing (this machine may be loaded).
    done = _ablate(write_ablation(tmp_path, ABLATION), tmp_path / "r", "--executor", "ray",
                   "--address", f"127.0.0.1:{free_port()}", timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot connect" in done.stderr and "ray start --head" in done.stderr
    assert not (tmp_path / "r").exists()


# --- Ray: a real cluster on this machine -------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A Ray head with 2 CPUs on this machine; its address."""
    pytest.importorskip("ray")
    with start_ray_cluster(2) as cluster:
        yield cluster.address


@pytest.mark.slow
def test_ray_runs_the_grid_with_the_local_numbers(tmp_path, ray_cluster, local_results):
    done = _ablate(write_ablation(tmp_path, ABLATION), tmp_path / "r", "--executor", "ray",
                   "--address", ray_cluster)  # fmt: skip
    assert done.returncode == 0, done.stderr
    _same_numbers(tmp_path / "r", local_results)
    assert not list((tmp_path / "r" / ".leases").iterdir())


@pytest.mark.slow
def test_a_cluster_without_gpus_refuses_gpu_runs_at_once(tmp_path, ray_cluster):
    # Refused before any run is scheduled (a run waiting for a GPU would wait forever); the
    # timeout only stops such a wait, it times nothing.
    done = _ablate(write_ablation(tmp_path, ABLATION), tmp_path / "r", "--executor", "ray",
                   "--address", ray_cluster, "--gpus-per-run", "1", timeout=300)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--gpus-per-run 1: the Ray cluster at" in done.stderr and "has no GPU" in done.stderr
    assert not (tmp_path / "r").exists()


def _ray_workers(run_ids: set[str]) -> dict[int, str]:
    """Ray workers running one of `run_ids` (Ray titles them `ray::<task name>`): pid -> run."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, ValueError):
            continue
        name = title.removeprefix("ray::").strip()
        if title.startswith("ray::") and name in run_ids:
            found[int(entry.name)] = name
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds workers via /proc")
def test_a_killed_ray_worker_leaves_its_run_incomplete_and_resume_finishes_it(
    tmp_path, ray_cluster
):
    grid = {**ABLATION, "overrides": {"training.steps": 400, "training.eval_every": 20}}
    path, results = write_ablation(tmp_path, grid), tmp_path / "r"
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(results),
               "-q", "--no-plots", "--executor", "ray", "--address", ray_cluster,
               "--jobs", "1"]  # fmt: skip
    proc = subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:  # a hang (or a failed assertion) must not leave the command and its pipes behind
        run_ids = {run.run_id for run in load_ablation(path).runs}
        deadline, killed = time.monotonic() + 240, None
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            for pid, run_id in _ray_workers(run_ids).items():
                if in_scratch(run_id):  # midway through training (in the node's scratch)
                    killed = pid
                    os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer or a lost node
            time.sleep(0.02)
        _, err = proc.communicate(timeout=600)  # a hang guard: a loaded machine is slow
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert killed is not None, err
    assert proc.returncode == 1, err
    assert "its Ray worker died" in err and "left incomplete" in " ".join(err.split())
    states = {run.name: rundir.run_state(run) for run in (results / "runs").iterdir()}
    assert sorted(states.values()) == ["completed"] * 3 + ["incomplete"]  # the grid went on

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert {rundir.run_state(run) for run in (results / "runs").iterdir()} == {"completed"}


# --- SLURM through submitit --------------------------------------------------------------------


@pytest.mark.slow
def test_slurm_jobs_on_submitits_local_cluster_give_the_local_numbers(tmp_path, local_results):
    pytest.importorskip("submitit")
    done = _ablate(write_ablation(tmp_path, ABLATION), tmp_path / "r", "--executor", "slurm",
                   "--slurm-cluster", "local", "--jobs", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr
    _same_numbers(tmp_path / "r", local_results)
    assert (tmp_path / "r" / ".slurm").is_dir()  # submitit's folder, hidden in the tree
    assert (tmp_path / "r" / "summary.csv").exists()


_FAKE_SBATCH = """#!/bin/sh
cp "$1" "{folder}/script.$$.sh"
echo "Submitted batch job 4242"
"""


def test_a_real_cluster_gets_one_job_array_with_the_options_asked_for(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(_FAKE_SBATCH.format(folder=tmp_path))
    for name in ("srun", "sacct", "scancel", "squeue"):
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    options = ExecutorOptions("slurm", partition="gpu", time_minutes=30, cpus_per_run=4,
                              gpus_per_run=1, slurm_options={"account": "ml"})  # fmt: skip
    executor = open_executor(options, tmp_path / "r")
    try:
        tasks = [_task(tmp_path, i) for i in range(3)]
        futures = executor.submit_many(tasks)
        assert len(futures) == 3 and not any(f.done() for f in futures)
    finally:
        executor.close()
    (script,) = tmp_path.glob("script.*.sh")
    lines = set(script.read_text().splitlines())
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --account=ml", "#SBATCH --array=0-2%3",
                 "#SBATCH --ntasks-per-node=1", "#SBATCH --job-name=bnbench"):  # fmt: skip
        assert line in lines, script.read_text()
    assert f"#SBATCH --output={tmp_path}/r/.slurm/%A_%a/%A_%a_0_log.out" in lines
    assert not (tmp_path / "r" / "runs").exists()  # nothing ran


def _task(tmp_path: Path, index: int) -> object:
    from bnbench.ablate.executor import RunTask

    return RunTask(f"run{index}", {}, {}, str(tmp_path / "r" / "runs" / f"run{index}"), False,
                   "tensorflow")  # fmt: skip


def test_slurm_without_a_cluster_says_so(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    with pytest.raises(SpecError, match=r"no SLURM here .*--slurm-cluster local"):
        open_executor(ExecutorOptions("slurm"), tmp_path / "r")
    assert not (tmp_path / "r").exists()
