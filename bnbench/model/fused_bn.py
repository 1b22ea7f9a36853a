"""A BatchNormalization layer that uses TensorFlow's fused kernel when it can.

Keras 3's `keras.layers.BatchNormalization` computes moments and the affine
transform with separate ops on every backend. On the TensorFlow backend a single
`FusedBatchNormV3` kernel does the same work (forward and backward) noticeably
faster for 4-D channels-last inputs. `FusedBatchNormalization` takes that fast
path where it is exact and otherwise defers to the stock layer, so it can be
swapped in anywhere the stock layer is used, including in saved models: it
serializes as the stock `BatchNormalization`.

This module imports Keras at import time; TensorFlow is imported only inside the
TensorFlow-specific code path, so the module also loads on other backends.
"""

from __future__ import annotations

from typing import Any

import keras

# `FusedBatchNormV3` handles float16/bfloat16/float32 inputs, but the stock layer
# computes in float32 whenever the inputs are narrower (see its `call`), so the
# fast path runs in float32 exactly when the stock layer would.
_FUSED_COMPUTE_DTYPE = "float32"
# cuDNN rejects epsilon below CUDNN_BN_MIN_EPSILON (1e-5); tf.keras 2 used the
# same threshold to decide whether its fused path was allowed.
_FUSED_MIN_EPSILON = 1.001e-5


class FusedBatchNormalization(keras.layers.BatchNormalization):  # type: ignore[misc]
    """Layer that normalizes its inputs, using a fused kernel where possible.

    A drop-in replacement for `keras.layers.BatchNormalization`: same
    constructor arguments, same weights (`gamma`, `beta`, `moving_mean`,
    `moving_variance`), same `get_config()`, same outputs and moving-statistics
    updates. On the TensorFlow backend, for 4-D float32 inputs normalized over
    the last axis, training and inference both run TensorFlow's
    `FusedBatchNormV3` kernel. Every other case (other backends, other ranks or
    axes, masks, `synchronized=True`, `renorm=True`, float64 inputs,
    `epsilon < 1.001e-5`) runs the stock layer's code.

    In training mode the moving statistics are updated as in the stock layer:
    `moving = moving * momentum + batch * (1 - momentum)`, with the biased
    (divide-by-`n`) batch variance.

    Keras sees the class under the stock name: a model saved with this layer
    records it as `keras.layers.BatchNormalization` (and loads with plain Keras,
    no `custom_objects`, as the stock layer), and auto-generated layer names and
    `model.summary()` say `batch_normalization` / `BatchNormalization`.

    Args:
        axis: Integer, the axis that should be normalized (typically the
            features axis). The fused path needs the last axis (`-1` or `3`).
        momentum: Momentum for the moving average.
        epsilon: Small float added to variance to avoid dividing by zero.
        center: If `True`, add offset of `beta` to normalized tensor.
            If `False`, `beta` is ignored.
        scale: If `True`, multiply by `gamma`. If `False`, `gamma` is not used.
        beta_initializer: Initializer for the beta weight.
        gamma_initializer: Initializer for the gamma weight.
        moving_mean_initializer: Initializer for the moving mean.
        moving_variance_initializer: Initializer for the moving variance.
        beta_regularizer: Optional regularizer for the beta weight.
        gamma_regularizer: Optional regularizer for the gamma weight.
        beta_constraint: Optional constraint for the beta weight.
        gamma_constraint: Optional constraint for the gamma weight.
        synchronized: Only applicable with the TensorFlow backend. If `True`,
            synchronizes batch statistics across replicas (stock code path).
        renorm: Whether to use Batch Renormalization (stock code path).
        renorm_clipping: Dictionary of `"rmax"`, `"rmin"`, `"dmax"` clipping
            values, valid only if `renorm=True`.
        renorm_momentum: Momentum of the renorm moving statistics, valid only
            if `renorm=True`.
        **kwargs: Base layer keyword arguments (e.g. `name` and `dtype`).

    Call arguments:
        inputs: Input tensor (of any rank).
        training: Python boolean indicating whether the layer should behave in
            training mode (normalize with the batch statistics and update the
            moving statistics) or in inference mode (normalize with the moving
            statistics). A layer with `trainable=False` always runs in
            inference mode.
        mask: Binary tensor of shape broadcastable to `inputs`, with `True`
            marking the positions used for the batch statistics. A mask always
            selects the stock code path.

    Reference:

    - [Ioffe and Szegedy, 2015](https://arxiv.org/abs/1502.03167).
    """

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        is_training = bool(training) and self.trainable
        outputs, batch_mean, batch_variance = _tf_fused_batch_norm(
            inputs,
            gamma=self.gamma,
            beta=self.beta,
            moving_mean=self.moving_mean,
            moving_variance=self.moving_variance,
            epsilon=self.epsilon,
            training=is_training,
        )
        if is_training:
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + batch_mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + batch_variance * (1.0 - momentum)
            )
        return keras.ops.cast(outputs, self.compute_dtype)

    def _can_fuse(self, inputs: Any, mask: Any) -> bool:
        """Whether `FusedBatchNormV3` computes exactly what the stock layer does."""
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.synchronized
            and not self.renorm
            and self.epsilon >= _FUSED_MIN_EPSILON
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.result_type(inputs.dtype, "float32") == _FUSED_COMPUTE_DTYPE
        )


def _tf_fused_batch_norm(
    inputs: Any,
    *,
    gamma: Any,
    beta: Any,
    moving_mean: Any,
    moving_variance: Any,
    epsilon: float,
    training: bool,
) -> tuple[Any, Any, Any]:
    """Runs TensorFlow's fused batch norm on NHWC inputs.

    The only backend-specific code in this module.

    Args:
        inputs: 4-D channels-last tensor; computed in float32.
        gamma: Scale variable, or `None` for `scale=False` (uses ones).
        beta: Offset variable, or `None` for `center=False` (uses zeros).
        moving_mean: Moving mean variable, used when `training` is `False`.
        moving_variance: Moving variance variable, used when `training` is
            `False`.
        epsilon: Small float added to the variance.
        training: Normalize with the batch statistics instead of the moving ones.

    Returns:
        `(outputs, batch_mean, batch_variance)`: the float32 normalized tensor
        and, in training mode, the batch mean and the biased batch variance
        (`None` for both in inference mode).
    """
    import tensorflow as tf

    inputs = tf.cast(inputs, tf.float32)
    channels = inputs.shape[-1]
    scale = tf.ones([channels]) if gamma is None else tf.cast(gamma, tf.float32)
    offset = tf.zeros([channels]) if beta is None else tf.cast(beta, tf.float32)
    if not training:
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            scale,
            offset,
            mean=tf.cast(moving_mean, tf.float32),
            variance=tf.cast(moving_variance, tf.float32),
            epsilon=epsilon,
            data_format="NHWC",
            is_training=False,
        )
        return outputs, None, None
    # exponential_avg_factor=1.0 makes the kernel return the plain batch
    # statistics; the moving average is applied by the caller, as in Keras.
    outputs, batch_mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
        inputs,
        scale,
        offset,
        epsilon=epsilon,
        data_format="NHWC",
        is_training=True,
        exponential_avg_factor=1.0,
    )
    # The kernel normalizes with the biased variance but returns the
    # Bessel-corrected one (times n / (n - 1)); Keras' moving variance tracks
    # the biased one, so undo the correction. For n == 1 both are 0.
    count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
    biased_variance = unbiased_variance * (tf.maximum(count - 1.0, 1.0) / count)
    return outputs, batch_mean, biased_variance


def batch_normalization_layer(*, fused: bool = True, **kwargs: Any) -> keras.layers.Layer:
    """Builds a BatchNormalization layer, fused when the backend allows it.

    Args:
        fused: Use `FusedBatchNormalization` on the TensorFlow backend. Ignored
            on other backends, where the fused kernel does not exist.
        **kwargs: Arguments of `keras.layers.BatchNormalization`.

    Returns:
        A `FusedBatchNormalization` if `fused` and the backend is TensorFlow,
        else a stock `keras.layers.BatchNormalization`.
    """
    if fused and keras.backend.backend() == "tensorflow":
        return FusedBatchNormalization(**kwargs)
    return keras.layers.BatchNormalization(**kwargs)


def _save_as_stock(cls: type) -> None:
    """Make Keras' saver record `cls` exactly as the stock `keras.layers.BatchNormalization`.

    Two things in a `.keras` file name the class, and plain Keras must read the stock one:
    - the weight paths ("layers/batch_normalization_1/vars") and auto-generated layer names
      come from the class `__name__`, so it becomes "BatchNormalization" (`__qualname__`,
      which pickling uses, stays "FusedBatchNormalization");
    - the config's "module", "class_name" and "registered_name" are the public `keras.*`
      name for classes in Keras' export table, and `module`, `__name__` and a registered
      name otherwise, which plain Keras cannot load (the stock layer's registered name is
      None). Keras has no public API for this: `keras.saving.register_keras_serializable`
      records a registered name, so loading would need bnbench. The one private use of
      Keras in bnbench is therefore here: an object -> name entry (never name -> object, so
      loading still builds the stock class). `tests/test_fused_bn.py` checks the export
      table and saves and reloads a model, so a Keras change fails loudly there.

    Raises:
        ImportError: this Keras has no export table, or no public name for the stock layer.
    """
    from keras.src import api_export

    name = api_export.get_name_from_symbol(keras.layers.BatchNormalization)
    if name != "keras.layers.BatchNormalization":
        raise ImportError(
            "bnbench.model.fused_bn: this Keras does not export BatchNormalization as "
            f"keras.layers.BatchNormalization (got {name!r}); saved models would not load"
        )
    cls.__name__ = "BatchNormalization"
    api_export.REGISTERED_OBJS_TO_NAMES[cls] = name


_save_as_stock(FusedBatchNormalization)
