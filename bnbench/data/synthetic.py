"""Seeded synthetic datasets in pure numpy: small enough to train on a laptop CPU in seconds.

The seed picks the sample, never the task: the data-generating distribution of each dataset
depends only on its shape arguments, so a train and a test set drawn with different seeds come
from the same distribution.
"""

from __future__ import annotations

import numpy as np

# Neighbouring blob centres sit this many units apart, so `spread=1.0` gives a task that is
# learnable but not trivial (two neighbouring classes overlap by about Phi(-2) = 2%).
_CENTRE_DISTANCE = 4.0


def two_scale(num_samples: int, seed: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The two-feature regression with badly mismatched feature scales.

    Features A ~ U(1, 10) and B ~ U(1, 200); target y = 2A + 3B + N(0, noise^2). The scales
    differ by a factor of ~20, so the MSE loss surface of a linear model is a narrow valley and
    gradient descent on raw features converges slowly: the classic motivation for normalizing
    inputs (LeCun et al., "Efficient BackProp", 1998) that Batch Normalization extends to
    hidden layers.

    Args:
        num_samples: Number of examples, at least 1.
        seed: Seed of the numpy generator, a non-negative integer.
        noise: Standard deviation of the Gaussian target noise, non-negative.

    Returns:
        `(x, y)`: `x` of shape `(num_samples, 2)` with columns A, B and `y` of shape
        `(num_samples, 1)`, both float32.

    Raises:
        ValueError: If an argument is out of range.
    """
    _check_common(num_samples, seed)
    if not noise >= 0.0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    a = rng.uniform(1.0, 10.0, num_samples)
    b = rng.uniform(1.0, 200.0, num_samples)
    y = 2.0 * a + 3.0 * b + rng.normal(0.0, noise, num_samples)
    x = np.stack([a, b], axis=1).astype(np.float32)
    return x, y.reshape(-1, 1).astype(np.float32)


def blobs(
    num_samples: int,
    seed: int,
    num_classes: int = 3,
    num_features: int = 2,
    spread: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: one isotropic Gaussian per class around a fixed centre.

    The centres lie evenly on a circle in the first two features (on a line when
    `num_features == 1`), neighbours 4 units apart; further features are pure noise. Classes
    are balanced (sizes differ by at most one) and the examples are shuffled.

    Args:
        num_samples: Number of examples, at least 1.
        seed: Seed of the numpy generator, a non-negative integer.
        num_classes: Number of classes, at least 2.
        num_features: Number of features, at least 1.
        spread: Standard deviation of each blob, positive.

    Returns:
        `(x, y)`: float32 features of shape `(num_samples, num_features)` and int32 labels of
        shape `(num_samples,)` with values in `0 .. num_classes - 1`.

    Raises:
        ValueError: If an argument is out of range.
    """
    _check_common(num_samples, seed)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features!r}")
    if not spread > 0.0:
        raise ValueError(f"spread must be > 0, got {spread!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_samples) % num_classes)
    centres = _blob_centres(num_classes, num_features)
    x = centres[labels] + rng.normal(0.0, spread, (num_samples, num_features))
    return x.astype(np.float32), labels.astype(np.int32)


def _blob_centres(num_classes: int, num_features: int) -> np.ndarray:
    centres = np.zeros((num_classes, num_features))
    if num_features == 1:
        centres[:, 0] = _CENTRE_DISTANCE * (np.arange(num_classes) - (num_classes - 1) / 2)
        return centres
    # Chord between neighbours on a circle of radius r is 2 r sin(pi / k).
    radius = _CENTRE_DISTANCE / (2.0 * np.sin(np.pi / num_classes))
    angles = 2.0 * np.pi * np.arange(num_classes) / num_classes
    centres[:, 0] = radius * np.cos(angles)
    centres[:, 1] = radius * np.sin(angles)
    return centres


def _check_common(num_samples: int, seed: int) -> None:
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
