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


# --- the files at the top of a results tree (results.tree_files) ---------------------------------


def test_the_committed_quickstart_tree_reads_through_the_typed_files():
    from bnbench.results import tree_files

    ablation = tree_files.read_ablation(QUICKSTART)
    assert ablation.exists and ablation.name and ablation.arms
    assert ablation.reference is None or ablation.reference in ablation.arms
    manifest = tree_files.read_manifest(QUICKSTART)
    assert manifest is not None and manifest.versions and manifest.plan
    assert {run.arm for run in manifest.plan} <= set(ablation.arms)
    tables = tree_files.read_tables_summary(QUICKSTART)
    assert tables.rows and tables.definitions and tables.name == ablation.name


def test_manifest_round_trips_and_is_stamped_finished(tmp_path):
    from bnbench.results import tree_files

    plan = [tree_files.PlannedRunRecord(run_id="a-s0", arm="a", cell="", seed=0)]
    manifest = tree_files.Manifest(ablation="abl", started_at="t0", versions={"keras": "3"},
                                   backends=["jax"], runs=1, plan=plan)  # fmt: skip
    assert tree_files.create_manifest(tmp_path, manifest)
    assert not tree_files.create_manifest(tmp_path, manifest.model_copy(update={"runs": 9}))
    read = tree_files.read_manifest(tmp_path)
    assert read == manifest and read.finished_at is None
    tree_files.mark_finished(tmp_path)
    stamped = tree_files.read_manifest(tmp_path)
    assert stamped is not None and stamped.finished_at and stamped.runs == 1
    assert list(json.loads((tmp_path / "manifest.json").read_text())) == [
        "ablation", "started_at", "finished_at", "versions", "machine", "backends", "runs",
        "plan", "extended"]  # fmt: skip


def test_an_old_or_missing_manifest_reads_with_one_meaning_per_default(tmp_path):
    from bnbench.results import tree_files

    assert tree_files.read_manifest(tmp_path) is None
    tree_files.mark_finished(tmp_path)  # nothing to stamp: nothing written
    assert not (tmp_path / "manifest.json").exists()
    (tmp_path / "manifest.json").write_text(json.dumps({"started_at": "t0", "extra": 1}))
    old = tree_files.read_manifest(tmp_path)
    assert old is not None and old.plan is None and old.model_fields_set == {"started_at", "extra"}


def test_a_manifest_that_does_not_fit_is_refused_by_name(tmp_path):
    from bnbench.errors import SpecError
    from bnbench.results import tree_files

    (tmp_path / "manifest.json").write_text(json.dumps({"plan": [{"arm": "a"}]}))
    with pytest.raises(SpecError, match=r"manifest\.json: Field required"):
        tree_files.read_manifest(tmp_path)


def test_a_stored_ablation_answers_for_a_missing_or_partial_file(tmp_path):
    from bnbench.results import tree_files

    empty = tree_files.read_ablation(tmp_path)
    assert not empty.exists and empty.name is None and empty.reference is None
    assert empty.arms == {} and empty.grid == {} and empty.sets == {}
    resolved = {"name": "abl", "arms": ["a", "b"], "grid": {"training.learning_rate": [0.1]},
                "set": {"training.steps": 3}}  # fmt: skip
    assert tree_files.create_ablation(tmp_path, resolved)
    assert not tree_files.create_ablation(tmp_path, {"name": "other"})
    stored = tree_files.read_ablation(tmp_path)
    assert stored.name == "abl" and stored.arms == {"a": {}, "b": {}}
    assert stored.grid == {"training.learning_rate": [0.1]} and stored.sets == {"training.steps": 3}
    assert stored.differs_in({**resolved, "seeds": [1]}) == ["seeds"]


def test_tables_summary_is_required_and_named_when_missing(tmp_path):
    from bnbench.errors import SpecError
    from bnbench.results import tree_files

    with pytest.raises(SpecError, match=r"summary\.json"):
        tree_files.read_tables_summary(tmp_path)
    path = tree_files.write_tables_summary(tmp_path, tree_files.TablesSummary(name="n", rows=[]))
    assert tree_files.read_tables_summary(tmp_path).name == "n" and path.name == "summary.json"


def test_diagnostics_files_name_their_switches_and_columns():
    from bnbench.config.diagnostics import DiagnosticsSpec
    from bnbench.results.diagnostics import FILES, percentile_columns

    assert tuple(file.name for file in FILES) == rundir.DIAGNOSTICS
    assert {file.switch for file in FILES} <= set(DiagnosticsSpec.model_fields)
    assert percentile_columns([15, 50.5]) == ("step", "layer", "units", "p15", "p50.5")
