"""Synthetic datasets: shapes, dtypes, ranges, and seeds that pick the sample, not the task."""

from __future__ import annotations

import numpy as np
import pytest

from bnbench.data.synthetic import blobs, two_scale


def test_two_scale_shapes_dtypes_and_ranges() -> None:
    x, y = two_scale(1000, seed=0)
    assert x.shape == (1000, 2) and x.dtype == np.float32
    assert y.shape == (1000, 1) and y.dtype == np.float32
    assert x[:, 0].min() >= 1 and x[:, 0].max() <= 10
    assert x[:, 1].min() >= 1 and x[:, 1].max() <= 200
    assert x[:, 1].std() > 15 * x[:, 0].std()  # the point of the dataset


def test_two_scale_target_is_the_stated_linear_function() -> None:
    x, y = two_scale(500, seed=1, noise=0.0)
    np.testing.assert_allclose(y[:, 0], 2 * x[:, 0] + 3 * x[:, 1], rtol=1e-5)
    x, y = two_scale(5000, seed=1, noise=0.5)
    residual = y[:, 0] - (2 * x[:, 0] + 3 * x[:, 1])
    assert residual.std() == pytest.approx(0.5, rel=0.1)


def test_two_scale_is_deterministic_per_seed() -> None:
    first, second, other = two_scale(50, seed=3), two_scale(50, seed=3), two_scale(50, seed=4)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_samples": 0, "seed": 0}, "num_samples must be >= 1, got 0"),
        ({"num_samples": 5, "seed": -1}, "seed must be a non-negative integer, got -1"),
        ({"num_samples": 5, "seed": 0, "noise": -0.1}, "noise must be >= 0, got -0.1"),
    ],
)
def test_two_scale_rejects_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        two_scale(**kwargs)  # type: ignore[arg-type]


def test_blobs_shapes_dtypes_and_labels() -> None:
    x, y = blobs(301, seed=0, num_classes=4, num_features=5)
    assert x.shape == (301, 5) and x.dtype == np.float32
    assert y.shape == (301,) and y.dtype == np.int32
    counts = np.bincount(y)
    assert counts.tolist() == [76, 75, 75, 75]  # balanced


def test_blobs_is_deterministic_per_seed_and_seeds_share_the_task() -> None:
    first, second, other = blobs(400, seed=7), blobs(400, seed=7), blobs(400, seed=8)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])
    # Class means agree across seeds: a train and a test split come from one distribution.
    for label in range(3):
        np.testing.assert_allclose(
            first[0][first[1] == label].mean(axis=0),
            other[0][other[1] == label].mean(axis=0),
            atol=0.4,
        )


@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_blobs_neighbouring_centres_are_four_apart(num_classes: int) -> None:
    x, y = blobs(20 * num_classes, seed=0, num_classes=num_classes, spread=1e-6)
    centres = np.stack([x[y == k].mean(axis=0) for k in range(num_classes)])
    gaps = np.linalg.norm(centres - np.roll(centres, 1, axis=0), axis=1)
    np.testing.assert_allclose(gaps, 4.0, rtol=1e-4)


def test_blobs_one_feature() -> None:
    x, _ = blobs(30, seed=0, num_classes=3, num_features=1, spread=1e-6)
    assert x.shape == (30, 1)
    np.testing.assert_allclose(sorted({round(float(v), 3) for v in x[:, 0]}), [-4, 0, 4])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 1}, "num_classes must be >= 2, got 1"),
        ({"num_features": 0}, "num_features must be >= 1, got 0"),
        ({"spread": 0.0}, "spread must be > 0, got 0.0"),
        ({"num_samples": 0}, "num_samples must be >= 1, got 0"),
    ],
)
def test_blobs_rejects_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    arguments: dict[str, float] = {"num_samples": 10, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        blobs(**arguments)  # type: ignore[arg-type]
