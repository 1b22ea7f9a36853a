"""Build a Keras Sequential model from a model spec.

Layer names follow one contract that the diagnostics rely on: `input_norm` (batch norm on the
inputs, when `model.input_norm` asks for it) comes first; block i (1-based, counting each
copy of a block with `repeat: n` as a block of its own) yields
`block{i}_dense` or `block{i}_conv`, then `block{i}_norm` and `block{i}_act` in the order the
placement sets, then `block{i}_pool` and `block{i}_dropout`; `block{i}_flatten` and
`block{i}_gap` stand alone; the output layer is `head`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bnbench.config.registries import ACTIVATIONS, INITIALIZERS, VARIANCE_SCALING
from bnbench.config.schema import (
    Conv2DBlock,
    DenseBlock,
    FlattenBlock,
    GlobalAvgPoolBlock,
    InitializerArgs,
    InputNormSpec,
    ModelSpec,
    NormSpec,
    RandomNormalInit,
    RandomUniformInit,
    ScaledInit,
    VarianceScalingInit,
)
from bnbench.errors import SpecError

if TYPE_CHECKING:
    import keras


def normalization_layer(norm: NormSpec, name: str, channels: int) -> keras.layers.Layer | None:
    """Return the Keras layer for `norm`, or None for kind 'none'.

    Batch norm with `virtual_batch_size` is ghost batch norm (`bnbench.model.ghost_bn`, never
    the fused kernel); otherwise it is the stock layer or its fused drop-in.

    Raises:
        SpecError: group norm whose group count does not divide the channels.
    """
    import keras

    if norm.kind == "batch" and norm.virtual_batch_size is not None:
        from bnbench.model.ghost_bn import GhostBatchNormalization

        return GhostBatchNormalization(
            norm.virtual_batch_size,
            momentum=norm.momentum,
            epsilon=norm.epsilon,
            center=norm.center,
            scale=norm.scale,
            name=name,
        )
    if norm.kind == "batch":
        from bnbench.model.fused_bn import batch_normalization_layer

        return batch_normalization_layer(
            fused=norm.fused,
            momentum=norm.momentum,
            epsilon=norm.epsilon,
            center=norm.center,
            scale=norm.scale,
            name=name,
        )
    if norm.kind == "layer":
        return keras.layers.LayerNormalization(
            epsilon=norm.epsilon, center=norm.center, scale=norm.scale, name=name
        )
    if norm.kind == "group":
        if channels % norm.groups:
            raise SpecError(
                f"{name}: group norm needs groups to divide the {channels} channels, "
                f"got groups={norm.groups}"
            )
        return keras.layers.GroupNormalization(
            groups=norm.groups,
            epsilon=norm.epsilon,
            center=norm.center,
            scale=norm.scale,
            name=name,
        )
    return None


def input_normalization(spec: InputNormSpec, channels: int) -> keras.layers.Layer:
    """The `input_norm` layer: batch norm over the last axis of the raw inputs.

    It standardizes each feature (each channel of an image) with batch statistics, and has no
    linear layer before it, so the bias rule of `block_layers` does not apply.
    """
    norm = NormSpec(kind="batch", momentum=spec.momentum, epsilon=spec.epsilon,
                    center=spec.center, scale=spec.scale)  # fmt: skip
    layer = normalization_layer(norm, "input_norm", channels)
    assert layer is not None  # kind "batch" always gives a layer
    return layer


def kernel_initializer(spec: str | InitializerArgs) -> str | keras.initializers.Initializer:
    """The `kernel_initializer` argument for a spec's initializer.

    A plain name goes to Keras as the string it always was, so those weights stay exactly what
    they were. The mapping form builds the Keras initializer from its arguments; call this just
    before the layer it is for, because its seed is drawn when it is made (as Keras draws a
    name's when the layer is made), and that order is what `keras.utils.set_random_seed` fixes.

    Args:
        spec: a registry name, or one of the initializer argument specs.

    Returns:
        A Keras initializer name or object.
    """
    import keras

    if isinstance(spec, str):
        return INITIALIZERS[spec]
    if isinstance(spec, RandomNormalInit):
        return keras.initializers.RandomNormal(mean=spec.mean, stddev=spec.stddev)
    if isinstance(spec, RandomUniformInit):
        return keras.initializers.RandomUniform(minval=spec.minval, maxval=spec.maxval)
    if isinstance(spec, ScaledInit):
        _, mode, distribution = VARIANCE_SCALING[spec.kind]
        return keras.initializers.VarianceScaling(spec.scale, mode, distribution)
    if isinstance(spec, VarianceScalingInit):
        return keras.initializers.VarianceScaling(spec.scale, spec.mode, spec.distribution)
    return INITIALIZERS[spec.kind]  # zeros: nothing to configure


def block_layers(
    index: int, linear_kind: str, linear_args: dict[str, Any], norm: NormSpec, activation: str
) -> list[keras.layers.Layer]:
    """Turn one block into linear → norm → activation layers (or linear → activation → norm).

    This is the one place that owns the normalization rules:

    * Placement. `before_activation` normalizes the linear output, the input of the
      nonlinearity, as Ioffe & Szegedy (2015, Sec. 3.2) do; `after_activation` normalizes the
      activation's output instead.
    * Bias. Batch norm placed directly after the linear layer subtracts each unit's batch mean,
      which cancels a per-unit bias exactly; its beta takes the bias' role (Ioffe & Szegedy
      2015, Sec. 3.2), so the linear layer is built without one. Batch norm centres even with
      `center: false` (only beta goes away), so the rule does not depend on `center`. Layer and
      group norm subtract a mean over units, not per unit: only the mean of a bias vector
      cancels, the rest still shifts units relative to each other, so those keep the bias.
      After the activation, no norm follows the linear layer directly and the bias stays.

    Args:
        index: 1-based block number, used in layer names.
        linear_kind: "dense" or "conv".
        linear_args: keyword arguments for `keras.layers.Dense` or `keras.layers.Conv2D`.
        norm: the resolved normalization spec for this block.
        activation: the activation name (a key of the activation registry).

    Returns:
        The layers in order.
    """
    import keras

    use_bias = not (norm.kind == "batch" and norm.placement == "before_activation")
    units = linear_args["units"] if linear_kind == "dense" else linear_args["filters"]
    linear_cls = keras.layers.Dense if linear_kind == "dense" else keras.layers.Conv2D
    linear = linear_cls(**linear_args, use_bias=use_bias, name=f"block{index}_{linear_kind}")
    act = keras.layers.Activation(ACTIVATIONS[activation], name=f"block{index}_act")
    norm_layer = normalization_layer(norm, f"block{index}_norm", int(units))
    if norm_layer is None:
        return [linear, act]
    if norm.placement == "before_activation":
        return [linear, norm_layer, act]
    return [linear, act, norm_layer]


def build_model(
    spec: ModelSpec, input_shape: tuple[int, ...], output_units: int, task: str
) -> keras.Sequential:
    """Build (but do not compile) the Sequential model described by `spec`.

    Args:
        spec: the model section of a run spec.
        input_shape: shape of one example, used when `spec.input_shape` is omitted.
        output_units: units of the head when `spec.head.units` is omitted.
        task: "classification" (softmax head) or "regression" (linear head).

    Raises:
        SpecError: a block does not fit the shape of its input (for example a conv2d block
            after the input has been flattened), or the spec's input shape disagrees with the data.
    """
    import keras

    shape = tuple(spec.input_shape) if spec.input_shape else tuple(input_shape)
    if spec.input_shape and tuple(spec.input_shape) != tuple(input_shape):
        raise SpecError(
            f"model.input_shape: {list(spec.input_shape)} does not match the dataset's "
            f"examples, which have shape {list(input_shape)}"
        )
    if spec.head.units is not None and spec.head.units != output_units:
        what = "classes" if task == "classification" else "target values per example"
        raise SpecError(
            f"model.head.units: {spec.head.units} does not match the dataset's {output_units} "
            f"{what}; leave it out to infer it"
        )
    layers: list[keras.layers.Layer] = [keras.Input(shape=shape, name="input")]
    if spec.input_norm is not None:
        layers.append(input_normalization(spec.input_norm, int(shape[-1])))
    rank = len(shape)  # feature-map rank: 3 for (h, w, c), 1 for vectors
    size = min(shape[:2]) if rank == 3 else 0  # the smaller spatial side of the feature map
    # A block with `repeat: n` stands for n copies; each copy is a block of its own in the names.
    expanded = [
        (position, block)
        for position, block in enumerate(spec.blocks)
        for _ in range(block.repeat if isinstance(block, DenseBlock | Conv2DBlock) else 1)
    ]
    for i, (position, block) in enumerate(expanded, start=1):
        where = f"model.blocks[{position}] ({block.type})"
        if isinstance(block, DenseBlock | Conv2DBlock):
            norm = block.norm or spec.norm
            activation = block.activation or spec.activation
            initializer = kernel_initializer(block.initializer or spec.initializer)
            if isinstance(block, Conv2DBlock):
                if rank != 3:
                    raise SpecError(
                        f"{where}: conv2d needs image-shaped input (height, width, channels), "
                        f"but its input is flat; remove dataset.flatten or move the block "
                        "before any flatten/dense block"
                    )
                size = _feature_map_size(block, size, where)
                args: dict[str, Any] = dict(
                    filters=block.filters,
                    kernel_size=block.kernel_size,
                    strides=block.strides,
                    padding=block.padding,
                    kernel_initializer=initializer,
                )
                layers += block_layers(i, "conv", args, norm, activation)
                if block.pool:
                    pool = (
                        keras.layers.MaxPooling2D
                        if block.pool == "max"
                        else keras.layers.AveragePooling2D
                    )
                    layers.append(pool(pool_size=block.pool_size, name=f"block{i}_pool"))
            else:
                if rank != 1:
                    raise SpecError(
                        f"{where}: dense needs a flat input; add a 'flatten' or "
                        "'global_avg_pool' block before it, or set dataset.flatten: true"
                    )
                args = dict(units=block.units, kernel_initializer=initializer)
                layers += block_layers(i, "dense", args, norm, activation)
            if block.dropout:
                layers.append(keras.layers.Dropout(block.dropout, name=f"block{i}_dropout"))
        elif isinstance(block, FlattenBlock):
            layers.append(keras.layers.Flatten(name=f"block{i}_flatten"))
            rank = 1
        elif isinstance(block, GlobalAvgPoolBlock):
            if rank != 3:
                raise SpecError(
                    f"{where}: global_avg_pool needs image-shaped input, got a flat one"
                )
            layers.append(keras.layers.GlobalAveragePooling2D(name=f"block{i}_gap"))
            rank = 1
    if rank != 1:
        raise SpecError(
            "model.blocks: the last block leaves an image-shaped output; end with a "
            "'flatten' or 'global_avg_pool' block (before the dense head)"
        )
    head_activation = spec.head.activation or ("softmax" if task == "classification" else "linear")
    layers.append(
        keras.layers.Dense(
            spec.head.units or output_units,
            activation=ACTIVATIONS[head_activation],
            kernel_initializer=kernel_initializer(spec.head.initializer or spec.initializer),
            name="head",
        )
    )
    try:
        return keras.Sequential(layers, name="bnbench_model")
    except ValueError as err:  # e.g. a kernel or pool larger than the feature map
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
        raise SpecError(
            f"model: the blocks do not fit the input shape {list(shape)}: "
            f"{plain[0] if plain else type(err).__name__}"
        ) from None


def _feature_map_size(block: Conv2DBlock, size: int, where: str) -> int:
    """The smaller spatial side after the block's convolution and pooling.

    Raises:
        SpecError: the kernel or the pool does not fit the feature map.
    """
    if block.padding == "valid":
        if block.kernel_size > size:
            raise SpecError(
                f"{where}: kernel_size {block.kernel_size} is larger than its {size}×{size} "
                "input; use padding: same or a smaller kernel"
            )
        size = (size - block.kernel_size) // block.strides + 1
    else:
        size = -(-size // block.strides)
    if block.pool:
        if block.pool_size > size:
            raise SpecError(
                f"{where}: pool_size {block.pool_size} is larger than its {size}×{size} feature "
                "map; remove the pool or use fewer pooling blocks"
            )
        size //= block.pool_size
    return size


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Trainable and non-trainable parameter counts."""
    import numpy as np

    def count(variables: list[Any]) -> int:
        return int(sum(int(np.prod(v.shape)) for v in variables))

    return {
        "trainable": count(model.trainable_weights),
        "non_trainable": count(model.non_trainable_weights),
    }
