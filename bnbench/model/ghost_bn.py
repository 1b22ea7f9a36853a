"""Ghost batch normalization: batch norm whose training statistics come from sub-batches.

Hoffer et al. (2017) normalize each "ghost" batch of `virtual_batch_size` examples with its own
mean and variance, which keeps the noise of small-batch statistics while the optimizer sees a
large batch. Keras 2's `BatchNormalization(virtual_batch_size=...)` did this; Keras 3 dropped the
option, so this layer restores it.

This module imports Keras at import time; the model builder imports it only when a spec asks for
ghost batches.

Reference:
    Hoffer, Hubara & Soudry, "Train longer, generalize better: closing the generalization gap in
    large batch training of neural networks", NeurIPS 2017.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bnbench")
class GhostBatchNormalization(keras.layers.BatchNormalization):  # type: ignore[misc]
    """Batch normalization over ghost batches of `virtual_batch_size` examples in training.

    In inference mode it is the stock layer (moving statistics). In training mode the batch is
    split, in order, into ghost batches of `virtual_batch_size` examples; each is normalized with
    its own mean and (biased) variance, and the moving statistics move towards the mean over
    ghost batches of those means and variances, as Keras 2 did:
    `moving = moving * momentum + mean_over_ghosts * (1 - momentum)`. The weights are the stock
    layer's (`gamma`, `beta`, `moving_mean`, `moving_variance`), so it is an instance of
    `keras.layers.BatchNormalization` for every tool that looks for batch norm.

    Args:
        virtual_batch_size: Examples per ghost batch; every training batch must be a multiple.
        **kwargs: `keras.layers.BatchNormalization` arguments (axis, momentum, epsilon, center,
            scale, ..., name).

    Call arguments:
        inputs: Input tensor of any rank, examples along the first axis.
        training: Whether to normalize with ghost-batch statistics (and update the moving ones)
            or with the moving statistics.
        mask: Not supported with ghost batches in training mode.

    Reference:
        Hoffer et al., "Train longer, generalize better", NeurIPS 2017 (Sec. 4, Algorithm 1).
    """

    def __init__(self, virtual_batch_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(virtual_batch_size) < 2:
            raise ValueError(f"virtual_batch_size must be at least 2, got {virtual_batch_size}")
        self.virtual_batch_size = int(virtual_batch_size)

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        if not (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        if mask is not None:
            raise ValueError("GhostBatchNormalization does not take a mask in training mode")
        size, batch = self.virtual_batch_size, inputs.shape[0]
        if batch is not None and not isinstance(batch, int):
            # A symbolic batch dimension (JAX shape inference, as when Keras infers a wrapper's
            # output shape) cannot be proven divisible; the output has the input's shape anyway.
            return super().call(inputs, training=training, mask=mask)
        if batch is not None and batch % size:
            raise ValueError(
                f"{self.name}: a batch of {batch} examples does not split into ghost batches of "
                f"{size}; the batch size must be a multiple of virtual_batch_size"
            )
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        rest = tuple(inputs.shape[1:])
        ghosts = ops.reshape(x, (-1, size, *rest))
        channel = self.axis % len(inputs.shape) + 1  # the layer's axis, in the ghost tensor
        axes = [a for a in range(1, len(ghosts.shape)) if a != channel]
        mean, variance = ops.moments(ghosts, axes=axes, keepdims=True)
        normalized = (ghosts - mean) * ops.rsqrt(variance + self.epsilon)
        broadcast = [1] * len(ghosts.shape)
        broadcast[channel] = -1
        if self.scale:
            normalized = normalized * ops.reshape(ops.cast(self.gamma, x.dtype), broadcast)
        if self.center:
            normalized = normalized + ops.reshape(ops.cast(self.beta, x.dtype), broadcast)
        reduce_all = [a for a in range(len(ghosts.shape)) if a != channel]
        for moving, batch_value in ((self.moving_mean, mean), (self.moving_variance, variance)):
            value = ops.mean(batch_value, axis=reduce_all)
            moving.assign(ops.cast(moving, x.dtype) * self.momentum + value * (1.0 - self.momentum))
        outputs = ops.reshape(normalized, (-1, *rest))
        return ops.cast(outputs, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {**config, "virtual_batch_size": self.virtual_batch_size}
