"""Vectorized groups of seeds on Ray (a real cluster on 127.0.0.1) and SLURM (submitit's local
executor): a group is one task or job, every seed's run directory comes back, and the numbers
are the local executor's.

The runs train on JAX (so that groups form) in worker processes; the suite's own process stays
on TensorFlow and only reads the results.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bnbench.ablate.runner import run_ablation
from bnbench.config.ablation import load_ablation
from bnbench.results import rundir
from tests.support.grid import write_ablation
from tests.support.ray_cluster import Node, private_mounts_work, ray_cluster
from tests.support.specs import GROUPED_SEEDS, JAX_SPEC

pytestmark = pytest.mark.slow

# Two cells of three seeds: two groups of three on two workers, whatever the executor.
SEEDS = GROUPED_SEEDS


def _ablate(path: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(out), "-q",
               "--no-plots", "--jobs", "2", *options]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def _summaries(results: Path) -> dict[str, rundir.RunSummary]:
    found = {}
    for run in sorted((results / "runs").iterdir()):
        summary = rundir.read_summary(run)
        assert summary is not None, f"{run.name} is {rundir.run_state(run)}"
        found[run.name] = summary
    return found


def _trained_in_groups_with_the_local_numbers(results: Path, local: Path) -> None:
    got, want = _summaries(results), _summaries(local)
    assert got.keys() == want.keys() and len(got) == 6
    for run_id, summary in got.items():
        assert (summary.status, summary.vectorized, summary.vectorized_reason) == (
            "completed", True, "group of 3 seeds"), run_id  # fmt: skip
        assert summary.final == pytest.approx(want[run_id].final, rel=1e-6), run_id
    assert not list((results / ".leases").iterdir())
    assert not [p.name for p in (results / "runs").iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the grids are written: hidden from a private Ray node where one can be started."""
    return tmp_path_factory.mktemp("hidden")


@pytest.fixture(scope="module")
def local(folder: Path) -> Path:
    """The grid trained by the local executor on two workers: the numbers to match."""
    (folder / "local").mkdir()
    path = write_ablation(folder / "local", SEEDS, JAX_SPEC)
    run_ablation(load_ablation(path), folder / "local" / "r", jobs=2)
    return folder / "local" / "r"


@pytest.fixture(scope="module")
def ray_nodes(folder: Path) -> Iterator[tuple[str, Node | None]]:
    """A Ray cluster's address, and its one worker node when that node cannot see `folder`.

    Where private mount namespaces work (root, util-linux) the head runs no tasks and the one
    worker node sees a tmpfs over `folder`, as a node sharing no filesystem with the driver;
    elsewhere a head of 2 CPUs runs the tasks (which still ship their runs back).
    """
    pytest.importorskip("ray")
    private = private_mounts_work() is None
    with ray_cluster(0 if private else 2) as cluster:
        node = cluster.add_node(2, private=folder) if private else None
        yield cluster.address, node


def test_ray_trains_each_group_as_one_task_and_ships_every_seed_back(folder, local, ray_nodes):
    address, node = ray_nodes
    (folder / "ray").mkdir()
    path = write_ablation(folder / "ray", SEEDS, JAX_SPEC)
    done = _ablate(path, folder / "ray" / "r", "--executor", "ray", "--address", address)
    assert done.returncode == 0, done.stderr
    _trained_in_groups_with_the_local_numbers(folder / "ray" / "r", local)
    for run in (folder / "ray" / "r" / "runs").iterdir():  # the same files as a local run's
        alone = local / "runs" / run.name
        assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in alone.iterdir())
    if node is not None:
        assert node.listing(folder) == []  # nothing of the grid on the node's side


def test_slurm_jobs_train_each_group_as_one_job(folder, local):
    pytest.importorskip("submitit")
    (folder / "slurm").mkdir()
    path = write_ablation(folder / "slurm", SEEDS, JAX_SPEC)
    done = _ablate(path, folder / "slurm" / "r", "--executor", "slurm", "--slurm-cluster",
                   "local")  # fmt: skip
    assert done.returncode == 0, done.stderr
    _trained_in_groups_with_the_local_numbers(folder / "slurm" / "r", local)
    jobs = [p for p in (folder / "slurm" / "r" / ".slurm").iterdir() if p.name.isdigit()]
    assert len(jobs) == 2  # one job per group of three seeds, not one per run
