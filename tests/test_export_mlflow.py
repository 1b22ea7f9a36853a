"""`bnbench export mlflow`: a real SQLite tracking store, read back with MlflowClient."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from bnbench.analysis.plots import render_plots
from bnbench.cli import app
from bnbench.errors import SpecError
from bnbench.export.mlflow_runs import default_tracking_uri, export_mlflow
from tests.support.export_tree import (
    DIVERGED,
    FAILED,
    KEY,
    LONG_PATH,
    NAME,
    STEPS,
    UNFINISHED,
    run_id,
    value,
    write_tree,
)

# SQLAlchemy 2.1 deprecates a loader strategy MLflow's store still uses (mlflow/store/tracking/
# sqlalchemy_store.py); a warning inside MLflow, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch):
    """MLflow 3 sends usage telemetry unless told not to; tests use no network."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One tree with its figures, exported once (an export takes a few seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        root = write_tree(tmp_path_factory.mktemp("mlflow") / "tiny")
        render_plots(root)
        result = export_mlflow(root)
    from mlflow.tracking import MlflowClient

    return root, result, MlflowClient(tracking_uri=result.tracking_uri)


def _children(client, experiment_id):
    runs = client.search_runs([experiment_id], "tags.`bnbench.kind` = 'run'")
    return {run.data.tags["bnbench.run_id"]: run for run in runs}


def test_one_experiment_one_parent_and_a_nested_run_per_run(exported):
    root, result, client = exported
    assert result.tracking_uri == default_tracking_uri(root)
    assert (root / "mlflow.db").is_file()
    experiment = client.get_experiment_by_name(NAME)
    assert experiment.experiment_id == result.experiment_id
    everything = client.search_runs([result.experiment_id])
    assert len(everything) == 9
    children = _children(client, result.experiment_id)
    assert len(children) == 8 and sorted(result.logged) == sorted(children)
    for run in children.values():
        assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["bnbench.kind"] == "ablation"
    assert parent.data.params["reference"] == "plain"


def test_a_run_has_its_tags_params_and_artifacts(exported):
    _, result, client = exported
    run = _children(client, result.experiment_id)[run_id("bn", 0.1, 1)]
    tags = run.data.tags
    assert {k: tags[k] for k in ("arm", "cell", "seed", "status", "backend")} == {
        "arm": "bn", "cell": "lr=0.1", "seed": "1", "status": "completed", "backend": "jax",
    }  # fmt: skip
    params = run.data.params
    assert params[KEY] == "0.1" and params["model.norm.kind"] == "batch"
    assert params["model.blocks.1.units"] == "4" and params["training.metrics"] == "null"
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    long = params["dataset.path"]
    assert len(long) == MAX_PARAM_VAL_LENGTH and long.endswith("…")
    assert LONG_PATH.startswith(long[:-1])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"config.yaml", "summary.json"}
    assert run.info.status == "FINISHED" and run.info.run_name == "bn lr=0.1 s1"


def test_history_metrics_carry_their_steps(exported):
    _, result, client = exported
    run = _children(client, result.experiment_id)[run_id("plain", 0.01, 0)]
    for column in ("train_loss", "val_accuracy", "val_train_mode_loss", "val_moving_accuracy"):
        history = client.get_metric_history(run.info.run_id, column)
        assert [m.step for m in history] == list(STEPS)
        expected = [value("plain", 0.01, 0, step, column) for step in STEPS]
        assert [m.value for m in history] == pytest.approx(expected)
    final = run.data.metrics["final_test_accuracy"]
    assert final == pytest.approx(value("plain", 0.01, 0, 30, "val_accuracy") - 0.5)
    assert run.data.metrics["train_seconds"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("run", "status", "mlflow_status"),
    [(DIVERGED, "diverged", "FINISHED"), (FAILED, "failed", "FAILED"),
     (UNFINISHED, "incomplete", "KILLED")],
)  # fmt: skip
def test_runs_that_did_not_complete_keep_their_status(exported, run, status, mlflow_status):
    _, result, client = exported
    found = _children(client, result.experiment_id)[run_id(*run)]
    assert found.data.tags["status"] == status and found.info.status == mlflow_status
    if run == FAILED:
        artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
        assert "traceback.txt" in artifacts and not found.data.metrics
    if run == DIVERGED:
        history = client.get_metric_history(found.info.run_id, "val_loss")
        assert [m.step for m in history] == [10]  # step 20 is NaN: left out


def test_the_parent_holds_the_tables_and_figures(exported):
    root, result, client = exported
    top = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"ablation.yaml", "manifest.json", "runs.csv", "summary.md", "plots"} <= top
    figures = {a.path for a in client.list_artifacts(result.parent_run_id, "plots")}
    assert {f"plots/{p.name}" for p in (root / "plots").iterdir()} == figures


def test_exporting_again_changes_nothing_and_a_changed_run_is_replaced(exported):
    root, first, client = exported
    again = export_mlflow(root)
    assert again.logged == [] and len(again.unchanged) == 8
    assert again.parent_run_id == first.parent_run_id
    changed = run_id("bn", 0.1, 0)
    before = _children(client, first.experiment_id)[changed].info.run_id
    summary = root / "runs" / changed / "summary.json"
    summary.write_text(summary.read_text().replace('"backend": "jax"', '"backend": "tensorflow"'))
    third = export_mlflow(root)
    assert third.logged == [changed] and len(third.unchanged) == 7
    children = _children(client, first.experiment_id)
    assert len(children) == 8 and len(client.search_runs([first.experiment_id])) == 9
    assert children[changed].info.run_id != before
    assert children[changed].data.tags["backend"] == "tensorflow"
    assert client.get_run(before).info.lifecycle_stage == "deleted"


def test_the_command_takes_a_tracking_uri(tmp_path):
    root = write_tree(tmp_path / "tiny")
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = runner.invoke(app, ["export", "mlflow", str(root), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert "8 runs logged, 0 unchanged" in result.output
    assert f"mlflow ui --backend-store-uri {uri}" in result.output
    assert (tmp_path / "elsewhere.db").is_file() and not (root / "mlflow.db").exists()
    assert (tmp_path / "mlartifacts").is_dir()  # beside the database, not in the working dir


def test_a_missing_mlflow_extra_names_the_pip_command(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "tiny")
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(SpecError, match=r'pip install "bnbench\[mlflow\]"'):
        export_mlflow(root)
    result = runner.invoke(app, ["export", "mlflow", str(root)])
    assert result.exit_code == 2, result.output
    assert 'pip install "bnbench[mlflow]"' in result.output
    assert not (root / "mlflow.db").exists()
