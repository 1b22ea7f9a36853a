"""Ctrl-C while a vectorized group of seeds trains: a real SIGINT to a real `bnbench ablate` on JAX,
sent to its whole process group as a terminal sends it.

When the signal lands is chosen, not raced: an audit hook loaded into every process of the
command (through PYTHONPATH) holds the worker at one rename of one seed's files, says so in a
file, and waits (for a go-ahead file, or until it is killed). Then the command must exit with
the usual interrupted message and code, leave no worker behind and no lease held, mark nothing
completed that did not finish, and a re-run must train only the unfinished seeds, to the numbers
of an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bnbench.ablate.leases import read_leases
from bnbench.ablate.runner import run_ablation
from bnbench.config.ablation import load_ablation
from bnbench.results import rundir
from tests.support.grid import write_ablation
from tests.support.specs import JAX_SPEC

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]

_PAUSE = """
import os, sys, time
_at = os.environ.get("BNBENCH_TEST_PAUSE_AT")
if _at:
    def _hook(event, args):
        if event != "os.rename" or not str(args[1]).endswith(_at):
            return
        go = os.environ.get("BNBENCH_TEST_GO")
        if go and os.path.exists(go):
            return
        open(os.environ["BNBENCH_TEST_PAUSED"], "w").close()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not (go and os.path.exists(go)):
            time.sleep(0.05)
    sys.addaudithook(_hook)
"""
GRID = {
    "name": "seeds",
    "base": "spec.yaml",
    "overrides": {"training.steps": 40, "training.eval_every": 10},
    "arms": {"bn": {"model.norm.kind": "batch"}},
    "seeds": [0, 1, 2, 3],
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, float]]:
    """Each run's final numbers from one uninterrupted ablation (the four seeds as one group)."""
    folder = tmp_path_factory.mktemp("reference")
    outcome = run_ablation(load_ablation(write_ablation(folder, GRID, JAX_SPEC)), folder / "r",
                           jobs=1)  # fmt: skip
    assert sorted(outcome.statuses.values()) == ["completed"] * 4
    return {run.name: _summary(run).final for run in (folder / "r" / "runs").iterdir()}


def _summary(run: Path) -> rundir.RunSummary:
    summary = rundir.read_summary(run)
    assert summary is not None, f"{run.name} is {rundir.run_state(run)}"
    return summary


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _alive_in_session(session: int) -> list[int]:
    """Processes of `session` still alive (a zombie only awaits its reaper)."""
    alive = []
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields is not None and int(fields[3]) == session and fields[0] != "Z":
            alive.append(int(entry))
    return alive


class _Ablate:
    """`bnbench ablate` of GRID in its own session, held at the rename of `pause_at`."""

    def __init__(self, tmp_path: Path, pause_at: str, *options: str) -> None:
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(_PAUSE)
        self.path = write_ablation(tmp_path, GRID, JAX_SPEC)
        self.results = tmp_path / "r"
        self.paused, self.go = tmp_path / "paused", tmp_path / "go"
        self.command = [sys.executable, "-m", "bnbench", "ablate", str(self.path), "--out",
                        str(self.results), "-q", "--no-plots", "--jobs", "1", *options]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), os.getcwd()]),
               "BNBENCH_TEST_PAUSE_AT": pause_at, "BNBENCH_TEST_PAUSED": str(self.paused),
               "BNBENCH_TEST_GO": str(self.go)}  # fmt: skip
        self.proc = subprocess.Popen(self.command, env=env, start_new_session=True, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    def wait_until_paused(self) -> None:
        deadline = time.monotonic() + 400
        while not self.paused.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the group never got there:\n{self.proc.communicate()[1]}")
            time.sleep(0.05)

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running {timeout} s after Ctrl-C:\n{self.proc.communicate()[1]}")
        assert "Traceback" not in err, err
        deadline = time.monotonic() + 20
        while _alive_in_session(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        orphans = _alive_in_session(self.proc.pid)
        if orphans:
            self.kill()
        assert orphans == [], f"worker processes left running: {orphans}"
        return self.proc.returncode, " ".join(err.split())

    def kill(self) -> None:
        if _alive_in_session(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def states(self) -> dict[str, str]:
        runs = self.results / "runs"
        return {run.name: rundir.run_state(run) for run in runs.iterdir()} if runs.exists() else {}

    def resume(self) -> None:
        """The same command again, without the hook's pause."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BNBENCH_TEST_")}
        done = subprocess.run(self.command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr


def _same_numbers(results: Path, reference: dict[str, dict[str, float]]) -> None:
    # Another group size than the reference's: equal within the vectorized path's tolerance
    # (tests/test_vectorized.py: batched kernels may round differently).
    for run_id, final in reference.items():
        assert _summary(results / "runs" / run_id).final == pytest.approx(final, rel=1e-5), run_id


def test_one_ctrl_c_mid_group_lets_the_group_finish_and_launches_no_other(tmp_path, reference):
    runs = [run.run_id for run in load_ablation(write_ablation(tmp_path, GRID, JAX_SPEC)).runs]
    # Groups of two seeds on one worker: seeds 0 and 1 first, then 2 and 3.
    ablate = _Ablate(tmp_path, f"/{runs[0]}/{rundir.HISTORY}", "--group-size", "2")
    ablate.wait_until_paused()  # the first group is at its first evaluation point
    ablate.ctrl_c()
    time.sleep(1.0)  # counted by the parent before the group goes on
    ablate.go.touch()
    code, err = ablate.finish(timeout=240)
    assert code == 130, err
    assert "stopping: waiting for 2 running runs; Ctrl-C again to stop them now" in err
    assert "interrupted: 2 of 4 runs not finished; to resume, run the same command" in err
    assert ablate.states() == {runs[0]: "completed", runs[1]: "completed"}  # no other launched
    assert read_leases(ablate.results) == {}

    ablate.resume()
    assert set(ablate.states().values()) == {"completed"} and len(ablate.states()) == 4
    for run_id in runs:
        assert _summary(ablate.results / "runs" / run_id).vectorized_reason == "group of 2 seeds"
    _same_numbers(ablate.results, reference)


def test_two_ctrl_c_between_a_groups_writes_leave_only_its_unfinished_seeds_to_train(
    tmp_path, reference
):
    runs = [run.run_id for run in load_ablation(write_ablation(tmp_path, GRID, JAX_SPEC)).runs]
    # One group of four seeds, held as it writes its second seed's summary: the first seed has
    # finished, the other three have trained but not been written.
    ablate = _Ablate(tmp_path, f"/{runs[1]}/{rundir.SUMMARY}")
    ablate.wait_until_paused()
    first = (ablate.results / "runs" / runs[0] / rundir.SUMMARY).stat().st_mtime_ns
    ablate.ctrl_c()
    time.sleep(0.5)
    ablate.ctrl_c()
    stopped_at = time.monotonic()
    code, err = ablate.finish(timeout=60)
    assert code == 130, err
    assert time.monotonic() - stopped_at < 30  # promptly, though the worker was still busy
    assert "stopping now: terminating 4 running runs; they are left incomplete" in err
    assert "interrupted: 3 of 4 runs not finished (3 stopped midway, left incomplete)" in err
    states = ablate.states()
    assert states == {runs[0]: "completed", **{run_id: "incomplete" for run_id in runs[1:]}}
    for run_id in runs[1:]:
        marker = ablate.results / "runs" / run_id / rundir.INCOMPLETE
        assert marker.read_text() == "interrupted by the user\n"
        assert not (ablate.results / "runs" / run_id / rundir.SUMMARY).exists()
    assert read_leases(ablate.results) == {}

    ablate.resume()
    assert set(ablate.states().values()) == {"completed"}
    assert (ablate.results / "runs" / runs[0] / rundir.SUMMARY).stat().st_mtime_ns == first
    reasons = [_summary(ablate.results / "runs" / run_id).vectorized_reason for run_id in runs]
    assert reasons == ["group of 4 seeds"] + ["group of 3 seeds"] * 3  # the smaller group
    _same_numbers(ablate.results, reference)
