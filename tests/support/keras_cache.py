"""Tiny copies of the Keras datasets in the layout of Keras' own cache, in a temporary KERAS_HOME.

The files have the real formats (mnist.npz, Fashion-MNIST's gzipped IDX files, CIFAR's pickled
batches) with a few random images each, so the readers, `bnbench train` and the claims run on
`--dataset mnist/cifar10` can be tested end to end without the network.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

CIFAR10_CACHE = Path("cifar-10-batches-py-target") / "cifar-10-batches-py"
CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR100_CACHE = Path("cifar-100-python-target") / "cifar-100-python"


def point_keras_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make `home` Keras' cache for this test (and the processes it starts); returns it."""
    (home / "datasets").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    # Keras reads KERAS_HOME once, at import; point its copy at the same folder.
    import keras.src.backend.config as keras_config

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    return home


def images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """`n` random uint8 images of `shape`."""
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def write_mnist(home: Path, n_train: int, n_test: int) -> Path:
    """datasets/mnist.npz as `keras.datasets.mnist` caches it; labels cycle through 0..9."""
    path = home / "datasets" / "mnist.npz"
    np.savez(
        path,
        x_train=images(n_train, (28, 28)),
        y_train=np.arange(n_train) % 10,
        x_test=images(n_test, (28, 28), 1),
        y_test=np.arange(n_test) % 10,
    )
    return path


def write_idx(folder: Path, n_train: int, n_test: int) -> None:
    """The four gzipped IDX files of (Fashion-)MNIST in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-labels-idx1-ubyte.gz": (b"\0" * 8, np.arange(n_train, dtype=np.uint8) % 10),
        "train-images-idx3-ubyte.gz": (b"\0" * 16, images(n_train, (28, 28))),
        "t10k-labels-idx1-ubyte.gz": (b"\0" * 8, np.arange(n_test, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte.gz": (b"\0" * 16, images(n_test, (28, 28), 1)),
    }
    for name, (header, array) in parts.items():
        with gzip.open(folder / name, "wb") as f:
            f.write(header + array.tobytes())


def write_fashion_mnist(home: Path, n_train: int, n_test: int) -> Path:
    """datasets/fashion-mnist/ as `keras.datasets.fashion_mnist` caches it."""
    folder = home / "datasets" / "fashion-mnist"
    write_idx(folder, n_train, n_test)
    return folder


def write_cifar(
    folder: Path, train: list[str], test: str, label_key: str, n: int, num_classes: int = 10
) -> None:
    """CIFAR's pickled batches (`n` images each) in `folder`; labels cycle through the classes."""
    folder.mkdir(parents=True)
    for i, name in enumerate([*train, test]):
        labels = [j % num_classes for j in range(n)]
        batch = {b"data": images(n, (3 * 32 * 32,), i), label_key.encode(): labels}
        (folder / name).write_bytes(pickle.dumps(batch))


def write_cifar10(home: Path, n_per_batch: int) -> Path:
    """The extracted CIFAR-10 folder where `keras.datasets.cifar10` caches it: five training
    batches and a test batch of `n_per_batch` images each."""
    folder = home / "datasets" / CIFAR10_CACHE
    write_cifar(folder, CIFAR10_TRAIN, "test_batch", "labels", n_per_batch)
    return folder


def write_cifar100(home: Path, n: int) -> Path:
    """The extracted CIFAR-100 folder where `keras.datasets.cifar100` caches it: a training and
    a test batch of `n` images each, fine labels cycling through the 100 classes."""
    folder = home / "datasets" / CIFAR100_CACHE
    write_cifar(folder, ["train"], "test", "fine_labels", n, num_classes=100)
    return folder


def write_all(home: Path, n_train: int = 40, n_test: int = 10) -> None:
    """All four Keras datasets in the cache: the MNISTs with `n_train` training and `n_test` test
    images; CIFAR batches all hold one count, so CIFAR-10 gets five training batches and a test
    batch of `n_train // 5` images each, CIFAR-100 a training and a test batch of `n_train`."""
    write_mnist(home, n_train, n_test)
    write_fashion_mnist(home, n_train, n_test)
    write_cifar10(home, max(1, n_train // 5))
    write_cifar100(home, n_train)
