"""MNIST-1D, generated in-process by the optional `mnist1d` package: no download, no network.

Greydanus & Kobak, "Scaling Down Deep Learning with MNIST-1D" (ICML 2024): ten 1-D templates
of the digits, padded, sheared, translated, given correlated and i.i.d. noise and resampled to
40 points. It is small enough for a laptop CPU yet, unlike scikit-learn's 8x8 digits, separates
model families clearly (published test accuracies: logistic regression 32%, MLP 68%, CNN 94%),
so a verdict that holds on digits and on MNIST-1D holds on more than one toy.

The package's `make_dataset` builds the set from its default arguments (seed 42, 5,000 examples
split 4,000 / 1,000: the recipe of the published pickle). Its `get_dataset` is never called: it
downloads that pickle, and writes a cache file into the working directory.
"""

from __future__ import annotations

import functools
import importlib.util
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from bnbench.config.schema import DatasetSpec
from bnbench.data.keras_sets import Arrays
from bnbench.errors import SpecError

INSTALL = 'pip install "bnbench[mnist1d]"'
# The published set: 5,000 signals, 80% for training (the package's `train_split`).
DEFAULT_SAMPLES = 5000
LENGTH = 40
NUM_CLASSES = 10


def installed() -> bool:
    """Whether the `mnist1d` package can be imported (looked up, not imported: that is slow)."""
    try:
        return importlib.util.find_spec("mnist1d") is not None
    except (ImportError, ValueError):  # a blocked or half-removed package
        return False


def load(spec: DatasetSpec) -> Arrays:
    """The signals and labels: `dataset.num_samples` examples (5,000 by default), 80% to train.

    The same `num_samples` always gives the same arrays: the package seeds its own generator
    (seed 42) before drawing. `subset` then keeps the first training examples of that set.

    Returns:
        x_train (n, 40) and x_test float64, already centred to mean 0 and standard deviation 1
        over the whole set by the package; y_train and y_test int64 labels 0..9.

    Raises:
        SpecError: the `mnist1d` package is not installed.
    """
    x_train, y_train, x_test, y_test = _generate(spec.num_samples or DEFAULT_SAMPLES)
    return x_train.copy(), y_train.copy(), x_test.copy(), y_test.copy()


# Generating the 5,000 signals takes ~5 s on one core; a worker that trains several runs of a
# grid keeps the last sets it made. The arrays are a pure function of the argument.
@functools.lru_cache(maxsize=2)
def _generate(num_samples: int) -> Arrays:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise SpecError(
            f"dataset 'mnist1d' needs the optional mnist1d package: {INSTALL}"
        ) from None
    args = get_dataset_args()
    args.num_samples = num_samples
    with _kept_global_random_state():  # make_dataset reseeds numpy's and Python's generators
        data = make_dataset(args)
    arrays: Arrays = (data["x"], data["y"], data["x_test"], data["y_test"])
    for array in arrays:
        array.setflags(write=False)  # shared by every caller of the cache
    return arrays


@contextmanager
def _kept_global_random_state() -> Iterator[None]:
    """Give back numpy's and Python's global generators as they were, so that loading the data
    never changes what anything else draws."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
