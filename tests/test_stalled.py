"""`stalled`: a classifier that never left chance, or ended back at it; in runs.csv and tables."""

from __future__ import annotations

import copy
import csv
import json

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from tests.support.grid import write_ablation
from tests.support.specs import TINY_SPEC

# relu + BN, SGD at learning rate 4 on 225 digits: 0.36 validation accuracy after 4 steps
# (chance 0.16, bar 0.21), then back to ~0.15 at the end. 0.1 learns.
ABLATION = {
    "name": "collapse",
    "base": "spec.yaml",
    "overrides": {"training.steps": 60, "training.eval_every": 4, "dataset.subset": 300},
    "arms": {"calm": {"training.learning_rate": 0.1}, "hot": {"training.learning_rate": 4.0}},
    "seeds": [0],
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stalled")
    path = write_ablation(folder, copy.deepcopy(ABLATION), copy.deepcopy(TINY_SPEC))
    out = folder / "out"
    result = CliRunner().invoke(app, ["ablate", str(path), "--out", str(out), "--no-plots"])
    assert result.exit_code == 0, result.output
    return out


def _summary(tree, arm):
    (run,) = (tree / "runs").glob(f"{arm}-*")
    return json.loads((run / "summary.json").read_text())


@pytest.mark.slow
def test_a_run_that_cleared_the_bar_once_and_ended_at_chance_is_stalled(tree):
    hot = _summary(tree, "hot")
    bar = hot["chance_accuracy"] + 1 / 20
    assert hot["status"] == "completed"
    assert hot["best"]["val_accuracy"] > bar >= hot["final"]["val_accuracy"]  # the case itself
    assert hot["stalled"] is True
    assert _summary(tree, "calm")["stalled"] is False


@pytest.mark.slow
def test_stalled_is_in_runs_csv_and_every_table(tree):
    with (tree / "runs.csv").open(newline="") as handle:
        rows = {row["arm"]: row for row in csv.DictReader(handle)}
    assert (rows["hot"]["stalled"], rows["calm"]["stalled"]) == ("1", "0")
    with (tree / "summary.csv").open(newline="") as handle:
        summary = {row["arm"]: row for row in csv.DictReader(handle)}
    assert (summary["hot"]["stalled"], summary["calm"]["stalled"]) == ("1", "0")
    markdown = (tree / "summary.md").read_text()
    assert "| incomplete | stalled |" in markdown and "- stalled: completed runs" in markdown
    result = CliRunner().invoke(app, ["report", str(tree)])
    assert result.exit_code == 0
    assert "| arm | n | runs | stalled |" in result.output
