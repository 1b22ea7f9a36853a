"""The variance-shift probe of Li et al. (2019), the numbers behind `diagnostics.variance_shift`.

Dropout scales the units it keeps by 1 / (1 - rate) in training and does nothing in inference,
so the layer after it sees a larger variance in training than at inference. A batch-norm layer
fed by dropout gathers its moving variance in training and then normalizes inference-mode inputs
with it: Li et al. call the mismatch the variance shift. The probe measures it on a fixed batch,
for every batch-norm layer, as Var(input with dropout on) / Var(input with dropout off), with
every batch-norm layer normalizing by its moving statistics in both passes: only dropout
differs. (Were the earlier BN layers switched to batch statistics too, their moving averages'
lag early in training would move the ratio by orders of magnitude without any dropout.) A BN
layer after other BN layers still sees the shift of a dropout further up: inference-mode BN is
an affine map and passes it on.

Reference:
    Li, Chen, Hu & Yang, "Understanding the Disharmony between Dropout and Batch Normalization
    by Variance Shift", CVPR 2019.
"""

from __future__ import annotations

from typing import Any

import numpy as np

COLUMNS = ["step", "layer", "fed_by_dropout", "variance_ratio", "train_mode_variance",
           "inference_mode_variance", "averaged_units"]  # fmt: skip


def fed_by_dropout(model: Any) -> set[str]:
    """Names of the batch-norm layers with a dropout layer between them and the previous batch-
    norm layer (or the model's input), in the model's layer order."""
    import keras

    fed, dropout_seen = set(), False
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            dropout_seen = True
        elif isinstance(layer, keras.layers.BatchNormalization):
            if dropout_seen:
                fed.add(layer.name)
            dropout_seen = False
    return fed


def variance_row(
    step: int, layer: str, fed: bool, train: np.ndarray, inference: np.ndarray, axis: int
) -> list[Any]:
    """One `variance_shift.csv` row from a layer's input in training and in inference mode.

    Each unit's (channel's) variance is taken over the probe's examples (and positions), the
    biased estimate that batch norm itself uses. The ratio is the geometric mean over units of
    train / inference variance, a ratio's natural average (a unit at 2 and one at 1/2 average
    to 1); units whose variance is zero in either mode (dead units) are left out, and
    `averaged_units` says how many remain (the ratio is NaN without any).

    Args:
        step: The training step.
        layer: The batch-norm layer's name.
        fed: Whether dropout feeds it (`fed_by_dropout`).
        train: Its input on the probe with dropout on.
        inference: Its input on the same probe with dropout off.
        axis: The layer's feature axis.
    """
    channel = axis % train.ndim
    reduce = tuple(i for i in range(train.ndim) if i != channel)
    train_var = train.var(axis=reduce, dtype=np.float64)
    inference_var = inference.var(axis=reduce, dtype=np.float64)
    usable = (train_var > 0) & (inference_var > 0) & np.isfinite(train_var * inference_var)
    count = int(usable.sum())
    log_ratio = np.log(train_var[usable]) - np.log(inference_var[usable])
    ratio = float(np.exp(log_ratio.mean())) if count else float("nan")
    return [step, layer, fed, ratio, float(train_var.mean()), float(inference_var.mean()), count]
