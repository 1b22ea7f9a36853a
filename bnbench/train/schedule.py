"""The pure part of training: lengths in steps, evaluation points, the batch order, and the
optimizer, loss and metric choices. No Keras here; `bnbench.train.prepare` turns the choices into
Keras objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bnbench.config.schema import Conv2DBlock, DenseBlock, FlattenBlock, RunSpec, TrainingSpec
from bnbench.errors import SpecError


@dataclass(frozen=True)
class Schedule:
    """The length of a run in the one unit the code speaks: optimizer steps.

    Attributes:
        total_steps: Optimizer steps of the whole run.
        steps_per_epoch: Steps that make up one pass, rounded up (`ceil(num_train / batch)`).
        eval_steps: The steps after which the model is evaluated; the last is `total_steps`.
        num_train: Training examples.
        batch_size: Examples per step.
    """

    total_steps: int
    steps_per_epoch: int
    eval_steps: tuple[int, ...]
    num_train: int
    batch_size: int

    @classmethod
    def from_spec(cls, training: TrainingSpec, num_train: int) -> Schedule:
        """Convert epochs (or steps) and the evaluation cadence to steps, once.

        Every batch is full: the data order runs on across epoch boundaries, so batch norm
        always sees `batch_size` examples (a ragged last batch would change its statistics).
        """
        steps_per_epoch = max(1, math.ceil(num_train / training.batch_size))
        if training.steps is not None:
            total = training.steps
        else:
            total = max(1, math.ceil((training.epochs or 10.0) * num_train / training.batch_size))
        points = evaluation_points(total, training.eval_every or steps_per_epoch)
        return cls(total, steps_per_epoch, points, num_train, training.batch_size)

    def epoch(self, step: int) -> float:
        """Passes over the training set after `step` steps, in the unit `epochs` is given in.

        The examples seen over the training-set size, so a run of `epochs: 8` ends at 8.0
        (the total steps come from `epochs * num_train / batch_size`, rounded up).
        """
        return step * self.batch_size / self.num_train


def evaluation_points(total_steps: int, every: int) -> tuple[int, ...]:
    """The steps after which a run of `total_steps` evaluating every `every` steps evaluates."""
    return (*range(every, total_steps, every), total_steps)


def run_length(spec: RunSpec, sizes: dict[str, int] | None = None) -> tuple[int, int]:
    """(optimizer steps, evaluation points) of a run, counted as `Schedule.from_spec` counts them,
    without building anything.

    The training set's size is read only when the length or the evaluation cadence is given
    in epochs (then the data is loaded from this machine, never downloaded).

    Args:
        spec: the run spec.
        sizes: training-set sizes already read, by dataset section (filled in here).

    Raises:
        SpecError: the size is needed and the data is not on this machine or cannot be read.
    """
    training = spec.training
    if training.steps is not None and training.eval_every is not None:
        return training.steps, len(evaluation_points(training.steps, training.eval_every))
    from bnbench.data.datasets import training_size

    sizes = {} if sizes is None else sizes
    key = spec.dataset.model_dump_json()
    if key not in sizes:
        sizes[key] = training_size(spec.dataset)
    schedule = Schedule.from_spec(training, sizes[key])
    return schedule.total_steps, len(schedule.eval_steps)


def batch_order(num_train: int, total_steps: int, batch_size: int, seed: int) -> np.ndarray:
    """Indices of the examples of every step, one shuffled pass after another.

    Depends only on the seed and the sizes, so paired runs of different arms (and different
    backends) see exactly the same batches in the same order.
    """
    rng = np.random.default_rng(seed)
    needed = total_steps * batch_size
    passes = [rng.permutation(num_train) for _ in range(math.ceil(needed / num_train))]
    return np.concatenate(passes)[:needed]


def resolved_config(spec: RunSpec) -> dict[str, Any]:
    """The spec with every default filled in, as plain data."""
    return spec.model_dump(mode="json")


def loss_and_metrics(training: TrainingSpec, task: str) -> tuple[str, list[str]]:
    """The loss and metric names, with the task's defaults filled in."""
    default_loss = "sparse_categorical_crossentropy" if task == "classification" else "mse"
    default_metrics = ["accuracy"] if task == "classification" else ["mae"]
    return training.loss or default_loss, list(training.metrics or default_metrics)


def check_batch_size(training: TrainingSpec, num_train: int) -> None:
    """Every batch is full, so a batch cannot be larger than the training set.

    Raises:
        SpecError: it is.
    """
    if training.batch_size > num_train:
        raise SpecError(
            f"training.batch_size: {training.batch_size} is larger than the {num_train} "
            "training examples (after dataset.subset and validation_split)"
        )


def check_target(training: TrainingSpec, metrics: list[str]) -> None:
    """The target metric must be one that the run records.

    Raises:
        SpecError: it is not.
    """
    if training.target_metric is None:
        return
    valid = [f"{split}_{m}" for split in ("val", "train") for m in ["loss", *metrics]]
    if training.target_metric not in valid:
        raise SpecError(
            f"training.target_metric: {training.target_metric!r} is not recorded; "
            f"available: {', '.join(valid)}"
        )


# More evaluation points than this makes history.csv (rewritten at each point) quadratic.
MAX_EVAL_POINTS = 100_000
_SLOTS = {"sgd": 1, "rmsprop": 2, "adam": 2}  # optimizer state per weight (momentum, moments)


def check_length(training: TrainingSpec, num_train: int) -> None:
    """A run of no steps, or with more evaluation points than a history can hold, means nothing.

    Raises:
        SpecError: `epochs` gives less than one step, or there are too many evaluation points.
    """
    if training.steps is None and training.epochs is not None:
        exact = training.epochs * num_train / training.batch_size
        if exact < 1:
            raise SpecError(
                f"training.epochs: {training.epochs:g} epochs of {num_train} examples at batch "
                f"{training.batch_size} is {exact:.3g} steps; give at least one step"
            )
    total = training.steps or math.ceil((training.epochs or 10.0) * num_train / training.batch_size)
    every = training.eval_every or max(1, math.ceil(num_train / training.batch_size))
    if total // every > MAX_EVAL_POINTS:
        raise SpecError(
            f"training: {total:,} steps evaluated every {every:,} steps is {total // every:,} "
            f"evaluation points (at most {MAX_EVAL_POINTS:,}); raise training.eval_every"
        )


def memory_estimate(spec: RunSpec, input_shape: tuple[int, ...], outputs: int, total: int) -> int:
    """Bytes a run needs beyond its data, roughly: weights, gradients, optimizer state, order.

    An order-of-magnitude estimate from the spec alone (nothing is built): float32 parameters
    counted layer by layer, one gradient and the optimizer's slots per parameter, and the batch
    order (one int64 index per example of every step).
    """
    params = _parameters(spec, input_shape, outputs)
    slots = _SLOTS.get(spec.training.optimizer, 2)
    return params * 4 * (2 + slots) + total * spec.training.batch_size * 8


def check_memory(spec: RunSpec, input_shape: tuple[int, ...], outputs: int, total: int) -> None:
    """Refuse a run whose estimated memory exceeds what this machine has available.

    Raises:
        SpecError: it does, with the estimate.
    """
    needed = memory_estimate(spec, input_shape, outputs, total)
    available = _available_bytes()
    if available is not None and needed > 0.9 * available:
        raise SpecError(
            f"this run needs about {needed / 2**30:,.1f} GiB (weights, gradients, optimizer "
            f"state and the batch order of {total:,} steps) but {available / 2**30:,.1f} GiB "
            "is available; shrink the model (units, filters) or the run (training.steps/epochs)"
        )


def _parameters(spec: RunSpec, input_shape: tuple[int, ...], outputs: int) -> int:
    shape = list(input_shape)
    total = 0
    for block in spec.model.blocks:
        for _ in range(int(getattr(block, "repeat", 1))):
            count, shape = _block_parameters(block, shape)
            total += count
    return total + (math.prod(shape[-1:]) + 1) * (spec.model.head.units or outputs)


def _block_parameters(block: Any, shape: list[int]) -> tuple[int, list[int]]:
    """Parameters of one block (with its bias and a norm's four vectors) and its output shape."""
    if isinstance(block, DenseBlock):
        return (math.prod(shape[-1:]) + 5) * block.units, [*shape[:-1], block.units]
    if isinstance(block, Conv2DBlock):
        channels = shape[-1] if shape else 1
        height, width = (max(1, d // block.strides) for d in [*shape, 1, 1][:2])
        if block.pool:
            height, width = max(1, height // block.pool_size), max(1, width // block.pool_size)
        count = (block.kernel_size**2 * channels + 5) * block.filters
        return count, [height, width, block.filters]
    if isinstance(block, FlattenBlock):
        return 0, [math.prod(shape)]
    return 0, shape[-1:]  # global average pooling


def _available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo, or None where that is not known."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
