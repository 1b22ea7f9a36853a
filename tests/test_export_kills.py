"""A killed export leaves nothing the next one cannot complete or clean: real SIGKILLs of an
export subprocess at named points (`tests.support.kill_at`), a real SQLite MLflow store, real
TensorBoard event files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bnbench.export.mlflow_runs import export_mlflow
from tests.support.export_tree import write_tree

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}


def _killed_export(root: Path, target: str, calls: int, tool: str = "mlflow") -> None:
    """Export `root` in a subprocess that SIGKILLs itself after `calls` calls of `target`."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.kill_at", target, str(calls), "export", tool,
         str(root)], env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _counts(uri: str) -> list[tuple[str, str, int, int, int]]:
    """(bnbench run id, status, params, metric keys, artifacts) of every active run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return sorted((run.data.tags.get("bnbench.run_id", "parent"), run.info.status,
                   len(run.data.params), len(run.data.metrics),
                   len(client.list_artifacts(run.info.run_id)))
                  for run in runs)  # fmt: skip


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The counts of an export that nobody killed."""
    root = write_tree(tmp_path_factory.mktemp("clean") / "tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        return _counts(export_mlflow(root).tracking_uri)


@pytest.mark.parametrize(("target", "calls"), [
    # After the 5th of MLflow's ~50 schema migrations of a new store.
    ("alembic.runtime.migration:HeadMaintainer.update_to_step", 5),
    # Right after the first bnbench run's MLflow run is created (before anything is logged).
    ("mlflow.tracking:MlflowClient.create_run", 2),
    # After the 4th run's metrics batch: some runs whole, one half logged.
    ("mlflow.tracking:MlflowClient.log_batch", 12),
])  # fmt: skip
def test_an_export_killed_midway_is_completed_by_the_next(tmp_path, monkeypatch, clean, target,
                                                          calls):  # fmt: skip
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    root = write_tree(tmp_path / "tiny")
    _killed_export(root, target, calls)
    again = export_mlflow(root)
    assert _counts(again.tracking_uri) == clean
    assert len(again.logged) + len(again.unchanged) == 8


@pytest.mark.parametrize(("target", "calls"), [
    # Midway through writing the staging folder.
    ("bnbench.export.tensorboard_events:_write_run", 3),
    # Between moving the old export aside and moving the new one in (a second export).
    ("os:rename", 1),
])  # fmt: skip
def test_a_killed_tensorboard_export_leaves_no_hidden_folder_after_the_next(tmp_path, target,
                                                                           calls):  # fmt: skip
    from bnbench.export.tensorboard_events import export_tensorboard

    root = write_tree(tmp_path / "tiny")
    if target.startswith("os:"):
        export_tensorboard(root)  # so that the killed export swaps an old one out
    _killed_export(root, target, calls, "tensorboard")
    assert [name for name in os.listdir(root) if name.startswith(".tensorboard.")]
    again = export_tensorboard(root)
    assert again.runs == 8
    assert sorted(name for name in os.listdir(root) if name.startswith(".")) == []
    assert {"bn", "plain", "bnbench_export.json"} <= set(os.listdir(root / "tensorboard"))
