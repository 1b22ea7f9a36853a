"""More seeds or grid values for a finished ablation train only the new runs, in the same tree."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.cli import app
from tests.support.grid import write_ablation
from tests.support.specs import TINY_SPEC

ABLATION = {
    "name": "abl",
    "base": "spec.yaml",
    "overrides": {"training.steps": 4, "training.eval_every": 2},
    "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
    "grid": {"training.learning_rate": [0.1]},
    "seeds": [0],
}


def _ablate(path, out, *extra):
    return CliRunner().invoke(app, ["ablate", str(path), "--out", str(out), "--jobs", "1",
                                    "--no-plots", "-q", *extra])  # fmt: skip


def _finished(out):
    """run id -> finished_at of every run in the tree."""
    return {p.parent.name: json.loads(p.read_text())["finished_at"]
            for p in (out / "runs").glob("*/summary.json")}  # fmt: skip


@pytest.fixture
def tree(tmp_path):
    path = write_ablation(tmp_path, copy.deepcopy(ABLATION), copy.deepcopy(TINY_SPEC))
    out = tmp_path / "out"
    result = _ablate(path, out)
    assert result.exit_code == 0, result.output
    return path, out


def _rewrite(path, **changes):
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, **changes}, sort_keys=False))


@pytest.mark.slow
def test_more_seeds_and_grid_values_train_only_the_new_runs(tree):
    path, out = tree
    before = _finished(out)
    _rewrite(path, seeds=[0, 1], grid={"training.learning_rate": [0.1, 0.2]})
    result = _ablate(path, out)
    assert result.exit_code == 0, result.output
    after = _finished(out)
    assert len(after) == 8 and {k: after[k] for k in before} == before  # old runs untouched
    resolved = yaml.safe_load((out / "ablation.yaml").read_text())
    assert resolved["seeds"] == [0, 1]
    assert resolved["grid"] == {"training.learning_rate": [0.1, 0.2]}
    manifest = json.loads((out / "manifest.json").read_text())
    (extension,) = manifest["extended"]
    assert extension["seeds"] == [1] and extension["grid"] == {"training.learning_rate": [0.2]}
    assert (extension["runs_before"], extension["runs_after"]) == (2, 8)
    assert manifest["runs"] == 8 and len(manifest["plan"]) == 8
    summary = (out / "summary.csv").read_text()
    assert summary.count("\n") == 1 + 4  # 2 arms x 2 cells


@pytest.mark.slow
def test_set_seeds_on_the_command_line_extends_too(tree):
    path, out = tree
    before = _finished(out)
    result = _ablate(path, out, "--set", "seeds=[0, 2]")
    assert result.exit_code == 0, result.output
    after = _finished(out)
    assert len(after) == 4 and {k: after[k] for k in before} == before
    assert yaml.safe_load((out / "ablation.yaml").read_text())["seeds"] == [0, 2]
    assert "set" not in yaml.safe_load((out / "ablation.yaml").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"overrides": {"training.steps": 6, "training.eval_every": 2}, "seeds": [0, 1]},
         "holds a different version of this ablation (it differs in: overrides"),
        ({"name": "other", "seeds": [0, 1]}, "holds a different ablation, 'abl' (this one is "),
        ({"grid": {"training.batch_size": [8]}}, "differs in: grid"),
        ({"seeds": [1]}, "differs in: seeds"),  # fewer: not an extension
    ],
)
def test_other_changes_are_still_refused_and_write_nothing(tree, changes, message):
    path, out = tree
    state = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _rewrite(path, **changes)
    result = _ablate(path, out)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == state
