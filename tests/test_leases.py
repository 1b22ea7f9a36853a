"""Per-run leases: several `ablate` invocations on one results tree, stale leases, status."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.ablate import leases as leases_module
from bnbench.ablate.leases import LEASE_S, LEASES_DIR, Leases, read_leases
from bnbench.ablate.status import grid_status
from bnbench.cli import app
from bnbench.results import files, rundir
from tests.support.grid import ABLATION, final_losses, write_ablation
from tests.support.leases import write_lease

cli = CliRunner()

# Loaded into every Python process of a test's `bnbench ablate` (through PYTHONPATH): appends
# the run directory to a log each time a worker starts a run, which is when `run_one` records
# the run's place in the ablation (ablation.json, written once per training start).
_COUNTER = """
import os, sys
_log = os.environ.get("BNBENCH_TEST_STARTS")
if _log:
    _fd = os.open(_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    def _hook(event, args):
        if event == "os.rename" and str(args[1]).endswith("/ablation.json"):
            os.write(_fd, (os.path.basename(os.path.dirname(str(args[1]))) + "\\n").encode())
    sys.addaudithook(_hook)
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- the lease files ---------------------------------------------------------------------------


def test_create_exclusive_writes_once_and_whole(tmp_path):
    path = tmp_path / "a" / "x.json"
    assert files.create_exclusive(path, b"first")
    assert not files.create_exclusive(path, b"second")
    assert path.read_bytes() == b"first"
    assert os.listdir(path.parent) == ["x.json"]  # no temporary file left


def test_create_exclusive_without_hard_links_falls_back_to_o_excl(tmp_path, monkeypatch):
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    assert files.create_exclusive(tmp_path / "x.json", b"first")
    assert not files.create_exclusive(tmp_path / "x.json", b"second")
    assert os.listdir(tmp_path) == ["x.json"] and (tmp_path / "x.json").read_bytes() == b"first"


def test_an_unreadable_lease_is_live_until_its_lease_expires(tmp_path):
    path = write_lease(tmp_path, "run-a", host="node7", pid=1, heartbeat_age=0.0)
    path.write_text('{"half": ')  # being written, or damaged
    with Leases(tmp_path) as mine:
        assert mine.acquire("run-a") is not None
        old = time.time() - LEASE_S - 60
        os.utime(path, (old, old))
        assert mine.acquire("run-a") is None


def test_a_lease_is_held_until_released_and_others_see_its_holder(tmp_path):
    with Leases(tmp_path, "ray") as mine, Leases(tmp_path) as other:
        assert mine.acquire("run-a") is None
        holder = other.acquire("run-a")
        assert holder is not None and holder.pid == os.getpid() and holder.executor == "ray"
        assert set(other.others({"run-a", "run-b"})) == {"run-a"}
        mine.release("run-a")
        assert other.acquire("run-a") is None
    assert read_leases(tmp_path) == {}  # leaving releases everything


def test_a_lease_of_a_dead_process_on_this_machine_is_taken_over(tmp_path):
    write_lease(tmp_path, "run-a", host="me", pid=_dead_pid(), heartbeat_age=0.0,
                space=leases_module._SPACE)  # fmt: skip
    assert read_leases(tmp_path)["run-a"].stale_reason() == "process gone"
    with Leases(tmp_path) as mine:
        assert mine.acquire("run-a") is None
        lease = read_leases(tmp_path)["run-a"]
        assert lease.generation == 1 and lease.token == mine.token
        assert os.listdir(tmp_path / LEASES_DIR) == ["run-a.1.json"]  # the stale one is gone


def test_another_machines_lease_is_stale_only_once_its_lease_expired(tmp_path):
    write_lease(tmp_path, "live", host="node7", pid=1, heartbeat_age=5.0)
    write_lease(tmp_path, "silent", host="node8", pid=1, heartbeat_age=LEASE_S + 60)
    with Leases(tmp_path) as mine:
        held = mine.acquire("live")
        assert held is not None and held.holder == "node7:1"
        assert mine.acquire("silent") is None
    assert "no heartbeat for" in (read_leases(tmp_path)["live"].stale_reason(time.time() + 1e4)
                                  or "")  # fmt: skip


def test_of_many_taking_over_one_stale_lease_exactly_one_wins(tmp_path):
    write_lease(tmp_path, "run-a", host="node8", pid=1, heartbeat_age=LEASE_S + 60)
    takers = [Leases(tmp_path) for _ in range(8)]
    results: list[object] = []
    start = threading.Barrier(len(takers))

    def take(leases: Leases) -> None:
        start.wait()
        results.append(leases.acquire("run-a"))

    threads = [threading.Thread(target=take, args=(c,)) for c in takers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(None) == 1


def test_heartbeats_refresh_a_lease_and_notice_a_takeover(tmp_path):
    with Leases(tmp_path) as mine:
        mine.acquire("run-a")
        before = read_leases(tmp_path)["run-a"].heartbeat
        time.sleep(0.01)
        mine.beat()
        assert read_leases(tmp_path)["run-a"].heartbeat > before
        # Someone decided this process was silent for too long and took the run over.
        write_lease(tmp_path, "run-a", host="node9", pid=1, heartbeat_age=0.0, generation=1)
        mine.beat()
        assert mine.lost == ["run-a"]
        mine.release("run-a")  # not ours any more: left alone
    assert read_leases(tmp_path)["run-a"].holder == "node9:1"


# --- several invocations on one tree ---------------------------------------------------------


def _invocations(tmp_path: Path, count: int, grid: dict) -> tuple[Path, Counter[str]]:
    """Start `count` `bnbench ablate` at once on one folder; the runs each one trained."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_COUNTER)
    starts = tmp_path / "starts.log"
    env = {**os.environ, "PYTHONPATH": str(hooks),
           "BNBENCH_TEST_STARTS": str(starts)}  # fmt: skip
    path, results = write_ablation(tmp_path, grid), tmp_path / "r"
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(results),
               "-q", "--no-plots"]  # fmt: skip
    procs = [subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(count)]  # fmt: skip
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "Traceback" not in out + err, err
    return results, Counter(starts.read_text().split())


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 3])
def test_concurrent_invocations_complete_the_grid_and_train_no_run_twice(tmp_path, count):
    grid = {**ABLATION, "seeds": [0, 1, 2]}  # 6 runs
    results, starts = _invocations(tmp_path, count, grid)
    runs = {run.name: rundir.run_state(run) for run in (results / "runs").iterdir()}
    assert len(runs) == 6 and set(runs.values()) == {"completed"}
    assert set(starts) == set(runs) and set(starts.values()) == {1}, starts
    assert json.loads((results / "manifest.json").read_text())["finished_at"]
    assert (results / "summary.csv").exists()  # written by whichever finished last
    assert os.listdir(results / LEASES_DIR) == []


@pytest.mark.slow
def test_a_killed_invocations_leases_are_taken_over_and_status_says_so(tmp_path):
    grid = {**ABLATION, "overrides": {"training.steps": 1000, "training.eval_every": 20}}
    path, results = write_ablation(tmp_path, grid), tmp_path / "r"
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(results),
               "-q", "--no-plots", "--jobs", "2"]  # fmt: skip
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            runs = list((results / "runs").glob("*/history.csv"))
            if len(runs) == 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no two runs got going")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    status = cli.invoke(app, ["status", str(results)], terminal_width=250)
    assert status.exit_code == 0, status.output
    stale = [row.stale for row in grid_status(results) if row.stale]
    assert stale == ["process gone"] * 2
    assert "2 incomplete, 2 missing, 2 stale leases" in status.output

    done = subprocess.run([*command[:-2]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert set(final_losses(results)) == {run.name for run in (results / "runs").iterdir()}
    assert len(final_losses(results)) == 4
    assert read_leases(results) == {}
    status = cli.invoke(app, ["status", str(results)], terminal_width=250)
    assert "4 completed" in status.output and "stale" not in status.output


def test_status_of_a_folder_without_an_ablation_is_an_error(tmp_path):
    result = cli.invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no ablation" in result.output


def test_status_reads_the_planned_runs_from_the_manifest_or_else_the_run_folders(tmp_path):
    from bnbench.results import tree_files

    tree_files.create_ablation(tmp_path, {"name": "abl", "arms": {"a": {}}})
    done = tmp_path / "runs" / "a-s0"
    rundir.write_entry(done, {"arm": "a", "cell": "", "seed": 0})
    rundir.finish(done, rundir.RunSummary(run_id="a-s0", status="completed"))
    # A manifest written before it listed the plan: the run folders are the plan.
    (tmp_path / "manifest.json").write_text(json.dumps({"ablation": "abl"}))
    rows = grid_status(tmp_path)
    assert [(r.run_id, r.arm, r.seed, r.state) for r in rows] == [("a-s0", "a", 0, "completed")]
    # With the plan listed, a run not started yet is listed too, as missing.
    (tmp_path / "manifest.json").unlink()
    plan = [tree_files.PlannedRunRecord(run_id=f"a-s{seed}", arm="a", seed=seed) for seed in (0, 1)]
    tree_files.create_manifest(tmp_path, tree_files.Manifest(ablation="abl", plan=plan))
    rows = grid_status(tmp_path)
    assert [(r.run_id, r.state) for r in rows] == [("a-s0", "completed"), ("a-s1", "missing")]
