"""The model knobs the claims need: the depth knob (`repeat`) and ghost batch norm
(`norm.virtual_batch_size`), on tiny shapes, with their invalid values."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from pydantic import ValidationError

from bnbench.config.ablation import AblationSpec, expand
from bnbench.config.schema import ModelSpec, RunSpec
from bnbench.model.build import build_model, parameter_counts
from bnbench.model.ghost_bn import GhostBatchNormalization
from tests.support.specs import TINY_SPEC


def test_repeat_makes_copies_that_are_blocks_of_their_own():
    spec = ModelSpec.model_validate({"activation": "relu", "norm": {"kind": "batch"},
                                     "blocks": [{"type": "dense", "units": 6, "repeat": 3},
                                                {"type": "dense", "units": 4}]})  # fmt: skip
    model = build_model(spec, (5,), 3, "classification")
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["block1_dense", "block1_norm", "block1_act"]
    assert [n for n in names if n.endswith("_dense")] == [f"block{i}_dense" for i in (1, 2, 3, 4)]
    # kernels (no bias before BN) + gamma/beta, then the head with its bias
    trainable = 5 * 6 + 2 * 6 * 6 + 6 * 4 + 2 * (6 + 6 + 6 + 4) + 4 * 3 + 3
    assert parameter_counts(model)["trainable"] == trainable


def test_a_grid_varies_depth_through_repeat():
    spec = AblationSpec.model_validate({"name": "d", "base": "x.yaml", "arms": {"a": {}},
                                        "grid": {"model.blocks.0.repeat": [2, 4]}})  # fmt: skip
    runs = expand(spec, TINY_SPEC)
    assert [r.spec.model.blocks[0].repeat for r in runs] == [2, 4]  # type: ignore[union-attr]


@pytest.mark.parametrize("repeat", [0, -1, 1000])
def test_repeat_out_of_range_is_refused(repeat):
    with pytest.raises(ValidationError, match="repeat"):
        ModelSpec.model_validate({"blocks": [{"type": "dense", "units": 4, "repeat": repeat}]})


def _ghost_reference(x: np.ndarray, size: int, epsilon: float = 1e-3) -> np.ndarray:
    parts = [x[i : i + size] for i in range(0, len(x), size)]
    return np.concatenate([(p - p.mean(0)) / np.sqrt(p.var(0) + epsilon) for p in parts])


def test_ghost_batch_norm_normalizes_each_ghost_batch_and_moves_the_statistics():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(8, 5)).astype("float32")
    layer = GhostBatchNormalization(4, momentum=0.9)
    out = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(out, _ghost_reference(x, 4), atol=1e-5)
    ghost_means = np.mean([x[:4].mean(0), x[4:].mean(0)], axis=0)
    np.testing.assert_allclose(np.asarray(layer.moving_mean), 0.1 * ghost_means, atol=1e-6)
    ghost_vars = np.mean([x[:4].var(0), x[4:].var(0)], axis=0)
    np.testing.assert_allclose(np.asarray(layer.moving_variance), 0.9 + 0.1 * ghost_vars,
                               atol=1e-5)  # fmt: skip
    # Inference mode is the stock layer: moving statistics.
    stock = keras.layers.BatchNormalization(momentum=0.9)
    stock.build(x.shape)
    stock.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(stock(x)), atol=1e-6)


def test_one_ghost_batch_is_plain_batch_norm_also_for_images():
    x = np.random.default_rng(1).normal(size=(4, 3, 3, 2)).astype("float32")
    ghost, stock = GhostBatchNormalization(4), keras.layers.BatchNormalization()
    np.testing.assert_allclose(np.asarray(ghost(x, training=True)),
                               np.asarray(stock(x, training=True)), atol=1e-5)  # fmt: skip
    halves = np.asarray(GhostBatchNormalization(2)(x, training=True))
    first = x[:2]
    expected = (first - first.mean((0, 1, 2))) / np.sqrt(first.var((0, 1, 2)) + 1e-3)
    np.testing.assert_allclose(halves[:2], expected, atol=1e-5)


def test_a_batch_that_does_not_split_is_refused():
    with pytest.raises(ValueError, match="does not split into ghost batches of 4"):
        GhostBatchNormalization(4)(np.zeros((6, 3), "float32"), training=True)


def test_ghost_norm_in_a_model_trains_saves_and_loads(tmp_path):
    spec = ModelSpec.model_validate({"norm": {"kind": "batch", "virtual_batch_size": 4},
                                     "blocks": [{"type": "dense", "units": 6}]})  # fmt: skip
    model = build_model(spec, (5,), 3, "classification")
    assert isinstance(model.get_layer("block1_norm"), GhostBatchNormalization)
    assert isinstance(model.get_layer("block1_norm"), keras.layers.BatchNormalization)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(2).normal(size=(16, 5)).astype("float32")
    model.fit(x, np.arange(16) % 3, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("block1_norm").virtual_batch_size == 4
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)  # fmt: skip


def test_virtual_batch_size_needs_batch_norm_and_a_dividing_batch():
    with pytest.raises(ValidationError, match="applies to kind 'batch' only, got kind 'layer'"):
        ModelSpec.model_validate({"norm": {"kind": "layer", "virtual_batch_size": 4},
                                  "blocks": [{"type": "dense", "units": 4}]})  # fmt: skip
    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        ModelSpec.model_validate({"norm": {"virtual_batch_size": 1},
                                  "blocks": [{"type": "dense", "units": 4}]})  # fmt: skip
    spec = {**TINY_SPEC, "model": {**TINY_SPEC["model"], "norm": {"virtual_batch_size": 5}}}
    with pytest.raises(ValidationError, match=r"virtual_batch_size 5 must divide .*\(16\)"):
        RunSpec.model_validate(spec)
    spec["model"]["norm"] = {"virtual_batch_size": 8}
    assert RunSpec.model_validate(spec).model.norm.virtual_batch_size == 8
