"""Vectorized groups in a grid: forming units of work, `plan`, resume after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from bnbench.ablate.groups import describe_units, unit_of, units
from bnbench.ablate.runner import run_ablation
from bnbench.cli import app
from bnbench.config.ablation import load_ablation
from bnbench.errors import SpecError
from bnbench.results import rundir
from tests.support.grid import write_ablation
from tests.support.specs import GROUPED_SEEDS, JAX_SPEC, TINY_SPEC

SEEDS = GROUPED_SEEDS


def test_the_seeds_of_one_arm_and_cell_form_a_group_up_to_the_size_cap(tmp_path):
    ablation = load_ablation(write_ablation(tmp_path, SEEDS, JAX_SPEC))
    found = units(ablation.runs)
    assert [(u.runs[0].arm, [r.seed for r in u.runs], u.reason) for u in found] == [
        ("no_bn", [0, 1, 2], None), ("bn", [0, 1, 2], None)]  # fmt: skip
    capped = units(ablation.runs, 2)
    assert [([r.seed for r in u.runs], u.reason) for u in capped] == [
        ([0, 1], None), ([2], "a group of one seed"), ([0, 1], None),
        ([2], "a group of one seed")]  # fmt: skip
    # Enough groups for every worker: 2 cells on 4 workers split each cell in two.
    assert [len(u.runs) for u in units(ablation.runs, 16, jobs=2)] == [3, 3]
    assert [len(u.runs) for u in units(ablation.runs, 16, jobs=4)] == [2, 1, 2, 1]
    alone = units(ablation.runs, 1)
    assert len(alone) == 6 and {u.reason for u in alone} == {"a group of one seed (--group-size 1)"}
    assert unit_of(ablation.runs, 2) == {r.run_id: g for r, g in zip(
        ablation.runs, ["g1", "g1", "-", "g2", "g2", "-"], strict=True)}  # fmt: skip
    with pytest.raises(SpecError, match="--group-size must be at least 1, got 0"):
        units(ablation.runs, 0)


def test_runs_that_cannot_group_stay_alone_with_the_reason(tmp_path):
    ablation = load_ablation(write_ablation(tmp_path, SEEDS, TINY_SPEC))  # TensorFlow
    found = units(ablation.runs)
    assert len(found) == 6
    assert {u.reason for u in found} == {"backend tensorflow: only JAX trains seeds as one program"}
    assert describe_units(ablation.runs, 16) == [
        "6 runs train alone: backend tensorflow: only JAX trains seeds as one program"]


def test_plan_shows_the_groups_and_refuses_a_bad_group_size(tmp_path):
    path = write_ablation(tmp_path, SEEDS, JAX_SPEC)
    shown = CliRunner().invoke(app, ["plan", str(path)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "2 vectorized groups of seeds (up to 3 seeds each, --group-size 16)" in shown.output
    assert " g2 " in shown.output
    bad = CliRunner().invoke(app, ["ablate", str(path), "--out", str(tmp_path / "out"),
                                   "--group-size", "0"])  # fmt: skip
    assert bad.exit_code != 0 and "--group-size must be at least 1, got 0" in bad.output
    assert not (tmp_path / "out").exists()


def _states(results) -> dict[str, tuple[str, bool | None, str | None]]:
    found = {}
    for run_dir in sorted((results / "runs").iterdir()):
        summary = rundir.read_summary(run_dir)
        found[run_dir.name] = ("incomplete", None, None) if summary is None else (
            summary.status, summary.vectorized, summary.vectorized_reason)  # fmt: skip
    return found


def test_a_group_is_one_unit_and_a_rerun_trains_only_its_unfinished_seeds(tmp_path):
    spec = {**SEEDS, "arms": {"bn": {"model.norm.kind": "batch"}}, "seeds": [0, 1, 2, 3]}
    ablation = load_ablation(write_ablation(tmp_path, spec, JAX_SPEC))
    results = tmp_path / "r"
    outcome = run_ablation(ablation, results, jobs=1)  # one worker: the cell stays one group
    assert sorted(outcome.statuses.values()) == ["completed"] * 4
    assert set(_states(results).values()) == {("completed", True, "group of 4 seeds")}
    # What a kill between the seeds' last writes leaves: two seeds finished, two not.
    runs = [results / "runs" / run.run_id for run in ablation.runs]
    before = {run: (run / rundir.SUMMARY).stat().st_mtime_ns for run in runs}
    finals = {run: rundir.read_summary(run).final for run in runs}  # type: ignore[union-attr]
    for run in runs[1:3]:
        rundir.mark_interrupted(run)
    outcome = run_ablation(ablation, results, jobs=1)  # one worker: the cell stays one group
    assert sorted(outcome.skipped) == sorted(run.name for run in (runs[0], runs[3]))
    states = _states(results)
    assert [states[run.name][2] for run in runs] == ["group of 4 seeds", "group of 2 seeds",
                                                     "group of 2 seeds", "group of 4 seeds"]
    for run in (runs[0], runs[3]):  # untouched
        assert (run / rundir.SUMMARY).stat().st_mtime_ns == before[run]
    for run in runs[1:3]:  # the same seeds in a smaller group: the same numbers
        final = rundir.read_summary(run).final  # type: ignore[union-attr]
        assert final == pytest.approx(finals[run], rel=1e-5)


def test_kill_minus_nine_mid_group_leaves_its_seeds_incomplete_and_a_rerun_finishes(tmp_path):
    spec = {**SEEDS, "overrides": {"training.steps": 400, "training.eval_every": 20},
            "arms": {"bn": {"model.norm.kind": "batch"}}, "seeds": [0, 1]}  # fmt: skip
    path = write_ablation(tmp_path, spec, JAX_SPEC)
    results = tmp_path / "killed"
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "-q", "--no-plots",
               "--jobs", "1", "--out", str(results)]  # fmt: skip
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline:  # until both seeds have written history
            runs = list((results / "runs").glob("*")) if (results / "runs").exists() else []
            if len(runs) == 2 and all((r / rundir.HISTORY).exists() for r in runs):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the group never started training")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert set(_states(results).values()) == {("incomplete", None, None)}
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert set(_states(results).values()) == {("completed", True, "group of 2 seeds")}
