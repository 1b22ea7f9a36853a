"""The input batch-norm knob (`model.input_norm`), which the input_scaling claim's arms use:
what it computes, on vectors and images, and its invalid values."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.schema import ModelSpec
from bnbench.model.build import build_model, parameter_counts
from tests.support.specs import TINY_SPEC, files_under

runner = CliRunner()


def test_input_norm_standardizes_each_feature_with_the_batch_statistics():
    spec = ModelSpec.model_validate({"activation": "relu", "norm": {"kind": "none"},
                                     "input_norm": {"kind": "batch"},
                                     "blocks": [{"type": "dense", "units": 3}]})  # fmt: skip
    model = build_model(spec, (2,), 1, "regression")
    assert [layer.name for layer in model.layers][:2] == ["input_norm", "block1_dense"]
    # input_norm: gamma, beta (trainable) and the moving mean and variance of 2 features
    counts = parameter_counts(model)
    assert counts == {"trainable": 2 * 2 + (2 * 3 + 3) + (3 + 1), "non_trainable": 2 * 2}
    x = np.random.default_rng(0).uniform([1, 1], [10, 200], size=(64, 2)).astype("float32")
    out = keras.ops.convert_to_numpy(model.get_layer("input_norm")(x, training=True))
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    plain = build_model(spec.model_copy(update={"input_norm": None}), (2,), 1, "regression")
    assert "input_norm" not in [layer.name for layer in plain.layers]


def test_input_norm_on_images_normalizes_each_channel():
    spec = ModelSpec.model_validate({"input_norm": {"momentum": 0.9},
                                     "blocks": [{"type": "conv2d", "filters": 2},
                                                {"type": "global_avg_pool"}]})  # fmt: skip
    model = build_model(spec, (4, 4, 3), 2, "classification")
    layer = model.get_layer("input_norm")
    assert tuple(layer.moving_mean.shape) == (3,) and layer.momentum == 0.9


@pytest.mark.parametrize(
    ("input_norm", "message"),
    [
        ({"kind": "layer"}, "model.input_norm.kind"),
        ({"momentum": 1.0}, "model.input_norm.momentum"),
        ({"epsilon": 1e-50}, "must be representable in float32"),
        ({"placement": "after_activation"}, "model.input_norm.placement"),
    ],
)
def test_bad_input_norm_exits_2_and_writes_nothing(tmp_path: Path, input_norm, message):
    spec = {**TINY_SPEC, "model": {**TINY_SPEC["model"], "input_norm": input_norm}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert files_under(out) == []
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({**TINY_SPEC["model"], "input_norm": input_norm})
