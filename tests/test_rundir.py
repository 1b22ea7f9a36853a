"""The run-directory contract: what training writes is what every reader reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bnbench.results import rundir
from bnbench.results.rundir import HistoryRow, RunSummary

QUICKSTART = Path(__file__).resolve().parents[1] / "results" / "quickstart"


def test_summary_round_trips(tmp_path):
    summary = RunSummary(
        run_id="r",
        status="completed",
        seed=3,
        final={"test_loss": 0.5, "test_accuracy": 0.875},
        best={"val_accuracy": 0.9, "step": 40},
        target=rundir.Target(metric="val_accuracy", value=0.9, step=40, seconds=1.5),
    )
    rundir.begin(tmp_path, {"name": "r"})
    assert rundir.run_state(tmp_path) == "incomplete"
    assert rundir.read_summary(tmp_path) is None
    rundir.finish(tmp_path, summary)
    assert not (tmp_path / rundir.INCOMPLETE).exists()
    assert rundir.read_summary(tmp_path) == summary
    assert rundir.run_state(tmp_path) == "completed"
    assert rundir.read_config(tmp_path) == {"name": "r"}


def test_the_finished_rule():
    assert rundir.is_done("completed") and rundir.is_done("diverged")
    for state in ("failed", "incomplete", "missing"):
        assert not rundir.is_done(state)


def test_state_of_missing_unreadable_and_unfinished_runs(tmp_path):
    assert rundir.run_state(tmp_path / "nothing") == "missing"
    (tmp_path / rundir.SUMMARY).write_text("{not json")
    assert rundir.run_state(tmp_path) == "incomplete"
    (tmp_path / rundir.SUMMARY).write_text(json.dumps({"run_id": "x", "status": "running"}))
    assert rundir.run_state(tmp_path) == "incomplete"


def test_a_failure_before_training_is_recorded_briefly(tmp_path):
    try:
        raise ValueError("no such dataset")
    except ValueError as err:
        rundir.record_failure(tmp_path / "run", err, brief=True)
    summary = rundir.read_summary(tmp_path / "run")
    assert summary is not None and summary.status == "failed"
    assert summary.error == "ValueError: no such dataset"
    text = (tmp_path / "run" / rundir.TRACEBACK).read_text()
    assert text == "ValueError: no such dataset\n"


def test_history_is_written_in_column_order(tmp_path):
    row = HistoryRow(
        step=4,
        epoch=0.5,
        examples_seen=64,
        wall_seconds=0.25,
        values={"train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 2.0, "val_accuracy": 0.25},
    )
    rundir.write_history(tmp_path, [row], ["accuracy"])
    lines = (tmp_path / rundir.HISTORY).read_text().splitlines()
    assert lines[0] == ",".join(rundir.history_columns(["accuracy"]))
    assert lines[1] == "4,0.5,64,0.25,1.0,0.5,2.0,0.25"


def test_a_summary_written_by_hand_without_run_id_belongs_to_its_directory(tmp_path):
    (tmp_path / rundir.SUMMARY).write_text(json.dumps({"status": "diverged", "extra": 1}))
    summary = rundir.read_summary(tmp_path)
    assert summary is not None and summary.run_id == tmp_path.name
    assert summary.status == "diverged"


@pytest.mark.skipif(not QUICKSTART.is_dir(), reason="committed quickstart results absent")
def test_the_committed_quickstart_runs_still_read():
    runs = sorted((QUICKSTART / "runs").iterdir())
    assert len(runs) == 9
    for run in runs:
        summary = rundir.read_summary(run)
        assert summary is not None, run
        assert summary.status == "completed" and summary.final and summary.params.trainable
        assert rundir.read_entry(run)["arm"] in ("no_bn", "bn_before", "bn_after")


@pytest.mark.skipif(not QUICKSTART.is_dir(), reason="committed quickstart results absent")
def test_the_committed_quickstart_report_rebuilds_to_the_same_runs_csv(tmp_path):
    from bnbench.analysis.tables import build_report

    copy = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, copy)
    build_report(copy)
    # Columns added since the commit (best_val_loss, bn_statistics) may be new; every column
    # the committed file has must come back identical, in its order.
    committed = pd.read_csv(QUICKSTART / "runs.csv", dtype=str, keep_default_na=False)
    rebuilt = pd.read_csv(copy / "runs.csv", dtype=str, keep_default_na=False)
    assert [c for c in rebuilt.columns if c in committed.columns] == list(committed.columns)
    pd.testing.assert_frame_equal(rebuilt[committed.columns], committed)
