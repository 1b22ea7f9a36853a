"""How much memory a vectorized group of seeds holds, estimated from its spec (nothing is built).

`--group-size` caps the seeds of a group because every seed's state is held at once
(`bnbench.train.vectorized_step.GroupEngine` stacks them on a seed axis); `plan` shows this
estimate per group so that the cap can be chosen before anything trains.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from bnbench.config.schema import (
    Conv2DBlock,
    DenseBlock,
    FlattenBlock,
    ModelSpec,
    NormSpec,
    RunSpec,
    TrainingSpec,
)

FLOAT_BYTES = 4  # every weight, slot, statistic and activation is float32
INDEX_BYTES = 8  # the batch order is int64


@dataclass(frozen=True)
class GroupMemory:
    """The values one seed of a group holds, and the seeds.

    Attributes:
        trainable: Trainable weights (kernels, biases, norm scales and offsets).
        bn_statistics: BN moving means and variances (non-trainable).
        optimizer_slots: The optimizer's per-weight slots (momentum, moments), in values.
        activations: Layer outputs of one training batch, kept for the backward pass.
        order: Batch-order indices (one per example of every step).
        seeds: Seeds in the group.
    """

    trainable: int
    bn_statistics: int
    optimizer_slots: int
    activations: int
    order: int
    seeds: int

    @property
    def per_seed_bytes(self) -> int:
        """Bytes of one seed: weights and their gradients, slots, statistics, activations,
        order."""
        floats = 2 * self.trainable + self.optimizer_slots + self.bn_statistics + self.activations
        return floats * FLOAT_BYTES + self.order * INDEX_BYTES

    @property
    def bytes(self) -> int:
        """Bytes of the whole group: every seed's, held at once."""
        return self.seeds * self.per_seed_bytes


def group_memory(spec: RunSpec, input_shape: tuple[int, ...], output_units: int,
                 total_steps: int, seeds: int) -> GroupMemory:  # fmt: skip
    """Estimate the memory of a group of `seeds` runs of `spec` (a pure function of its args).

    Derivation. The group holds, for each seed, the state `GroupEngine` stacks: the trainable
    weights (counted layer by layer as `bnbench.model.build.build_model` builds them: a dense
    kernel `inputs × units`, a conv kernel `k × k × channels × filters`, a bias unless batch
    norm directly follows the linear layer, `scale`/`center` vectors per norm channel), the BN
    moving mean and variance (two per BN channel, the only non-trainable weights), and the
    optimizer's slots (`optimizer_slots`); one gradient per trainable weight exists during
    each step. Training one step keeps every layer's output for the backward pass: per example
    the input, each linear, norm, activation, pooling, dropout, global-average-pooling and head
    output (a flatten is a reshape and holds nothing new), times the batch size. The batch
    order is one int64 index per example of every step. All of it is float32 and multiplied
    by the seeds. Not counted: the data (held once per group, whatever its size), XLA's
    temporaries and fused buffers (so it is a floor, not a bound), and the evaluation batch
    (inference keeps no activations for a backward pass).

    Args:
        spec: Any run of the group (they differ only in their seed).
        input_shape: One example's shape, as the prepared data gives it.
        output_units: The head's units (classes, or target values per example).
        total_steps: The run's optimizer steps.
        seeds: Seeds in the group.

    Returns:
        The estimate.
    """
    trainable, statistics, per_example = _layers(spec.model, input_shape, output_units)
    return GroupMemory(
        trainable=trainable,
        bn_statistics=statistics,
        optimizer_slots=optimizer_slots(spec.training) * trainable,
        activations=per_example * spec.training.batch_size,
        order=total_steps * spec.training.batch_size,
        seeds=seeds,
    )


def optimizer_slots(training: TrainingSpec) -> int:
    """Values the optimizer keeps per trainable weight, as Keras 3 builds it
    (`bnbench.train.prepare.make_optimizer`): SGD a momentum only when `momentum` > 0, RMSprop
    its mean square plus a momentum when `momentum` > 0, Adam its two moments."""
    if training.optimizer == "adam":
        return 2
    momentum = 1 if training.momentum > 0 else 0
    return momentum + (1 if training.optimizer == "rmsprop" else 0)


def _layers(model: ModelSpec, input_shape: tuple[int, ...], outputs: int) -> tuple[int, int, int]:
    """(trainable weights, BN statistics, activation values per example) of `model`."""
    shape = list(model.input_shape or input_shape)
    trainable, statistics = 0, 0
    activations = math.prod(shape)  # the input batch itself
    if model.input_norm is not None:
        input_norm = NormSpec(kind="batch", center=model.input_norm.center,
                              scale=model.input_norm.scale)  # fmt: skip
        weights, stats = _norm(input_norm, shape[-1])
        trainable, statistics = trainable + weights, statistics + stats
        activations += math.prod(shape)
    for block in _expanded(model):
        if isinstance(block, DenseBlock | Conv2DBlock):
            norm = block.norm or model.norm
            bias = not (norm.kind == "batch" and norm.placement == "before_activation")
            if isinstance(block, DenseBlock):
                trainable += shape[-1] * block.units + (block.units if bias else 0)
                shape = [block.units]
            else:
                trainable += block.kernel_size**2 * shape[-1] * block.filters
                trainable += block.filters if bias else 0
                shape = [*(_side(side, block) for side in shape[:2]), block.filters]
            weights, stats = _norm(norm, shape[-1])
            trainable, statistics = trainable + weights, statistics + stats
            layers = 2 + (norm.kind != "none")  # linear, (norm,) activation
            activations += layers * math.prod(shape)
            if isinstance(block, Conv2DBlock) and block.pool:
                shape = [*(side // block.pool_size for side in shape[:2]), shape[-1]]
                activations += math.prod(shape)
            if block.dropout:
                activations += math.prod(shape)
        elif isinstance(block, FlattenBlock):
            shape = [math.prod(shape)]
        else:  # global average pooling
            shape = shape[-1:]
            activations += shape[0]
    units = model.head.units or outputs
    trainable += shape[-1] * units + units
    return trainable, statistics, activations + units


def _expanded(model: ModelSpec) -> Iterable[object]:
    """The blocks, each `repeat` copy on its own, as `build_model` expands them."""
    for block in model.blocks:
        copies = block.repeat if isinstance(block, DenseBlock | Conv2DBlock) else 1
        yield from [block] * copies


def _side(side: int, block: Conv2DBlock) -> int:
    """A convolution's output side, as Keras computes it for the block's padding."""
    if block.padding == "valid":
        return (side - block.kernel_size) // block.strides + 1
    return -(-side // block.strides)


def _norm(norm: NormSpec, channels: int) -> tuple[int, int]:
    """(trainable weights, BN statistics) of a norm over `channels` channels."""
    if norm.kind == "none":
        return 0, 0
    weights = (int(norm.scale) + int(norm.center)) * channels
    return weights, 2 * channels if norm.kind == "batch" else 0


def format_bytes(count: int) -> str:
    """'912 bytes', '12.0 KiB', '3.4 MiB': a size for people, in binary units."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"
