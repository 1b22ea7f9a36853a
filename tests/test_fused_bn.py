"""Tests for bnbench.model.fused_bn: the fused layer must be indistinguishable from stock BN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from bnbench.model import fused_bn
from bnbench.model.fused_bn import FusedBatchNormalization, batch_normalization_layer

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the fused path exists only on the TensorFlow backend",
)

SHAPE = (8, 5, 5, 3)
ATOL = 1e-5


def random_inputs(seed: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Non-zero mean and non-unit scale so the normalization does visible work.
    return (rng.normal(size=shape) * 2.5 + 1.5).astype("float32")


def paired_layers(
    input_shape: tuple[int, ...] = SHAPE, **kwargs: Any
) -> tuple[FusedBatchNormalization, keras.layers.BatchNormalization]:
    """A fused and a stock layer with the same random (non-default) weights."""
    fused = FusedBatchNormalization(**kwargs)
    stock = keras.layers.BatchNormalization(**kwargs)
    fused.build(input_shape)
    stock.build(input_shape)
    rng = np.random.default_rng(0)
    weights = []
    for variable in stock.weights:
        values = rng.uniform(0.5, 1.5, size=variable.shape)
        weights.append(values.astype("float32"))
    stock.set_weights(weights)
    fused.set_weights(weights)
    return fused, stock


def assert_same_state(
    fused: keras.layers.BatchNormalization, stock: keras.layers.BatchNormalization
) -> None:
    for fused_weight, stock_weight in zip(fused.weights, stock.weights, strict=True):
        np.testing.assert_allclose(
            fused_weight.numpy(), stock_weight.numpy(), atol=ATOL, err_msg=fused_weight.path
        )


class CallCounter:
    """Wraps the TF-specific function to record whether the fast path ran."""

    def __init__(self) -> None:
        self.calls = 0
        self._wrapped = fused_bn._tf_fused_batch_norm

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self._wrapped(*args, **kwargs)


@pytest.fixture
def fused_calls(monkeypatch: pytest.MonkeyPatch) -> CallCounter:
    counter = CallCounter()
    monkeypatch.setattr(fused_bn, "_tf_fused_batch_norm", counter)
    return counter


def test_same_weights_and_config_as_stock() -> None:
    fused, stock = paired_layers(name="bn")
    assert [w.name for w in fused.weights] == [w.name for w in stock.weights]
    assert [w.name for w in fused.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [tuple(w.shape) for w in fused.weights] == [(3,)] * 4
    assert len(fused.trainable_weights) == 2
    assert fused.get_config() == stock.get_config()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"center": False},
        {"scale": False},
        {"center": False, "scale": False},
        {"momentum": 0.5, "epsilon": 1e-2},
        {"axis": 3, "momentum": 0.9, "epsilon": 1e-5 * 1.01},
    ],
    ids=["default", "no-center", "no-scale", "no-affine", "momentum-epsilon", "axis3"],
)
def test_matches_stock_over_training_then_inference(
    kwargs: dict[str, Any], fused_calls: CallCounter
) -> None:
    fused, stock = paired_layers(**kwargs)
    for step in range(3):
        inputs = random_inputs(seed=step)
        np.testing.assert_allclose(
            fused(inputs, training=True), stock(inputs, training=True), atol=ATOL
        )
        assert_same_state(fused, stock)
    inputs = random_inputs(seed=10)
    np.testing.assert_allclose(
        fused(inputs, training=False), stock(inputs, training=False), atol=ATOL
    )
    assert_same_state(fused, stock)
    assert fused_calls.calls == 4


def test_frozen_layer_runs_in_inference_mode(fused_calls: CallCounter) -> None:
    fused, stock = paired_layers()
    fused.trainable = False
    stock.trainable = False
    inputs = random_inputs(seed=1)
    np.testing.assert_allclose(
        fused(inputs, training=True), stock(inputs, training=True), atol=ATOL
    )
    assert_same_state(fused, stock)
    assert fused_calls.calls == 1


def test_mixed_precision_computes_in_float32_like_stock(fused_calls: CallCounter) -> None:
    fused, stock = paired_layers(dtype="mixed_float16")
    for training in (True, False):
        inputs = random_inputs(seed=2)
        fused_outputs = fused(inputs, training=training)
        assert fused_outputs.dtype == "float16"
        # Both compute in float32 and round once to float16: at most one float16 ulp apart.
        np.testing.assert_allclose(
            np.asarray(fused_outputs, "float32"),
            np.asarray(stock(inputs, training=training), "float32"),
            rtol=1e-3,
        )
        assert_same_state(fused, stock)
    assert fused_calls.calls == 2


@pytest.mark.parametrize(
    ("input_shape", "kwargs"),
    [
        ((8, 3), {}),
        ((8, 4, 3), {}),
        (SHAPE, {"axis": 1}),
        (SHAPE, {"epsilon": 1e-6}),
        (SHAPE, {"dtype": "float64"}),
        (SHAPE, {"renorm": True}),
    ],
    ids=["2d", "3d", "axis1", "tiny-epsilon", "float64", "renorm"],
)
def test_other_cases_fall_back_to_stock(
    input_shape: tuple[int, ...], kwargs: dict[str, Any], fused_calls: CallCounter
) -> None:
    fused, stock = paired_layers(input_shape, **kwargs)
    for training in (True, False):
        inputs = random_inputs(seed=3, shape=input_shape)
        np.testing.assert_allclose(
            fused(inputs, training=training), stock(inputs, training=training), atol=ATOL
        )
        assert_same_state(fused, stock)
    assert fused_calls.calls == 0


def test_mask_falls_back_to_stock(fused_calls: CallCounter) -> None:
    fused, stock = paired_layers()
    inputs = random_inputs(seed=4)
    mask = np.random.default_rng(4).uniform(size=SHAPE[:-1]) > 0.3
    np.testing.assert_allclose(
        fused(inputs, training=True, mask=mask),
        stock(inputs, training=True, mask=mask),
        atol=ATOL,
    )
    assert_same_state(fused, stock)
    assert fused_calls.calls == 0


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_gradients_match_stock(training: bool) -> None:
    import tensorflow as tf

    fused, stock = paired_layers()
    inputs = tf.constant(random_inputs(seed=5))
    # A non-uniform upstream gradient: with sum(outputs) the training-mode
    # input gradient is identically zero and would prove nothing.
    upstream = tf.constant(random_inputs(seed=6))

    def gradients(layer: keras.layers.BatchNormalization) -> list[Any]:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(layer(inputs, training=training) * upstream)
        return tape.gradient(loss, [inputs, layer.gamma, layer.beta])

    for fused_grad, stock_grad in zip(gradients(fused), gradients(stock), strict=True):
        np.testing.assert_allclose(fused_grad.numpy(), stock_grad.numpy(), atol=1e-4, rtol=1e-4)


def test_fit_matches_stock(fused_calls: CallCounter) -> None:
    """Inside `model.fit` (a tf.function) the moving statistics still update."""
    inputs = random_inputs(seed=7, shape=(16, 5, 5, 3))
    targets = np.random.default_rng(7).normal(size=(16, 1)).astype("float32")

    def fitted(layer: keras.layers.Layer) -> keras.Model:
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input(SHAPE[1:]), layer, keras.layers.Flatten(), keras.layers.Dense(1)]
        )
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        model.fit(inputs, targets, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return model

    fused_model = fitted(FusedBatchNormalization(momentum=0.5))
    stock_model = fitted(keras.layers.BatchNormalization(momentum=0.5))
    assert fused_calls.calls > 0
    for fused_weight, stock_weight in zip(fused_model.weights, stock_model.weights, strict=True):
        np.testing.assert_allclose(fused_weight.numpy(), stock_weight.numpy(), atol=1e-4)


def test_saved_model_loads_as_stock_layers_with_plain_keras(tmp_path: Path) -> None:
    # A fused layer next to a stock one: weights must land in the right layer.
    fused, _ = paired_layers(momentum=0.9, center=False)
    stock = keras.layers.BatchNormalization(epsilon=1e-2)
    model = keras.Sequential([keras.Input(SHAPE[1:]), fused, stock])
    inputs = random_inputs(seed=8)
    model(inputs, training=True)  # move the statistics away from their initial values
    path = tmp_path / "model.keras"
    model.save(path)

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    layer_configs = {layer["config"]["name"]: layer for layer in config["config"]["layers"]}
    fused_config, stock_config = layer_configs[fused.name], layer_configs[stock.name]
    assert {key: fused_config[key] for key in ("module", "class_name", "registered_name")} == {
        key: stock_config[key] for key in ("module", "class_name", "registered_name")
    }
    assert fused_config["module"] == "keras.layers"
    assert fused_config["class_name"] == "BatchNormalization"
    assert "bnbench" not in json.dumps(config)

    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [keras.layers.BatchNormalization] * 2
    for original, restored in zip(model.layers, loaded.layers, strict=True):
        assert restored.get_config() == original.get_config()
        assert_same_state(original, restored)
    np.testing.assert_allclose(
        loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=ATOL
    )


LOAD_WITHOUT_BNBENCH = """
import sys
import keras
import numpy as np

model = keras.models.load_model("model.keras")
assert "bnbench" not in sys.modules, "loading imported bnbench"
print(type(model.layers[0]).__qualname__)
np.save("loaded.npy", model.predict(np.load("inputs.npy"), verbose=0))
"""


def test_saved_model_loads_in_a_process_that_never_imports_bnbench(tmp_path: Path) -> None:
    fused, _ = paired_layers(momentum=0.5)
    model = keras.Sequential([keras.Input(SHAPE[1:]), fused])
    inputs = random_inputs(seed=9)
    model(inputs, training=True)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "inputs.npy", inputs)

    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_BNBENCH],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "BatchNormalization"
    np.testing.assert_allclose(
        np.load(tmp_path / "loaded.npy"), model.predict(inputs, verbose=0), atol=ATOL
    )


def test_serialized_config_names_stock_class() -> None:
    config = keras.saving.serialize_keras_object(FusedBatchNormalization())
    assert (config["module"], config["class_name"]) == ("keras.layers", "BatchNormalization")
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is keras.layers.BatchNormalization


def test_batch_normalization_layer_picks_fused_on_tensorflow() -> None:
    layer = batch_normalization_layer(momentum=0.9)
    assert type(layer) is FusedBatchNormalization
    assert layer.name.startswith("batch_normalization")
    assert layer.momentum == 0.9


def test_batch_normalization_layer_unfused_is_stock() -> None:
    layer = batch_normalization_layer(fused=False, epsilon=1e-2)
    assert type(layer) is keras.layers.BatchNormalization
    assert layer.epsilon == 1e-2


def test_batch_normalization_layer_rejects_unknown_argument() -> None:
    with pytest.raises(ValueError, match="Unrecognized keyword arguments"):
        batch_normalization_layer(mommentum=0.9)


def test_keras_still_has_the_export_table_fused_bn_relies_on() -> None:
    # The one private use of Keras (`fused_bn._save_as_stock`): if Keras moves its export
    # table, this fails by name instead of saved models silently naming bnbench.
    from keras.src import api_export

    assert isinstance(api_export.REGISTERED_OBJS_TO_NAMES, dict)
    name = api_export.get_name_from_symbol(keras.layers.BatchNormalization)
    assert name == "keras.layers.BatchNormalization"
    assert api_export.REGISTERED_OBJS_TO_NAMES[FusedBatchNormalization] == name
    assert FusedBatchNormalization.__name__ == "BatchNormalization"
    assert FusedBatchNormalization.__qualname__ == "FusedBatchNormalization"
