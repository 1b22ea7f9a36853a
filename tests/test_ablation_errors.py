"""An error about a key the ablation file sets names the ablation file and its line."""

from __future__ import annotations

import copy

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from tests.support.grid import ABLATION, write_ablation


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"overrides": {"training.batch_size": 0}}, "ablation.yaml, line 4: arm 'no_bn', seed 0"),
        ({"overrides": {"training.nope": 1}}, "ablation.yaml, line 4: training.nope: unknown key"),
        ({"arms": {"a/b": {"model.norm.kind": "none"}, "bn": {}}},
         "ablation.yaml, line 7: arm 'a/b', seed 0: name:"),
    ],
)
def test_the_ablation_file_is_blamed_not_the_base_spec(tmp_path, change, expected):
    path = write_ablation(tmp_path, {**copy.deepcopy(ABLATION), **change})
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 2
    assert expected in result.output and "spec.yaml" not in result.output


def test_a_value_from_the_base_still_names_the_base(tmp_path):
    spec = {"name": "tiny", "dataset": {"name": "digits"}, "model": {"blocks": []},
            "training": {"batch_size": 0}}  # fmt: skip
    path = write_ablation(tmp_path, copy.deepcopy(ABLATION), spec)
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 2
    assert "spec.yaml" in result.output
