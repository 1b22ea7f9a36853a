"""The Keras datasets (MNIST, Fashion-MNIST, CIFAR-10/100): Keras' cache, readers, downloads.

Each is read from Keras' own cache under `KERAS_HOME` when present, or from a local copy named by
`dataset.path`; otherwise Keras' loader downloads it into that cache. A download that fails (no
network) becomes a `SpecError` that says where to put the file.
"""

from __future__ import annotations

import gzip
import os
import pickle
import stat
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.config.schema import DatasetSpec
from bnbench.data.size_checks import IDX_MAX_BYTES, check_cifar_batch, check_idx, check_member
from bnbench.errors import SpecError

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()


def _cache(*parts: str) -> Path:
    return keras_home().joinpath("datasets", *parts)


def check_local_path(path: str | Path) -> Path:
    """`dataset.path` with `~` expanded, once it is known to be a regular file or a folder.

    A FIFO would block the reader forever and a device such as /dev/zero never ends, so both
    are refused before anything opens them.

    Raises:
        SpecError: the path does not exist, cannot be examined, or is neither a file nor a folder.
    """
    local = Path(path).expanduser()
    try:
        mode = local.stat().st_mode
    except FileNotFoundError:
        raise SpecError(f"dataset.path: {local} does not exist") from None
    except (OSError, ValueError) as err:
        reason = (err.strerror if isinstance(err, OSError) else None) or str(err)
        raise SpecError(f"dataset.path: {local} cannot be read ({reason})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise SpecError(
            f"dataset.path: {local} is not a regular file or folder (a pipe or device?)"
        )
    return local


# --- readers for the formats Keras caches --------------------------------------------------


def read_npz(path: Path) -> Arrays:
    path = check_local_path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            names = ("x_train", "y_train", "x_test", "y_test")
            for name in names:
                if name in f.files:  # a missing one is the KeyError below
                    check_member(path, f, name)  # before numpy allocates what it claims
            return f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    except MemoryError:
        raise SpecError(f"{path}: its arrays do not fit in memory") from None
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
        try:
            with gzip.open(folder / name, "rb") as f:
                raw = f.read(IDX_MAX_BYTES + 1)
        except (OSError, EOFError) as err:
            raise SpecError(f"{folder / name}: not a readable gzip file ({err})") from None
        header, size = (8, 1) if "labels" in name else (16, 28 * 28)
        check_idx(folder / name, len(raw), header, size)
        items = np.frombuffer(raw, np.uint8, offset=header)
        arrays.append(items if size == 1 else items.reshape(-1, 28, 28))
    y_train, x_train, y_test, x_test = arrays
    for labels, images, name in ((y_train, x_train, "train"), (y_test, x_test, "t10k")):
        if len(labels) != len(images):
            raise SpecError(f"{folder}: {name} has {len(images)} images but {len(labels)} labels")
    return x_train, y_train, x_test, y_test


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Pickles of bytes written with protocol 2 by Python 3 call _codecs.encode(text, "latin1");
    # no other codec is looked up (a lookup imports a module by name).
    if encoding not in ("latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_PLAIN = ("dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float")
# The globals a CIFAR batch may name; Python 2 spellings too, the published batches being
# Python 2 pickles. numpy's array pickles name _reconstruct (protocol < 5) or _frombuffer (5).
_CIFAR_GLOBALS = frozenset(
    [(module, name) for module in ("builtins", "__builtin__") for name in _PLAIN]
    + [(f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")]
    + [(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]
)


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global outside `_CIFAR_GLOBALS`."""


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only; any other global is refused.

    `pickle.load` calls whatever global a pickle names, so a crafted `data_batch_1` would run its
    payload as soon as it is read. A CIFAR batch (and Keras' reader of it) needs only dicts,
    lists, bytes, numbers and numpy arrays.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _CIFAR_GLOBALS:
            raise _RefusedGlobal(f"refused global {module}.{name}")
        if module == "_codecs":
            return _latin1_encode
        return super().find_class(module, name)


# What a truncated, corrupt or crafted (but allowed-globals-only) pickle raises while loading;
# MemoryError: an array header asking for terabytes.
_UNREADABLE = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    MemoryError,
)


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    # The CIFAR archives are pickles of plain dicts, the format Keras itself reads.
    try:
        with path.open("rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as err:
        raise SpecError(
            f"{path}: {err}; a CIFAR batch holds only plain data and numpy arrays, so this "
            "file was refused unread"
        ) from None
    except _UNREADABLE as err:
        raise SpecError(f"{path}: not a CIFAR batch (not a readable pickle: {err})") from None
    key = label_key.encode()
    if not isinstance(batch, dict) or b"data" not in batch or key not in batch:
        raise SpecError(f"{path}: not a CIFAR batch (expected a dict with b'data' and {key!r})")
    check_cifar_batch(path, batch[b"data"], batch[key], key)
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[key], dtype=np.int64).reshape(-1)
    except (ValueError, TypeError, OverflowError) as err:
        raise SpecError(f"{path}: not a CIFAR batch ({err})") from None
    if len(labels) != len(data):
        raise SpecError(f"{path}: {len(data)} images but {len(labels)} labels")
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


@dataclass(frozen=True)
class KerasSet:
    """One Keras dataset: where Keras caches it, how to read it, how to download it.

    Attributes:
        name: The dataset's registry name.
        cache_name: Its file or folder under `$KERAS_HOME/datasets/`.
        read_cache: Reads the cached copy.
        read_path: Reads a local copy named by `dataset.path` (a folder or an archive).
        download: Downloads through Keras' loader, into the cache.
        how: What to place in the cache by hand, for the error message.
    """

    name: str
    cache_name: str
    read_cache: Callable[[Path], Arrays]
    read_path: Callable[[Path], Arrays]
    download: Callable[[], Arrays]
    how: str

    @property
    def cache(self) -> Path:
        return _cache(self.cache_name)

    def cached(self) -> bool:
        """Whether Keras' cache holds the dataset."""
        return self.cache.exists()

    def load(self, spec: DatasetSpec) -> Arrays:
        """The arrays: from `dataset.path`, else the cache, else a download.

        Raises:
            SpecError: the local copy cannot be read, or the download failed.
        """
        if spec.path is not None:
            return self.read_path(check_local_path(spec.path))
        if self.cached():
            return self.read_cache(self.cache)
        try:
            return self.download()
        except Exception as err:  # Keras raises several kinds on network failure.
            raise _download_error(self.name, self.cache, err, self.how) from None


KERAS_SETS = {
    "mnist": KerasSet("mnist", "mnist.npz", read_npz, read_npz, _download_mnist, "mnist.npz"),
    "fashion_mnist": KerasSet(
        name="fashion_mnist",
        cache_name="fashion-mnist",
        read_cache=_read_idx_gz,
        read_path=_read_idx_gz,
        download=_download_fashion,
        how="the four *-ubyte.gz files",
    ),
    "cifar10": KerasSet(
        name="cifar10",
        cache_name="cifar-10-batches-py-target",
        read_cache=_cifar10,
        read_path=lambda p: _from_archive_or_dir(p, _cifar10),
        download=_download_cifar10,
        how="the extracted cifar-10-batches-py folder",
    ),
    "cifar100": KerasSet(
        name="cifar100",
        cache_name="cifar-100-python-target",
        read_cache=_cifar100,
        read_path=lambda p: _from_archive_or_dir(p, _cifar100),
        download=_download_cifar100,
        how="the extracted cifar-100-python folder",
    ),
}
