"""`plan` and `ablate` refuse, before writing anything, every run that `train` would refuse."""

from __future__ import annotations

import copy

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from tests.support.grid import ABLATION, write_ablation
from tests.support.specs import files_under


@pytest.mark.parametrize("command", ["plan", "ablate"])
def test_a_run_too_long_to_record_is_refused_up_front(tmp_path, command):
    path = write_ablation(tmp_path, copy.deepcopy(ABLATION))
    out = tmp_path / "out"
    args = [command, str(path), "--set", "training.epochs=1000000000000",
            "--set", "training.steps=null", "--set", "training.eval_every=null"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "arm 'no_bn', seed 0: training:" in result.output
    assert "evaluation points (at most 100,000)" in result.output
    assert files_under(out) == [] and not out.exists()


def test_a_grid_cell_with_a_batch_larger_than_the_data_is_refused(tmp_path):
    ablation = copy.deepcopy(ABLATION)
    ablation["grid"] = {"training.batch_size": [16, 100_000]}
    path = write_ablation(tmp_path, ablation)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["ablate", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "training.batch_size=100000" in result.output
    assert "is larger than the" in result.output and "training examples" in result.output
    assert not out.exists()
