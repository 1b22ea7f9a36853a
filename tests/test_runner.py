"""Running ablations: worker processes, resume after kill -9, leases, failures as data."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from bnbench.ablate.runner import run_ablation
from bnbench.ablate.status import grid_status
from bnbench.config.ablation import load_ablation
from bnbench.errors import SpecError
from bnbench.results import rundir
from tests.support.grid import ABLATION, final_losses, write_ablation
from tests.support.leases import write_lease
from tests.support.specs import TINY_SPEC


def test_parallel_run_records_everything_and_matches_sequential(tmp_path):
    ablation = load_ablation(write_ablation(tmp_path, ABLATION))
    sequential = run_ablation(ablation, tmp_path / "seq", jobs=1)
    parallel = run_ablation(ablation, tmp_path / "par", jobs=2)
    assert set(sequential.statuses.values()) == {"completed"}
    assert sequential.statuses.keys() == parallel.statuses.keys()
    seq, par = final_losses(tmp_path / "seq"), final_losses(tmp_path / "par")
    assert seq.keys() == par.keys() and len(seq) == 4
    for run_id in seq:
        assert par[run_id] == pytest.approx(seq[run_id], rel=1e-4), run_id
    top = tmp_path / "par"
    assert (top / "ablation.yaml").exists()
    manifest = json.loads((top / "manifest.json").read_text())
    assert manifest["finished_at"] and manifest["versions"]["keras"].startswith("3.")
    entry = json.loads(next((top / "runs").iterdir()).joinpath("ablation.json").read_text())
    assert set(entry) == {"arm", "grid", "seed", "cell"}
    # Re-running skips every finished run.
    again = run_ablation(ablation, top, jobs=2)
    assert sorted(again.skipped) == sorted(seq)


def test_failed_run_is_recorded_and_the_grid_carries_on(tmp_path):
    # Valid as a spec; found out only when the run reads its data.
    (tmp_path / "broken.npz").write_text("not an archive")
    bad = {"dataset.name": "npz", "dataset.path": str(tmp_path / "broken.npz")}
    spec = {**ABLATION, "arms": {**ABLATION["arms"], "bad_data": bad}}
    ablation = load_ablation(write_ablation(tmp_path, spec))
    outcome = run_ablation(ablation, tmp_path / "r", jobs=2)
    failed = outcome.failed
    assert len(failed) == 2 and all(run_id.startswith("bad_data") for run_id in failed)
    assert "not a .npz archive" in outcome.errors[failed[0]]
    run_dir = tmp_path / "r" / "runs" / failed[0]
    assert rundir.run_state(run_dir) == "failed"
    assert "not a .npz archive" in (run_dir / "traceback.txt").read_text()
    assert sum(status == "completed" for status in outcome.statuses.values()) == 4
    # Failed runs are skipped on resume unless asked for.
    assert sorted(run_ablation(ablation, tmp_path / "r").skipped) == sorted(outcome.statuses)
    retried = run_ablation(ablation, tmp_path / "r", retry_failed=True)
    assert sorted(retried.failed) == sorted(failed)


def test_a_run_leased_by_a_live_process_elsewhere_is_passed_over_then_resumed(tmp_path):
    ablation = load_ablation(write_ablation(tmp_path, ABLATION))
    results = tmp_path / "r"
    taken = ablation.runs[1].run_id
    results.mkdir()
    write_lease(results, taken, host="node7", pid=4242, heartbeat_age=1.0)
    outcome = run_ablation(ablation, results)
    assert outcome.elsewhere == {taken: "node7:4242"}
    assert not (results / "runs" / taken).exists()
    assert len(outcome.statuses) == 3 and outcome.unfinished == 1
    # The end time is left to whoever finishes last.
    assert json.loads((results / "manifest.json").read_text())["finished_at"] is None
    assert [row.state for row in grid_status(results)].count("running") == 1

    (results / ".leases" / f"{taken}.0.json").unlink()  # node7 gave up without finishing
    again = run_ablation(ablation, results)
    assert again.statuses[taken] == "completed" and not again.elsewhere
    assert json.loads((results / "manifest.json").read_text())["finished_at"]
    assert list((results / ".leases").iterdir()) == []


def test_resume_after_kill_minus_nine_gives_the_uninterrupted_results(tmp_path):
    spec = {**ABLATION, "overrides": {"training.steps": 300, "training.eval_every": 20}}
    path = write_ablation(tmp_path, spec)
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--jobs", "1", "-q",
               "--no-plots", "--out"]  # fmt: skip
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*command, str(killed)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        # Wait until one run has finished and the next has written history but not finished.
        while time.monotonic() < deadline:
            runs = list((killed / "runs").glob("*")) if (killed / "runs").exists() else []
            finished = [r for r in runs if rundir.run_state(r) == "completed"]
            midway = [
                r for r in runs if (r / "INCOMPLETE").exists() and (r / "history.csv").exists()
            ]
            if finished and midway:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the ablation never reached the middle of its second run")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert any(rundir.run_state(r) == "incomplete" for r in (killed / "runs").iterdir())

    resumed = subprocess.run([*command, str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run([*command, str(tmp_path / "clean")], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    got, want = final_losses(killed), final_losses(tmp_path / "clean")
    assert got.keys() == want.keys() and len(got) == 4  # no duplicate, no missing run
    for run_id in want:
        assert got[run_id] == pytest.approx(want[run_id], rel=1e-4), run_id


def test_a_changed_ablation_is_not_mixed_into_old_results(tmp_path):
    path = write_ablation(tmp_path, ABLATION)
    run_ablation(load_ablation(path), tmp_path / "r", shard=(1, 4))
    changed = {**ABLATION, "overrides": {"training.steps": 20, "training.eval_every": 10}}
    with pytest.raises(SpecError, match=r"different version of this ablation.*overrides"):
        run_ablation(load_ablation(write_ablation(tmp_path, changed)), tmp_path / "r")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(SpecError, match="not empty and holds no ablation"):
        run_ablation(load_ablation(path), tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]  # nothing written


def test_results_are_readable_by_others_and_killed_writers_leave_no_trace(tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    (results / ".ablation.yaml.k1ll3d00.tmp").write_text("half")  # killed at the first rename
    os.utime(results / ".ablation.yaml.k1ll3d00.tmp", (time.time() - 7200,) * 2)
    ablation = load_ablation(write_ablation(tmp_path, ABLATION))
    run_ablation(ablation, results, shard=(1, 4))
    run = next((results / "runs").iterdir())
    for name in (rundir.SUMMARY, "config.yaml", "history.csv"):
        assert (run / name).stat().st_mode & 0o044 == 0o044, name
    for name in (
        ".manifest.json.k1ll3d01.tmp",
        ".summary.csv.k1ll3d02.tmp",
        "plots/.a.png.k1ll3d03.tmp",
        ".leases/.x.0.json.k1ll3d04.tmp",
    ):
        (results / name).parent.mkdir(exist_ok=True)
        (results / name).write_text("half")
        # Old: no lock says who writes the tree, so only an old temporary file is a leftover.
        os.utime(results / name, (time.time() - 7200,) * 2)
    (results / ".fresh.json.l1v3wr1t.tmp").write_text("a live writer's")
    assert run_ablation(ablation, results, shard=(1, 4)).skipped == [run.name]
    hidden = sorted(p.relative_to(results).as_posix() for p in results.rglob(".*"))
    assert hidden == [".fresh.json.l1v3wr1t.tmp", ".leases"]


def test_divergence_on_jax_is_a_result(tmp_path):
    # Unscaled two_scale features with SGD at rate 1 overflow within a few dozen steps.
    spec = copy.deepcopy(TINY_SPEC)
    spec["backend"] = "jax"
    spec["dataset"] = {"name": "two_scale", "normalize": "none"}
    spec["model"] = {"norm": {"kind": "none"}, "blocks": [{"type": "dense", "units": 16}]}
    spec["training"].update(learning_rate=1.0, batch_size=32, steps=100, eval_every=10)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    command = [sys.executable, "-m", "bnbench", "train", str(tmp_path / "spec.yaml"), "--out",
               str(tmp_path / "run"), "-q"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert rundir.run_state(tmp_path / "run") == "diverged"
