"""Model building: layer order, bias rule and weight counts for every block × norm × placement,
and initializers with their arguments."""

from __future__ import annotations

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from bnbench.config.schema import ModelSpec
from bnbench.errors import SpecError
from bnbench.model.build import build_model, kernel_initializer, parameter_counts
from bnbench.train.backend import installed

NORMS = ["none", "batch", "layer", "group"]
PLACEMENTS = ["before_activation", "after_activation"]


def _spec(block: dict, norm: str, placement: str) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "norm": {"kind": norm, "placement": placement, "groups": 2},
            "blocks": [block, {"type": "flatten"}] if block["type"] == "conv2d" else [block],
        }
    )


def _norm_weights(norm: str, channels: int) -> tuple[int, int]:
    """(trainable, non-trainable) parameters a norm layer adds over `channels` channels."""
    if norm == "none":
        return 0, 0
    if norm == "batch":
        return 2 * channels, 2 * channels  # gamma, beta / moving mean, moving variance
    return 2 * channels, 0


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("kind", ["dense", "conv2d"])
def test_block_layers_bias_and_counts(kind, norm, placement):
    if kind == "dense":
        block, input_shape, fan_in, units = {"type": "dense", "units": 6}, (5,), 5, 6
        linear = "block1_dense"
    else:
        block = {"type": "conv2d", "filters": 4, "kernel_size": 3, "pool": "max"}
        input_shape, fan_in, units, linear = (6, 6, 2), 3 * 3 * 2, 4, "block1_conv"
    model = build_model(_spec(block, norm, placement), input_shape, 3, "classification")
    names = [layer.name for layer in model.layers]

    core = [linear, "block1_act"]
    if norm != "none":
        core.insert(1 if placement == "before_activation" else 2, "block1_norm")
    assert names[: len(core)] == core
    assert names[-1] == "head"
    if kind == "conv2d":
        assert names[len(core)] == "block1_pool"

    bias_dropped = norm == "batch" and placement == "before_activation"
    assert model.get_layer(linear).use_bias is (not bias_dropped)

    trainable_norm, frozen_norm = _norm_weights(norm, units)
    head_in = units if kind == "dense" else units * 3 * 3
    expected_trainable = fan_in * units + (0 if bias_dropped else units) + trainable_norm
    expected_trainable += head_in * 3 + 3
    assert parameter_counts(model) == {
        "trainable": expected_trainable,
        "non_trainable": frozen_norm,
    }


def test_flatten_and_global_avg_pool_entries():
    spec = ModelSpec.model_validate(
        {
            "blocks": [
                {"type": "conv2d", "filters": 4, "dropout": 0.1},
                {"type": "global_avg_pool"},
                {"type": "dense", "units": 5, "norm": {"kind": "none"}, "activation": "tanh"},
            ]
        }
    )
    model = build_model(spec, (8, 8, 1), 10, "classification")
    names = [layer.name for layer in model.layers]
    assert names == [
        "block1_conv",
        "block1_norm",
        "block1_act",
        "block1_dropout",
        "block2_gap",
        "block3_dense",
        "block3_act",
        "head",
    ]
    assert model.get_layer("block3_dense").use_bias  # the block's own norm: none
    assert model.output_shape == (None, 10)


def test_regression_head_is_linear():
    spec = ModelSpec.model_validate({"blocks": [{"type": "dense", "units": 4}]})
    model = build_model(spec, (2,), 1, "regression")
    assert model.get_layer("head").activation is keras.activations.linear


def test_group_norm_groups_must_divide_channels():
    """Refused by the schema, so `plan` catches it for every expanded run before training."""
    with pytest.raises(ValueError, match=r"blocks\.0: group norm needs norm\.groups to divide"):
        ModelSpec.model_validate(
            {"norm": {"kind": "group", "groups": 3}, "blocks": [{"type": "dense", "units": 4}]}
        )


def test_image_output_needs_flatten():
    spec = ModelSpec.model_validate({"blocks": [{"type": "conv2d", "filters": 2}]})
    with pytest.raises(SpecError, match="flatten"):
        build_model(spec, (4, 4, 1), 2, "classification")


_BUILD_SCRIPT = """
import json, os
from bnbench.train.backend import activate
activate(os.environ["BACKEND"])
import keras
from bnbench.config.schema import ModelSpec
from bnbench.model.build import build_model, kernel_initializer, parameter_counts
spec = ModelSpec.model_validate({"blocks": [
    {"type": "conv2d", "filters": 4, "pool": "avg"}, {"type": "flatten"},
    {"type": "dense", "units": 8, "norm": {"kind": "layer"}}]})
model = build_model(spec, (6, 6, 1), 3, "classification")
print(json.dumps({"backend": keras.backend.backend(), "params": parameter_counts(model),
                  "layers": [layer.name for layer in model.layers]}))
"""


def test_same_spec_builds_under_every_installed_backend():
    outputs = {}
    for backend in ("tensorflow", "jax"):
        if not installed(backend):
            continue
        done = subprocess.run(
            [sys.executable, "-c", _BUILD_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "BACKEND": backend},
        )
        outputs[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(outputs) >= 2
    first = next(iter(outputs.values()))
    for backend, out in outputs.items():
        assert out["backend"] == backend
        assert out["params"] == first["params"]
        assert out["layers"] == first["layers"]


def test_fused_flag_picks_the_batch_norm_layer():
    from bnbench.model.fused_bn import FusedBatchNormalization

    def norm_layer(fused: bool) -> keras.layers.Layer:
        spec = ModelSpec.model_validate({"norm": {"kind": "batch", "fused": fused},
                                         "blocks": [{"type": "conv2d", "filters": 2},
                                                    {"type": "flatten"}]})  # fmt: skip
        return build_model(spec, (4, 4, 1), 2, "classification").get_layer("block1_norm")

    assert isinstance(norm_layer(True), FusedBatchNormalization)
    stock = norm_layer(False)
    assert type(stock) is keras.layers.BatchNormalization


def _weights(model_spec: dict, input_shape: tuple[int, ...] = (200,), outputs: int = 10) -> dict:
    """Every layer's kernel, built under the same global seed as a run would be."""
    keras.utils.set_random_seed(7)
    model = build_model(ModelSpec.model_validate(model_spec), input_shape, outputs, "regression")
    return {layer.name: layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")}


def test_random_normal_with_a_stddev_reaches_every_layer_and_the_head():
    spec = {"initializer": {"kind": "random_normal", "stddev": 0.1},
            "blocks": [{"type": "dense", "units": 400}]}  # fmt: skip
    kernels = _weights(spec, outputs=200)
    for name in ("block1_dense", "head"):  # 80,000 weights each: the std is within ~0.5%
        assert kernels[name].std() == pytest.approx(0.1, rel=0.02), name
        assert abs(float(kernels[name].mean())) < 0.002


def test_head_and_block_initializers_override_the_models():
    spec = {"initializer": {"kind": "random_normal", "stddev": 0.1},
            "blocks": [{"type": "dense", "units": 300,
                        "initializer": {"kind": "random_uniform", "minval": 0.5, "maxval": 0.6}},
                       {"type": "dense", "units": 300}],
            "head": {"initializer": "zeros"}}  # fmt: skip
    kernels = _weights(spec)
    assert kernels["block1_dense"].min() >= 0.5 and kernels["block1_dense"].max() < 0.6
    assert kernels["block2_dense"].std() == pytest.approx(0.1, rel=0.02)
    assert not kernels["head"].any()


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_normal", "lecun_uniform",
                                  "random_normal", "random_uniform"])  # fmt: skip
def test_a_kind_without_arguments_builds_the_plain_names_weights(name):
    blocks = [{"type": "conv2d", "filters": 4, "dropout": 0.1}, {"type": "flatten"},
              {"type": "dense", "units": 30, "dropout": 0.1}]  # fmt: skip
    plain = _weights({"initializer": name, "blocks": blocks}, (6, 6, 1))
    mapping = _weights({"initializer": {"kind": name}, "blocks": blocks}, (6, 6, 1))
    assert plain.keys() == mapping.keys()
    for layer in plain:
        np.testing.assert_array_equal(plain[layer], mapping[layer])


def test_a_plain_name_reaches_keras_unchanged():
    # The plain form is what every config used before initializer arguments existed; passing
    # the same string keeps its seeds, and so its weights, exactly as they were.
    for name in ("glorot_uniform", "he_normal", "random_normal", "zeros"):
        assert kernel_initializer(name) == name


def test_scale_keeps_the_kinds_fan_and_distribution():
    blocks = [{"type": "dense", "units": 50}]
    he = _weights({"initializer": "he_normal", "blocks": blocks})
    scaled = _weights({"initializer": {"kind": "he_normal", "scale": 8.0}, "blocks": blocks})
    np.testing.assert_allclose(scaled["block1_dense"], 2.0 * he["block1_dense"], rtol=1e-5)
    general = {"kind": "variance_scaling", "mode": "fan_avg", "distribution": "uniform"}
    glorot = _weights({"initializer": "glorot_uniform", "blocks": blocks})
    np.testing.assert_array_equal(
        _weights({"initializer": general, "blocks": blocks})["block1_dense"],
        glorot["block1_dense"],
    )
