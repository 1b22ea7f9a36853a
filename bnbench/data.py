"""Dataset registry: one entry per dataset, each returning train/validation/test numpy arrays.

The Keras datasets (MNIST, Fashion-MNIST, CIFAR-10/100) are read from Keras' own cache under
`KERAS_HOME` when present; otherwise Keras' loader downloads them into that cache. A download
that fails (no network) becomes a `SpecError` that says where to put the file.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnbench import synthetic
from bnbench.config import DatasetSpec
from bnbench.errors import SpecError

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Dataset:
    """Prepared arrays plus what the model builder needs to know about them."""

    name: str
    task: str  # "classification" or "regression"
    num_classes: int | None
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def output_units(self) -> int:
        return self.num_classes if self.num_classes else int(np.prod(self.y_train.shape[1:]) or 1)


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry."""

    source: str
    task: str
    num_classes: int | None
    max_value: float  # what 'normalize: scale' divides by
    offline: bool
    load: Callable[[DatasetSpec], Arrays]
    cached: Callable[[], bool]


def keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()


def _cache(*parts: str) -> Path:
    return keras_home().joinpath("datasets", *parts)


# --- readers for the formats Keras caches --------------------------------------------------


def _read_npz(path: Path) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    except KeyError as err:
        raise SpecError(
            f"{path}: expected arrays x_train, y_train, x_test, y_test; missing {err}"
        ) from None
    except (OSError, ValueError) as err:
        raise SpecError(f"{path}: not a readable .npz file ({err})") from None


def _read_idx_gz(folder: Path) -> Arrays:
    names = [
        "train-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
    ]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise SpecError(f"{folder}: missing {', '.join(missing)}")
    arrays = []
    for name in names:
        with gzip.open(folder / name, "rb") as f:
            raw = f.read()
        if "labels" in name:
            arrays.append(np.frombuffer(raw, np.uint8, offset=8))
        else:
            arrays.append(np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28))
    y_train, x_train, y_test, x_test = arrays
    return x_train, y_train, x_test, y_test


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    # The CIFAR archives are pickles of plain dicts, the format Keras itself reads.
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[label_key.encode()], dtype=np.int64)
    return data.transpose(0, 2, 3, 1), labels


def _read_cifar(root: Path, inner: str, train: list[str], test: str, label_key: str) -> Arrays:
    folder = root / inner if (root / inner).is_dir() else root
    missing = [n for n in [*train, test] if not (folder / n).is_file()]
    if missing:
        raise SpecError(f"{folder}: missing {', '.join(missing)}")
    parts = [_read_cifar_batch(folder / name, label_key) for name in train]
    x_test, y_test = _read_cifar_batch(folder / test, label_key)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        x_test,
        y_test,
    )


def _from_archive_or_dir(path: Path, read: Callable[[Path], Arrays]) -> Arrays:
    if path.is_dir():
        return read(path)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with tarfile.open(path) as archive:
                archive.extractall(tmp, filter="data")
        except tarfile.TarError as err:
            raise SpecError(f"{path}: not a tar archive or folder ({err})") from None
        return read(Path(tmp))


def _download_error(name: str, cache: Path, err: Exception, how: str) -> SpecError:
    return SpecError(
        f"dataset {name!r}: not in the Keras cache and the download failed ({err}). "
        f"Without network access, place {how} at {cache} (KERAS_HOME={keras_home()}), "
        f"or point dataset.path at a local copy; the 'digits', 'two_scale' and 'blobs' "
        f"datasets work offline."
    )


def _keras_dataset(
    name: str,
    cache: Callable[[], Path],
    read_cache: Callable[[Path], Arrays],
    read_path: Callable[[Path], Arrays],
    download: Callable[[], Arrays],
    how: str,
) -> Callable[[DatasetSpec], Arrays]:
    def load(spec: DatasetSpec) -> Arrays:
        if spec.path is not None:
            return read_path(Path(spec.path))
        if cache().exists():
            return read_cache(cache())
        try:
            return download()
        except Exception as err:  # Keras raises several kinds on network failure.
            raise _download_error(name, cache(), err, how) from None

    return load


def _download_mnist() -> Arrays:
    import keras

    (x, y), (xt, yt) = keras.datasets.mnist.load_data()
    return x, y, xt, yt


def _download_fashion() -> Arrays:
    import keras

    (x, y), (xt, yt) = keras.datasets.fashion_mnist.load_data()
    return x, y, xt, yt


def _download_cifar10() -> Arrays:
    import keras

    (x, y), (xt, yt) = keras.datasets.cifar10.load_data()
    return x, y.ravel(), xt, yt.ravel()


def _download_cifar100() -> Arrays:
    import keras

    (x, y), (xt, yt) = keras.datasets.cifar100.load_data()
    return x, y.ravel(), xt, yt.ravel()


_CIFAR10 = dict(
    inner="cifar-10-batches-py",
    train=[f"data_batch_{i}" for i in range(1, 6)],
    test="test_batch",
    label_key="labels",
)
_CIFAR100 = dict(inner="cifar-100-python", train=["train"], test="test", label_key="fine_labels")


def _cifar10(root: Path) -> Arrays:
    return _read_cifar(root, **_CIFAR10)  # type: ignore[arg-type]


def _cifar100(root: Path) -> Arrays:
    return _read_cifar(root, **_CIFAR100)  # type: ignore[arg-type]


# --- offline datasets -------------------------------------------------------------------------


def _digits(spec: DatasetSpec) -> Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)  # (1797, 8, 8), values 0..16
    y = bunch.target.astype(np.int64)
    # A fixed, seed-independent split so every run sees the same test set.
    order = np.random.default_rng(0).permutation(len(x))
    test = order[:360]
    train = order[360:]
    return x[train], y[train], x[test], y[test]


def _split_synthetic(x: np.ndarray, y: np.ndarray) -> Arrays:
    cut = int(len(x) * 0.8)
    return x[:cut], y[:cut], x[cut:], y[cut:]


def _two_scale(spec: DatasetSpec) -> Arrays:
    return _split_synthetic(*synthetic.two_scale(spec.num_samples or 2000, seed=0))


def _blobs(spec: DatasetSpec) -> Arrays:
    return _split_synthetic(*synthetic.blobs(spec.num_samples or 2000, seed=0))


def _npz(spec: DatasetSpec) -> Arrays:
    if spec.path is None:
        raise SpecError(
            "dataset 'npz' needs dataset.path: a .npz with x_train, y_train, x_test, y_test"
        )
    return _read_npz(Path(spec.path))


def _always() -> bool:
    return True


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "keras.datasets.mnist (download, cached as datasets/mnist.npz)",
        "classification",
        10,
        255.0,
        False,
        _keras_dataset(
            "mnist", lambda: _cache("mnist.npz"), _read_npz, _read_npz, _download_mnist, "mnist.npz"
        ),
        lambda: _cache("mnist.npz").exists(),
    ),
    "fashion_mnist": DatasetInfo(
        "keras.datasets.fashion_mnist (download, cached in datasets/fashion-mnist/)",
        "classification",
        10,
        255.0,
        False,
        _keras_dataset(
            "fashion_mnist",
            lambda: _cache("fashion-mnist"),
            _read_idx_gz,
            _read_idx_gz,
            _download_fashion,
            "the four *-ubyte.gz files",
        ),
        lambda: _cache("fashion-mnist").exists(),
    ),
    "cifar10": DatasetInfo(
        "keras.datasets.cifar10 (download, cached in datasets/cifar-10-batches-py-target/)",
        "classification",
        10,
        255.0,
        False,
        _keras_dataset(
            "cifar10",
            lambda: _cache("cifar-10-batches-py-target"),
            _cifar10,
            lambda p: _from_archive_or_dir(p, _cifar10),
            _download_cifar10,
            "the extracted cifar-10-batches-py folder",
        ),
        lambda: _cache("cifar-10-batches-py-target").exists(),
    ),
    "cifar100": DatasetInfo(
        "keras.datasets.cifar100 (download, cached in datasets/cifar-100-python-target/)",
        "classification",
        100,
        255.0,
        False,
        _keras_dataset(
            "cifar100",
            lambda: _cache("cifar-100-python-target"),
            _cifar100,
            lambda p: _from_archive_or_dir(p, _cifar100),
            _download_cifar100,
            "the extracted cifar-100-python folder",
        ),
        lambda: _cache("cifar-100-python-target").exists(),
    ),
    "digits": DatasetInfo(
        "scikit-learn's bundled 8x8 digits (1,797 images; no download)",
        "classification",
        10,
        16.0,
        True,
        _digits,
        _always,
    ),
    "two_scale": DatasetInfo(
        "synthetic regression y = 2A + 3B + noise, A~U(1,10), B~U(1,200)",
        "regression",
        None,
        1.0,
        True,
        _two_scale,
        _always,
    ),
    "blobs": DatasetInfo(
        "synthetic Gaussian blobs, 3 classes in 2-D",
        "classification",
        3,
        1.0,
        True,
        _blobs,
        _always,
    ),
    "npz": DatasetInfo(
        "your own .npz (x_train, y_train, x_test, y_test) via dataset.path",
        "classification",
        None,
        1.0,
        True,
        _npz,
        _always,
    ),
}


def load_dataset(spec: DatasetSpec, seed: int) -> Dataset:
    """Load, subset, split, normalize and reshape a dataset as the spec asks.

    Args:
        spec: the dataset section of a run spec.
        seed: unused by the split (the held-out examples are always the last ones, so every seed
            and every arm sees the same validation set); kept for synthetic generators.

    Raises:
        SpecError: the data cannot be found, downloaded or read.
    """
    del seed
    info = REGISTRY[spec.name]
    if spec.path is not None and not Path(spec.path).exists():
        raise SpecError(f"dataset.path: {spec.path} does not exist")
    x_train, y_train, x_test, y_test = info.load(spec)
    x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    task, num_classes = info.task, info.num_classes
    if spec.name == "npz":
        task, num_classes = _infer_task(y_train, y_test)
    if task == "classification":
        y_train, y_test = y_train.astype(np.int64).ravel(), y_test.astype(np.int64).ravel()
    else:
        y_train, y_test = y_train.astype(np.float32), y_test.astype(np.float32)
    if spec.subset is not None:
        x_train, y_train = x_train[: spec.subset], y_train[: spec.subset]
    if spec.validation_split == "test":
        x_val, y_val = x_test, y_test
    else:
        held = max(1, round(len(x_train) * spec.validation_split))
        cut = len(x_train) - held
        if cut < 1:
            raise SpecError(f"dataset: no training examples left after holding out {held}")
        x_val, y_val = x_train[cut:], y_train[cut:]
        x_train, y_train = x_train[:cut], y_train[:cut]
    if x_train.ndim == 3:  # grayscale images get a channel axis for Conv2D
        x_train, x_val, x_test = (a[..., None] for a in (x_train, x_val, x_test))
    x_train, x_val, x_test = _normalize(spec, info, x_train, x_val, x_test)
    if spec.flatten:
        x_train, x_val, x_test = (a.reshape(len(a), -1) for a in (x_train, x_val, x_test))
    return Dataset(spec.name, task, num_classes, x_train, y_train, x_val, y_val, x_test, y_test)


def _infer_task(y_train: np.ndarray, y_test: np.ndarray) -> tuple[str, int | None]:
    if np.issubdtype(y_train.dtype, np.integer) and y_train.squeeze().ndim == 1:
        return "classification", int(max(y_train.max(), y_test.max())) + 1
    return "regression", None


def _normalize(spec: DatasetSpec, info: DatasetInfo, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    if spec.normalize == "scale":
        return tuple(a / np.float32(info.max_value) for a in arrays)
    if spec.normalize == "standardize":
        # Statistics from the training split only, per feature (per channel for images).
        axes = tuple(range(arrays[0].ndim - 1)) if arrays[0].ndim > 2 else (0,)
        mean = arrays[0].mean(axis=axes, keepdims=True)
        std = arrays[0].std(axis=axes, keepdims=True) + np.float32(1e-7)
        return tuple(((a - mean) / std).astype(np.float32) for a in arrays)
    return arrays


def describe() -> list[dict[str, str]]:
    """One row per dataset for `bnbench datasets`."""
    return [
        {
            "name": name,
            "task": info.task,
            "source": info.source,
            "offline": "yes" if info.offline else "no",
            "available": "yes" if info.cached() else "no (downloads on first use)",
        }
        for name, info in REGISTRY.items()
    ]
