"""Values that cannot mean anything, or cannot fit in memory, are refused before anything runs.

And every check that `train` makes is made by `validate`, and for every expanded run by `plan`.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.cli import app
from tests.support.specs import TINY_SPEC, files_under

runner = CliRunner()


def _spec(**changes) -> dict:
    spec = copy.deepcopy(TINY_SPEC)
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return spec


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"model__blocks": [{"type": "dense", "units": 10**12}]}, "GiB"),
        ({"training__steps": None, "training__epochs": 10**12}, "evaluation points"),
        ({"training__steps": 10**9, "training__eval_every": 10**8}, "the batch order of"),
        ({"seed": 10**12}, "less than or equal to 4294967295"),
        ({"model__norm": {"kind": "batch", "epsilon": 1e-50}}, "representable in float32"),
        ({"training__steps": None, "training__epochs": 1e-5}, "give at least one step"),
        ({"training__target_metric": "val_accuracy", "training__target_value": -7},
         "accuracy lies in [0, 1]"),
        ({"training__target_metric": "val_loss", "training__target_value": -1},
         "never negative"),
        ({"training__target_metric": "val_acc", "training__target_value": 0.9},
         "'val_acc' is not recorded"),
    ],
)  # fmt: skip
def test_validate_and_train_refuse_the_same_degenerate_values(
    changes, fragment, write_spec, tmp_path
):
    path = write_spec(_spec(**changes))
    for command in (["validate", str(path)], ["train", str(path), "--out", str(tmp_path / "r")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert fragment in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


def _ablation(tmp_path, **extra) -> str:
    base = copy.deepcopy(TINY_SPEC)
    spec = {"name": "bounds", "base": base, "arms": {"a": {}, "b": {"model.norm.kind": "none"}},
            "seeds": [0], **extra}  # fmt: skip
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def test_plan_checks_group_norm_for_every_expanded_run(tmp_path):
    path = _ablation(tmp_path, arms={"a": {}, "g": {"model.norm.kind": "group",
                                                    "model.norm.groups": 3}})  # fmt: skip
    for command in (["plan", path], ["ablate", path, "--out", str(tmp_path / "out")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "arm 'g'" in result.output and "groups to divide the 16" in result.output
    assert not (tmp_path / "out").exists()


def test_an_exclude_entry_that_matches_nothing_is_a_typo(tmp_path):
    path = _ablation(tmp_path, grid={"training.learning_rate": [0.1, 0.5]},
                     exclude=[{"arm": "a", "training.learning_rate": 0.2}])  # fmt: skip
    result = runner.invoke(app, ["plan", path])
    assert result.exit_code == 2
    assert "ablation.yaml, line" in result.output and "matches no run" in result.output


def test_an_arms_typo_is_reported_at_its_line_of_the_ablation_file(tmp_path):
    path = _ablation(tmp_path, arms={"a": {}, "b": {"model.norm.kindd": "none"}})
    result = runner.invoke(app, ["plan", path])
    assert result.exit_code == 2
    assert "ablation.yaml, line" in result.output and "did you mean 'kind'" in result.output


def test_validate_does_not_download(tmp_path, monkeypatch, write_spec):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    spec = _spec(dataset={"name": "cifar10", "flatten": True})
    result = runner.invoke(app, ["validate", str(write_spec(spec))])
    assert result.exit_code == 2
    assert "not in the Keras cache" in result.output and "does not download" in result.output
    assert files_under(tmp_path / "keras") == []


def test_a_failure_before_the_run_directory_is_not_said_to_be_recorded(
    monkeypatch, write_spec, tmp_path
):
    import bnbench.train.loop

    def broken(spec, **kwargs):
        raise RuntimeError("the backend fell over")

    monkeypatch.setattr(bnbench.train.loop, "prepare", broken)
    result = runner.invoke(app, ["train", str(write_spec(TINY_SPEC)), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "the backend fell over" in result.output
    assert "nothing was recorded" in result.output and "recorded as failed in" not in result.output
