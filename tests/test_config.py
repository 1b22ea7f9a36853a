"""Spec validation: every bad input gets a clear message, exit code 2, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.loading import load_run_spec
from bnbench.config.schema import RunSpec
from bnbench.errors import SpecError
from tests.conftest import files_under

runner = CliRunner()


def _train(spec_path: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", str(spec_path), "--out", str(out), "-q", *extra])


def _assert_refused(result, out: Path, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert "Traceback" not in result.output
    assert files_under(out) == []


def test_invalid_yaml_names_the_line(write_spec, tmp_path):
    path = write_spec("name: x\nmodel:\n  blocks: [\n  - oops: : :\n")
    _assert_refused(_train(path, tmp_path / "out"), tmp_path / "out", "invalid YAML", "line")


def test_empty_file(write_spec, tmp_path):
    path = write_spec("")
    _assert_refused(_train(path, tmp_path / "out"), tmp_path / "out", "empty")


def test_unknown_key_gives_dotted_path_and_suggestion(write_spec, tiny_spec, tmp_path):
    tiny_spec["training"]["learning_rat"] = 0.1
    path = write_spec(tiny_spec)
    _assert_refused(
        _train(path, tmp_path / "out"),
        tmp_path / "out",
        "training.learning_rat",
        "unknown key",
        "did you mean 'learning_rate'",
        "line",
    )


def test_unknown_key_inside_a_block(write_spec, tiny_spec, tmp_path):
    tiny_spec["model"]["blocks"][1]["unitz"] = 3
    path = write_spec(tiny_spec)
    _assert_refused(
        _train(path, tmp_path / "out"),
        tmp_path / "out",
        "model.blocks.1.unitz",
        "did you mean 'units'",
    )


def test_wrong_type(write_spec, tiny_spec, tmp_path):
    tiny_spec["training"]["batch_size"] = "large"
    path = write_spec(tiny_spec)
    _assert_refused(
        _train(path, tmp_path / "out"), tmp_path / "out", "training.batch_size", "'large'"
    )


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("batch_size", 0, "training.batch_size"),
        ("learning_rate", -0.1, "training.learning_rate"),
        ("epochs", 2, "not both"),
    ],
)
def test_out_of_range_values(write_spec, tiny_spec, tmp_path, key, value, fragment):
    tiny_spec["training"][key] = value
    path = write_spec(tiny_spec)
    _assert_refused(_train(path, tmp_path / "out"), tmp_path / "out", fragment)


@pytest.mark.parametrize(
    ("section", "key", "value", "listing"),
    [
        ("dataset", "name", "mnits", "did you mean 'mnist'"),
        ("model", "activation", "sigmoidd", "available: relu, sigmoid"),
        ("training", "optimizer", "adamw", "available: sgd, adam, rmsprop"),
    ],
)
def test_unknown_names_list_valid_ones(
    write_spec, tiny_spec, tmp_path, section, key, value, listing
):
    tiny_spec[section][key] = value
    path = write_spec(tiny_spec)
    _assert_refused(_train(path, tmp_path / "out"), tmp_path / "out", f"{section}.{key}", listing)


def test_conv_block_on_flat_input_names_the_block(write_spec, tiny_spec, tmp_path):
    tiny_spec["model"]["blocks"].append({"type": "conv2d", "filters": 4})
    path = write_spec(tiny_spec)
    _assert_refused(
        _train(path, tmp_path / "out"), tmp_path / "out", "model.blocks[2] (conv2d)", "flat"
    )


def test_missing_dataset_path(write_spec, tiny_spec, tmp_path):
    tiny_spec["dataset"] = {"name": "npz", "path": str(tmp_path / "nope.npz")}
    path = write_spec(tiny_spec)
    _assert_refused(_train(path, tmp_path / "out"), tmp_path / "out", "nope.npz", "does not exist")


def test_python_tags_are_refused(write_spec, tmp_path):
    path = write_spec("name: !!python/object/apply:os.system ['echo hacked']\n")
    _assert_refused(_train(path, tmp_path / "out"), tmp_path / "out", "refused", "line 1")


def test_missing_spec_file(tmp_path):
    _assert_refused(
        _train(tmp_path / "absent.yaml", tmp_path / "out"), tmp_path / "out", "no such file"
    )


def test_bad_override_key_suggests(write_spec, tiny_spec, tmp_path):
    path = write_spec(tiny_spec)
    result = _train(path, tmp_path / "out", "--set", "model.norm.knd=none")
    _assert_refused(result, tmp_path / "out", "model.norm.knd", "did you mean 'kind'")


def test_override_is_validated(write_spec, tiny_spec, tmp_path):
    path = write_spec(tiny_spec)
    result = _train(path, tmp_path / "out", "--set", "model.norm.kind=batchnorm")
    _assert_refused(result, tmp_path / "out", "model.norm.kind", "'batchnorm'")


def test_validate_command_refuses_bad_spec_too(write_spec, tiny_spec):
    tiny_spec["training"]["steps"] = 0
    result = runner.invoke(app, ["validate", str(write_spec(tiny_spec))])
    assert result.exit_code == 2
    assert "training.steps" in result.output


def test_overrides_reach_the_spec(write_spec, tiny_spec):
    path = write_spec(tiny_spec)
    spec = load_run_spec(
        path, ["model.norm.kind=none", "training.learning_rate=0.5", "model.blocks.0.units=7"]
    )
    assert spec.model.norm.kind == "none"
    assert spec.training.learning_rate == 0.5
    assert spec.model.blocks[0].units == 7  # type: ignore[union-attr]


def test_defaults_are_filled(write_spec):
    spec = load_run_spec(
        write_spec(
            {"dataset": {"name": "digits"}, "model": {"blocks": [{"type": "dense", "units": 4}]}}
        )
    )
    assert isinstance(spec, RunSpec)
    assert spec.model.norm.placement == "before_activation"
    assert spec.backend == "auto"


def test_target_needs_both_halves(write_spec, tiny_spec):
    tiny_spec["training"]["target_metric"] = "val_accuracy"
    with pytest.raises(SpecError, match="target_metric and target_value"):
        load_run_spec(write_spec(tiny_spec))


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(write_spec, tiny_spec, tmp_path):
    out = tmp_path / "precious"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.tex").write_text("keep me")
    result = _train(write_spec(tiny_spec), out, "--overwrite")
    assert result.exit_code == 2 and "not a run directory" in result.output
    assert (out / "thesis.tex").read_text() == "keep me" and (out / "sub").is_dir()


def test_head_units_must_match_the_classes(write_spec, tiny_spec, tmp_path):
    tiny_spec["model"]["head"] = {"units": 3}
    _assert_refused(_train(write_spec(tiny_spec), tmp_path / "out"), tmp_path / "out",
                    "model.head.units: 3", "10 classes")  # fmt: skip


def test_a_pool_larger_than_the_feature_map_names_the_block(write_spec, tiny_spec, tmp_path):
    tiny_spec["dataset"]["flatten"] = False
    conv = {"type": "conv2d", "filters": 2, "pool": "max"}
    tiny_spec["model"]["blocks"] = [conv, conv, conv, conv, {"type": "flatten"}]
    _assert_refused(_train(write_spec(tiny_spec), tmp_path / "out"), tmp_path / "out",
                    "model.blocks[3] (conv2d)", "pool_size 2", "1×1")  # fmt: skip


def test_batch_larger_than_the_training_set(write_spec, tiny_spec, tmp_path):
    tiny_spec["training"]["batch_size"] = 1000
    _assert_refused(_train(write_spec(tiny_spec), tmp_path / "out"), tmp_path / "out",
                    "training.batch_size: 1000", "90 training examples")  # fmt: skip


def test_errors_in_set_values_point_at_the_option(write_spec, tiny_spec, tmp_path):
    result = _train(write_spec(tiny_spec), tmp_path / "out", "--set", "training.momentum=1.5")
    _assert_refused(result, tmp_path / "out", "--set training.momentum:", "1.5")
    assert "line" not in result.output


def test_setting_steps_replaces_epochs(write_spec, tiny_spec):
    tiny_spec["training"].pop("steps")
    tiny_spec["training"]["epochs"] = 3
    spec = load_run_spec(write_spec(tiny_spec), ["training.steps=5"])
    assert spec.training.steps == 5 and spec.training.epochs is None


def test_an_ablation_given_to_validate_says_so(write_spec, tiny_spec, tmp_path):
    path = write_spec({"name": "a", "base": "spec.yaml", "arms": {"x": {}}})
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "this is an ablation spec" in result.output
    result = runner.invoke(app, ["plan", str(write_spec(tiny_spec, "run.yaml"))])
    assert result.exit_code == 2 and "this is a run spec" in result.output


def test_an_out_that_cannot_be_created_is_a_clear_error(write_spec, tiny_spec, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _train(write_spec(tiny_spec), blocker / "run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error:" in result.output


def test_non_finite_values_are_refused(write_spec, tiny_spec, tmp_path):
    result = _train(write_spec(tiny_spec), tmp_path / "out", "--set", "training.learning_rate=.inf")
    _assert_refused(result, tmp_path / "out", "training.learning_rate")
