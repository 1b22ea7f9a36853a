"""A group's memory estimate: weights, BN statistics, optimizer slots and activations counted
from the spec as Keras builds the model, times the seeds; `plan` shows it per group."""

from __future__ import annotations

import copy
import math

import keras
import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.schema import RunSpec
from bnbench.model.build import build_model, parameter_counts
from bnbench.train.prepare import make_optimizer
from bnbench.train.vectorized_memory import (
    FLOAT_BYTES,
    INDEX_BYTES,
    GroupMemory,
    format_bytes,
    group_memory,
    optimizer_slots,
)
from tests.support.grid import write_ablation
from tests.support.specs import TINY_SPEC

CONV = {"type": "conv2d", "filters": 4, "kernel_size": 3, "strides": 2, "padding": "valid",
        "pool": "max", "dropout": 0.1}  # fmt: skip
MODELS = {
    "dense_bn": ((8,), {"norm": {"kind": "batch"},
                        "blocks": [{"type": "dense", "units": 6, "repeat": 2},
                                   {"type": "dense", "units": 5, "dropout": 0.2}]}),
    "dense_bn_after": ((8,), {"norm": {"kind": "batch", "placement": "after_activation",
                                       "center": False},
                              "blocks": [{"type": "dense", "units": 6}]}),
    "conv_layer_norm": ((11, 9, 3), {"norm": {"kind": "layer"}, "input_norm": {},
                                     "blocks": [CONV, {"type": "flatten"},
                                                {"type": "dense", "units": 7}]}),
    "conv_group_gap": ((8, 8, 2), {"norm": {"kind": "group", "groups": 2}, "head": {"units": 10},
                                   "blocks": [{**CONV, "strides": 1, "padding": "same"},
                                              {"type": "global_avg_pool"}]}),
    "no_norm": ((4,), {"norm": {"kind": "none"}, "blocks": [{"type": "dense", "units": 3}]}),
}  # fmt: skip


def _run(model: dict, **training: object) -> RunSpec:
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"] = model
    spec["training"].update(training)
    return RunSpec.model_validate(spec)


def _keras_activations(model: keras.Model) -> int:
    """Values per example of the input and every layer's output but a flatten's (a reshape)."""
    values = math.prod(model.inputs[0].shape[1:])
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Flatten):
            values += math.prod(layer.output.shape[1:])
    return values


@pytest.mark.parametrize("name", sorted(MODELS))
def test_weights_statistics_and_activations_are_keras_own_counts(name):
    shape, model_spec = MODELS[name]
    spec = _run(model_spec, batch_size=5)
    built = build_model(spec.model, shape, 10, "classification")
    counts = parameter_counts(built)
    memory = group_memory(spec, shape, 10, total_steps=7, seeds=3)
    assert memory.trainable == counts["trainable"]
    assert memory.bn_statistics == counts["non_trainable"]  # BN's moving mean and variance
    assert memory.activations == 5 * _keras_activations(built)
    assert memory.order == 7 * 5
    assert (memory.seeds, memory.optimizer_slots) == (3, 0)  # plain SGD keeps no slot


@pytest.mark.parametrize(("optimizer", "momentum", "slots"), [
    ("sgd", 0.0, 0), ("sgd", 0.9, 1), ("rmsprop", 0.0, 1), ("rmsprop", 0.9, 2), ("adam", 0.0, 2),
])  # fmt: skip
def test_optimizer_slots_are_the_per_weight_variables_keras_builds(optimizer, momentum, slots):
    spec = _run(MODELS["dense_bn"][1], optimizer=optimizer, momentum=momentum)
    assert optimizer_slots(spec.training) == slots
    built = build_model(spec.model, (8,), 10, "classification")
    keras_optimizer = make_optimizer(spec.training, total_steps=10)
    keras_optimizer.build(built.trainable_variables)
    per_weight = sum(math.prod(v.shape) for v in keras_optimizer.variables if len(v.shape) > 0)
    assert per_weight == slots * parameter_counts(built)["trainable"]
    memory = group_memory(spec, (8,), 10, total_steps=1, seeds=1)
    assert memory.optimizer_slots == slots * memory.trainable


def test_a_group_holds_every_seeds_state_and_grows_with_the_seeds():
    one = GroupMemory(trainable=10, bn_statistics=4, optimizer_slots=10, activations=100,
                      order=50, seeds=1)  # fmt: skip
    # weights + gradients + slots + statistics + activations in float32, the order in int64
    assert one.per_seed_bytes == (10 + 10 + 10 + 4 + 100) * FLOAT_BYTES + 50 * INDEX_BYTES
    sixteen = GroupMemory(**{**one.__dict__, "seeds": 16})
    assert sixteen.bytes == 16 * one.bytes
    spec = _run(MODELS["dense_bn"][1])
    assert group_memory(spec, (8,), 10, 7, seeds=4).bytes == 2 * group_memory(spec, (8,), 10, 7,
                                                                              seeds=2).bytes


@pytest.mark.parametrize(("count", "shown"), [(0, "0 bytes"), (1023, "1023 bytes"),
                                              (1024, "1.0 KiB"), (1536 * 1024, "1.5 MiB"),
                                              (3 * 2**30, "3.0 GiB"), (2**41, "2.0 TiB")])
def test_sizes_read_in_binary_units(count, shown):
    assert format_bytes(count) == shown


def test_plan_shows_each_groups_estimate_and_the_largest(tmp_path):
    spec = {**copy.deepcopy(TINY_SPEC), "backend": "jax"}
    ablation = {"name": "seeds", "base": "spec.yaml",
                "overrides": {"training.steps": 4, "training.eval_every": 2},
                "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
                "seeds": [0, 1, 2]}  # fmt: skip
    path = write_ablation(tmp_path, ablation, spec)
    shown = CliRunner().invoke(app, ["plan", str(path), "--jobs", "1"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    # TINY_SPEC on digits (64 inputs, 10 classes), batch 16, 4 steps; bn: no bias before BN.
    bn = RunSpec.model_validate({**spec, "model": {**spec["model"], "norm": {"kind": "batch"}},
                                 "training": {**spec["training"], "steps": 4}})  # fmt: skip
    expected = format_bytes(group_memory(bn, (64,), 10, 4, seeds=3).bytes)
    text = " ".join(shown.output.split())
    assert f"g2 ~{expected}" in text
    assert f"the largest is g2, ~{expected} for 3 seeds; --group-size 16 caps the seeds" in text
