"""histories.csv: every run's history in one tidy table, rebuilt by `bnbench report`."""

from __future__ import annotations

import math

import pandas as pd
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.export.histories import HISTORIES_CSV, write_histories
from tests.support.export_tree import (
    ARMS,
    DIVERGED,
    FAILED,
    KEY,
    METRICS,
    RATES,
    SEEDS,
    STEPS,
    run_id,
    value,
    write_tree,
)

runner = CliRunner()


def test_one_row_per_run_step_and_metric_with_the_values_written(tmp_path):
    root = write_tree(tmp_path / "tiny")
    frame = pd.read_csv(write_histories(root))
    assert list(frame.columns) == [
        "run_id", "arm", "cell", f"grid.{KEY}", "seed", "status", "step", "epoch", "metric",
        "value",
    ]  # fmt: skip
    full = len(ARMS) * len(RATES) * len(SEEDS) - 2  # less the failed and the diverged run
    # The diverged run keeps its first point; at step 20 its values are NaN or infinite.
    assert len(frame) == full * len(STEPS) * len(METRICS) + len(METRICS)
    mine = frame[(frame["run_id"] == run_id("bn", 0.1, 1)) & (frame["metric"] == "val_loss")]
    assert mine["step"].tolist() == list(STEPS)
    assert mine["value"].tolist() == [value("bn", 0.1, 1, s, "val_loss") for s in STEPS]
    assert set(mine[f"grid.{KEY}"]) == {0.1} and set(mine["arm"]) == {"bn"}
    assert run_id(*FAILED) not in set(frame["run_id"])
    diverged = frame[frame["run_id"] == run_id(*DIVERGED)]
    assert set(diverged["status"]) == {"diverged"} and diverged["value"].map(math.isfinite).all()
    assert frame["run_id"].tolist() == sorted(frame["run_id"], key=frame["run_id"].tolist().index)


def test_report_rebuilds_it(tmp_path):
    root = write_tree(tmp_path / "tiny", report=False)
    result = runner.invoke(app, ["report", str(root)])
    assert result.exit_code == 0, result.output
    assert "histories.csv" in result.output
    frame = pd.read_csv(root / HISTORIES_CSV)
    assert set(frame["metric"]) == set(METRICS)
    pivot = frame.pivot_table(index=["arm", "step"], columns="metric", values="value")
    assert pivot.loc[("plain", 10), "train_loss"] > 0
