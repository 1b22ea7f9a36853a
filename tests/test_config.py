"""Spec validation: every bad input gets a clear message, exit code 2, and nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.loading import load_run_spec
from bnbench.config.registries import INITIALIZERS
from bnbench.config.schema import (
    InitializerArgs,
    RandomNormalInit,
    RunSpec,
    ScaledInit,
    TrainingSpec,
)
from bnbench.errors import SpecError
from tests.support.specs import files_under

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


def _validate(spec_path: Path, *extra: str):
    return runner.invoke(app, ["validate", str(spec_path), *extra])


@pytest.mark.parametrize(
    ("where", "initializer", "fragments"),
    [
        ("model", {"kind": "glorot_uniform", "stddev": 0.1},
         ["model.initializer.stddev", "unknown key", "valid keys here: kind, scale"]),
        ("block", {"kind": "random_normal", "stddev": 0},
         ["model.blocks.0.initializer.stddev", "greater than 0", "(got 0)"]),
        ("head", {"kind": "random_uniform", "minval": 0.1, "maxval": 0.1},
         ["model.head.initializer.maxval", "must be above minval (0.1)"]),
        ("model", {"kind": "random_normall"},
         ["model.initializer", "unknown initializer 'random_normall'",
          "did you mean 'random_normal'"]),
        ("model", {"stddev": 0.1}, ["model.initializer", "needs a kind", "got stddev"]),
        ("head", "he_normall", ["model.head.initializer", "did you mean 'he_normal'"]),
        ("model", {"kind": "he_uniform", "scale": -2},
         ["model.initializer.scale", "greater than 0"]),
        ("model", {"kind": "variance_scaling", "mode": "fan"}, ["model.initializer.mode", "'fan'"]),
    ],
)  # fmt: skip
def test_bad_initializers_name_the_key(write_spec, tiny_spec, tmp_path, where, initializer,
                                       fragments):  # fmt: skip
    if where == "model":
        tiny_spec["model"]["initializer"] = initializer
    elif where == "block":
        tiny_spec["model"]["blocks"][0]["initializer"] = initializer
    else:
        tiny_spec["model"]["head"] = {"initializer": initializer}
    result = _validate(write_spec(tiny_spec))
    _assert_refused(result, tmp_path / "out", *fragments)


def test_initializer_mapping_and_plain_forms(write_spec, tiny_spec):
    tiny_spec["model"]["initializer"] = {"kind": "random_normal", "stddev": 0.1}
    tiny_spec["model"]["blocks"][1]["initializer"] = {"kind": "he_normal"}
    spec = load_run_spec(write_spec(tiny_spec))
    assert spec.model.initializer == RandomNormalInit(kind="random_normal", stddev=0.1)
    assert spec.model.blocks[1].initializer == ScaledInit(kind="he_normal", scale=2.0)  # type: ignore[union-attr]
    assert spec.model.head.initializer is None  # the model's
    dumped = spec.model_dump(mode="json")["model"]
    assert dumped["initializer"] == {"kind": "random_normal", "mean": 0.0, "stddev": 0.1}
    tiny_spec["model"]["initializer"] = "lecun_normal"
    plain = load_run_spec(write_spec(tiny_spec)).model_dump(mode="json")["model"]
    assert plain["initializer"] == "lecun_normal"  # the plain form stays a plain name


def test_set_reaches_into_or_replaces_an_initializer(write_spec, tiny_spec, tmp_path):
    tiny_spec["model"]["initializer"] = {"kind": "random_normal", "stddev": 0.1}
    path = write_spec(tiny_spec)
    spec = load_run_spec(path, ["model.initializer.stddev=0.2", "model.head.initializer=zeros"])
    assert spec.model.initializer == RandomNormalInit(kind="random_normal", stddev=0.2)
    assert spec.model.head.initializer == "zeros"
    assert load_run_spec(path, ["model.initializer=he_normal"]).model.initializer == "he_normal"
    result = _validate(path, "--set", "model.initializer.stdev=0.2")
    _assert_refused(result, tmp_path / "out", "model.initializer.stdev", "did you mean 'stddev'")
    # Changing the kind keeps the other arguments, which then must fit the new kind.
    result = _validate(path, "--set", "model.initializer.kind=he_normal")
    _assert_refused(result, tmp_path / "out", "model.initializer.stddev", "unknown key")


def test_every_registered_initializer_has_a_mapping_form():
    kinds = {kind for member in get_args(InitializerArgs)
             for kind in get_args(member.model_fields["kind"].annotation)}  # fmt: skip
    assert kinds == set(INITIALIZERS)


@pytest.mark.parametrize(
    ("scaling", "batch_size", "expected"),
    [("none", 256, 0.1), ("linear", 256, 0.4), ("linear", 16, 0.025), ("sqrt", 256, 0.2),
     ("sqrt", 16, 0.05), ("linear", 64, 0.1)],
)  # fmt: skip
def test_effective_learning_rate(scaling, batch_size, expected):
    reference = None if scaling == "none" else 64
    training = TrainingSpec(learning_rate=0.1, batch_size=batch_size, lr_scaling=scaling,
                            reference_batch_size=reference)  # fmt: skip
    assert training.effective_learning_rate == pytest.approx(expected)


def test_lr_scaling_and_reference_batch_size_go_together(write_spec, tiny_spec, tmp_path):
    tiny_spec["training"]["lr_scaling"] = "linear"
    _assert_refused(_validate(write_spec(tiny_spec)), tmp_path / "out",
                    "training:", "lr_scaling 'linear' needs reference_batch_size")  # fmt: skip
    tiny_spec["training"]["lr_scaling"] = "none"
    tiny_spec["training"]["reference_batch_size"] = 64
    _assert_refused(_validate(write_spec(tiny_spec)), tmp_path / "out",
                    "reference_batch_size (64) only applies")  # fmt: skip
    tiny_spec["training"]["lr_scaling"] = "cubic"
    _assert_refused(_validate(write_spec(tiny_spec)), tmp_path / "out",
                    "training.lr_scaling", "'cubic'")  # fmt: skip
    tiny_spec["training"]["lr_scaling"] = "sqrt"
    tiny_spec["training"]["reference_batch_size"] = 0
    _assert_refused(_validate(write_spec(tiny_spec)), tmp_path / "out",
                    "training.reference_batch_size", "greater than or equal to 1")  # fmt: skip
