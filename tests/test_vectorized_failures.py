"""A failure inside a vectorized group is recorded where it belongs: on the one seed whose own
results failed (the others finish, with the numbers they have without it), or, when the program
the seeds share fails, on every seed, saying so and naming the seeds.

Both failures are real, in a real `bnbench ablate` on JAX: an I/O error injected into the write
of one seed's history (an audit hook, loaded into every process of the command, refuses that one
rename), and JAX's own check for infinities (`JAX_DEBUG_INFS`) raising inside the compiled group
program when one seed's loss overflows.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bnbench.config.ablation import load_ablation
from bnbench.results import rundir
from tests.support.grid import write_ablation
from tests.support.specs import JAX_SPEC

pytestmark = pytest.mark.slow

# Loaded into every Python process of the command (through PYTHONPATH): the rename that would
# put BNBENCH_TEST_FAIL_WRITE (a path ending) in place fails, as a failing disk would fail it.
_FAIL_ONE_WRITE = """
import errno, os, sys
_target = os.environ.get("BNBENCH_TEST_FAIL_WRITE")
if _target:
    def _hook(event, args):
        if event == "os.rename" and str(args[1]).endswith(_target):
            raise OSError(errno.EIO, "injected write error", str(args[1]))
    sys.addaudithook(_hook)
"""
SEEDS = {
    "name": "seeds",
    "base": "spec.yaml",
    "overrides": {"training.steps": 6, "training.eval_every": 2},
    "arms": {"bn": {"model.norm.kind": "batch"}},
    "seeds": [0, 1, 2],
}


def _ablate(path: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(out), "-q",
               "--no-plots", "--jobs", "1"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})  # fmt: skip


def _summary(run: Path) -> rundir.RunSummary:
    summary = rundir.read_summary(run)
    assert summary is not None, f"{run.name} is {rundir.run_state(run)}"
    return summary


def test_a_failure_writing_one_seeds_results_fails_that_seed_alone(tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_FAIL_ONE_WRITE)
    path = write_ablation(tmp_path, SEEDS, JAX_SPEC)
    runs = [run.run_id for run in load_ablation(path).runs]
    clean = _ablate(path, tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr

    broken = runs[1]
    done = _ablate(path, tmp_path / "r", PYTHONPATH=os.pathsep.join([str(hooks), os.getcwd()]),
                   BNBENCH_TEST_FAIL_WRITE=f"/{broken}/{rundir.HISTORY}")  # fmt: skip
    assert done.returncode == 1, done.stderr
    line = " ".join(done.stderr.split())
    assert f"1 run(s) failed (traceback.txt in each): {broken}: OSError:" in line
    assert "injected write error" in line
    failed = _summary(tmp_path / "r" / "runs" / broken)
    assert failed.status == "failed" and failed.vectorized is True
    assert failed.error is not None and "injected write error" in failed.error
    assert "GroupProgramError" not in failed.error  # its own failure, not the group's
    assert failed.steps_done == 2  # it stopped at its first evaluation point
    traceback = (tmp_path / "r" / "runs" / broken / rundir.TRACEBACK).read_text()
    assert "Traceback" in traceback and "write_history" in traceback
    for run_id in (runs[0], runs[2]):  # the others went on, as if it had never been there
        summary = _summary(tmp_path / "r" / "runs" / run_id)
        assert (summary.status, summary.vectorized_reason) == ("completed", "group of 3 seeds")
        want = _summary(tmp_path / "clean" / "runs" / run_id)
        assert summary.final == pytest.approx(want.final, rel=1e-6), run_id
        assert summary.steps_done == 6


def test_a_failure_of_the_shared_program_fails_every_seed_naming_the_group(tmp_path):
    # A regression whose unscaled inputs overflow SGD for seed 3's initial weights only (see
    # tests/test_vectorized.py); with JAX_DEBUG_INFS the compiled program raises at the overflow.
    spec = copy.deepcopy(JAX_SPEC)
    spec["dataset"] = {"name": "two_scale", "num_samples": 200, "validation_split": 0.25}
    ablation = {**SEEDS, "seeds": [2, 3], "arms": {"plain": {"model.norm.kind": "none"}},
                "overrides": {"training.steps": 8, "training.eval_every": 4,
                              "training.learning_rate": 1e-3,
                              "training.divergence_factor": 1e30}}  # fmt: skip
    path = write_ablation(tmp_path, ablation, spec)
    done = _ablate(path, tmp_path / "r", JAX_DEBUG_INFS="1")
    assert done.returncode == 1, done.stderr
    shared = ("GroupProgramError: the program shared by a vectorized group of 2 seeds "
              "(seeds 2, 3) failed: FloatingPointError:")  # fmt: skip
    assert "2 run(s) failed" in done.stderr
    for run in load_ablation(path).runs:
        summary = _summary(tmp_path / "r" / "runs" / run.run_id)
        assert summary.status == "failed" and summary.error is not None
        assert summary.error.startswith(shared), summary.error
        assert "infinit" in summary.error or "(inf)" in summary.error
        assert f"{run.run_id}: {shared}" in " ".join(done.stderr.split())
        traceback = (tmp_path / "r" / "runs" / run.run_id / rundir.TRACEBACK).read_text()
        assert "FloatingPointError" in traceback  # the program's own traceback
