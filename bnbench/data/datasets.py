"""Dataset registry: one entry per dataset, each returning train/validation/test numpy arrays.

The Keras datasets (MNIST, Fashion-MNIST, CIFAR-10/100) come through `bnbench.data.keras_sets`;
the offline ones (scikit-learn's digits, synthetic sets) are here, MNIST-1D comes through
`bnbench.data.mnist1d` and your own .npz through `bnbench.data.npz`. `load_dataset` checks the
arrays (`bnbench.data.checks`) before preparing them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from bnbench.config.schema import DatasetSpec
from bnbench.data import mnist1d, npz, synthetic
from bnbench.data.checks import ARRAY_NAMES, check_arrays, check_labels
from bnbench.data.keras_sets import KERAS_SETS, Arrays, check_local_path
from bnbench.errors import SpecError


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
    # What 'normalize: scale' divided the inputs by (None for the other modes); the run records
    # it, since for an .npz it comes from the data's dtype rather than from the spec.
    scale_divisor: float | None = None

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
    # What 'normalize: scale' divides by. None for an .npz, whose range only its dtype can tell:
    # a float array such as digits' 0..16 carries no range of its own, so a known one wins.
    max_value: float | None
    offline: bool
    load: Callable[[DatasetSpec], Arrays]
    cached: Callable[[], bool]
    # What `bnbench datasets` says when `cached()` is false.
    missing: str = "no (downloads on first use)"


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


# The most examples a synthetic set may have: ~0.5 GB of float64 draws while it is made, far
# beyond what a BN experiment on it needs. Checked before anything is allocated.
MAX_SYNTHETIC_SAMPLES = 20_000_000


def _synthetic_size(spec: DatasetSpec) -> int:
    samples = spec.num_samples or 2000
    if samples > MAX_SYNTHETIC_SAMPLES:
        raise SpecError(
            f"dataset.num_samples: {samples:,} is more than a synthetic set may hold "
            f"({MAX_SYNTHETIC_SAMPLES:,}); the {spec.name} task is learnt from a few thousand"
        )
    return samples


def _two_scale(spec: DatasetSpec) -> Arrays:
    return _split_synthetic(*synthetic.two_scale(_synthetic_size(spec), seed=0))


def _blobs(spec: DatasetSpec) -> Arrays:
    return _split_synthetic(*synthetic.blobs(_synthetic_size(spec), seed=0))


def _always() -> bool:
    return True


def _keras_info(name: str, source: str, num_classes: int) -> DatasetInfo:
    entry = KERAS_SETS[name]
    return DatasetInfo(
        source=source,
        task="classification",
        num_classes=num_classes,
        max_value=255.0,
        offline=False,
        load=entry.load,
        cached=entry.cached,
    )


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": _keras_info(
        "mnist", "keras.datasets.mnist (download, cached as datasets/mnist.npz)", 10
    ),
    "fashion_mnist": _keras_info(
        "fashion_mnist",
        "keras.datasets.fashion_mnist (download, cached in datasets/fashion-mnist/)",
        10,
    ),
    "cifar10": _keras_info(
        "cifar10",
        "keras.datasets.cifar10 (download, cached in datasets/cifar-10-batches-py-target/)",
        10,
    ),
    "cifar100": _keras_info(
        "cifar100",
        "keras.datasets.cifar100 (download, cached in datasets/cifar-100-python-target/)",
        100,
    ),
    "digits": DatasetInfo(
        source="scikit-learn's bundled 8x8 digits (1,797 images; no download)",
        task="classification",
        num_classes=10,
        max_value=16.0,
        offline=True,
        load=_digits,
        cached=_always,
    ),
    "two_scale": DatasetInfo(
        source="synthetic regression y = 2A + 3B + noise, A~U(1,10), B~U(1,200)",
        task="regression",
        num_classes=None,
        max_value=1.0,
        offline=True,
        load=_two_scale,
        cached=_always,
    ),
    "blobs": DatasetInfo(
        source="synthetic Gaussian blobs, 3 classes in 2-D",
        task="classification",
        num_classes=3,
        max_value=1.0,
        offline=True,
        load=_blobs,
        cached=_always,
    ),
    "mnist1d": DatasetInfo(
        source="MNIST-1D, generated in-process by the mnist1d package (40-point 1-D signals, "
        "10 classes, 4,000 train / 1,000 test; no download)",
        task="classification",
        num_classes=mnist1d.NUM_CLASSES,
        # Already centred to mean 0 and standard deviation 1: 'scale' leaves it as generated.
        max_value=1.0,
        offline=True,
        load=mnist1d.load,
        cached=mnist1d.installed,
        missing=f"no ({mnist1d.INSTALL})",
    ),
    "npz": DatasetInfo(
        source="your own .npz (x_train, y_train, x_test, y_test) via dataset.path",
        task="classification",
        num_classes=None,
        max_value=None,
        offline=True,
        load=npz.read,
        cached=_always,
    ),
}


def load_dataset(spec: DatasetSpec, *, download: bool = True) -> Dataset:
    """Load, check, subset, split, normalize and reshape a dataset as the spec asks.

    The arrays are checked as read, before anything trains or is written (see
    `bnbench.data.checks`). The held-out examples are always the last ones, so every seed and
    every arm sees the same validation set.

    Args:
        spec: the dataset section of a run spec.
        download: let Keras download a dataset missing from its cache (`bnbench validate`
            checks a spec without downloading ~170 MB).

    Returns:
        The prepared arrays; `scale_divisor` says what 'normalize: scale' divided them by.

    Raises:
        SpecError: the data cannot be found, downloaded or read, cannot give a meaningful
            number (NaN inputs, mismatched shapes, bad labels), or 'normalize: scale' cannot tell
            its range.
    """
    info = REGISTRY[spec.name]
    if spec.path is not None:
        check_local_path(spec.path)  # exists, and is a regular file or folder; ~ expanded
    elif not download and not info.offline and not info.cached():
        raise SpecError(
            f"dataset {spec.name!r} is not in the Keras cache ({KERAS_SETS[spec.name].cache}) "
            "and checking a spec does not download it; `bnbench train` downloads it once, or "
            "point dataset.path at a local copy"
        )
    x_train, y_train, x_test, y_test = info.load(spec)
    source = f"dataset {spec.name!r}" + (f" ({spec.path})" if spec.path else "")
    arrays = (x_train, y_train, x_test, y_test)
    task, num_classes = _checked_task(source, spec.name, info, *arrays)
    divisor = _scale_divisor(source, spec, info, x_train, x_test)  # the raw dtype tells the range
    x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    if task == "classification":
        y_train, y_test = y_train.astype(np.int64).ravel(), y_test.astype(np.int64).ravel()
    else:
        y_train, y_test = y_train.astype(np.float32), y_test.astype(np.float32)
    if spec.subset is not None:
        x_train, y_train = x_train[: spec.subset], y_train[: spec.subset]
    (x_train, y_train), (x_val, y_val) = _hold_out(spec, x_train, y_train, x_test, y_test)
    if x_train.ndim == 3:  # grayscale images get a channel axis for Conv2D
        x_train, x_val, x_test = (a[..., None] for a in (x_train, x_val, x_test))
    x_train, x_val, x_test = _normalize(spec, divisor, x_train, x_val, x_test)
    if spec.flatten:
        x_train, x_val, x_test = (a.reshape(len(a), -1) for a in (x_train, x_val, x_test))
    return Dataset(
        spec.name, task, num_classes, x_train, y_train, x_val, y_val, x_test, y_test, divisor
    )


def _checked_task(
    source: str, name: str, info: DatasetInfo, *arrays: np.ndarray
) -> tuple[str, int | None]:
    """The task and class count, once the arrays are known to give a meaningful number."""
    check_arrays(source, dict(zip(ARRAY_NAMES, arrays, strict=True)))
    _, y_train, _, y_test = arrays
    task, num_classes = info.task, info.num_classes
    if name == "npz":  # the labels' dtype and shape tell the task
        task, num_classes = _infer_task(y_train, y_test)
    if task == "classification":
        check_labels(source, y_train, y_test, info.num_classes)
    return task, num_classes


def _hold_out(
    spec: DatasetSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split the validation set off the end of the training set, or use the test split."""
    if spec.validation_split == "test":
        return (x_train, y_train), (x_test, y_test)
    held = max(1, round(len(x_train) * spec.validation_split))
    cut = len(x_train) - held
    if cut < 1:
        raise SpecError(f"dataset: no training examples left after holding out {held}")
    return (x_train[:cut], y_train[:cut]), (x_train[cut:], y_train[cut:])


def _infer_task(y_train: np.ndarray, y_test: np.ndarray) -> tuple[str, int | None]:
    # Integer (or boolean) labels, one per example, are class indices; anything else is a target.
    one_per_example = y_train.ndim == 1 or y_train.shape[1:] == (1,)
    if y_train.dtype.kind in "biu" and one_per_example:
        return "classification", int(max(y_train.max(), y_test.max())) + 1
    return "regression", None


def _scale_divisor(
    source: str, spec: DatasetSpec, info: DatasetInfo, x_train: np.ndarray, x_test: np.ndarray
) -> float | None:
    """What 'normalize: scale' divides by: dataset.scale_by, the registry's range, or the dtype's.

    Raises:
        SpecError: an .npz whose dtype does not say its range, without dataset.scale_by.
    """
    if spec.normalize != "scale":
        return None
    if spec.scale_by is not None:
        return spec.scale_by
    if info.max_value is not None:
        return info.max_value
    return npz.dtype_range(source, x_train, x_test)


def _normalize(
    spec: DatasetSpec, divisor: float | None, *arrays: np.ndarray
) -> tuple[np.ndarray, ...]:
    if divisor is not None:
        return tuple(a / np.float32(divisor) for a in arrays)
    if spec.normalize == "standardize":
        # Statistics from the training split only, per feature (per channel for images).
        axes = tuple(range(arrays[0].ndim - 1)) if arrays[0].ndim > 2 else (0,)
        mean = arrays[0].mean(axis=axes, keepdims=True)
        std = arrays[0].std(axis=axes, keepdims=True) + np.float32(1e-7)
        return tuple(((a - mean) / std).astype(np.float32) for a in arrays)
    return arrays


def ensure_available(specs: Iterable[DatasetSpec]) -> None:
    """Make sure every dataset of a grid can be read, downloading a missing one once, up front.

    Without this, a dataset that is neither cached nor downloadable (no network) fails every run
    of an ablation, one by one, with the same long message.

    Raises:
        SpecError: a dataset cannot be read or downloaded (the first one found), saying how
            many of the runs need it.
    """
    specs = list(specs)
    seen: set[str] = set()
    for spec in specs:
        key = spec.model_dump_json()
        if key in seen:
            continue
        seen.add(key)
        if spec.path is None and not REGISTRY[spec.name].cached():
            try:
                load_dataset(spec)
            except SpecError as err:
                users, total = sum(other.name == spec.name for other in specs), len(specs)
                need = (f"{users} of the {total} runs to train need it" if users < total
                        else f"all {total} runs to train need it" if total > 1
                        else "the run to train needs it")  # fmt: skip
                raise SpecError(f"{err} ({need}; none was started)") from None


def training_size(spec: DatasetSpec) -> int:
    """The number of examples a run of `spec` trains on (after the subset and the held-out
    split), read from the data on this machine.

    Raises:
        SpecError: the data is not on this machine (a Keras dataset not downloaded yet) or
            cannot be read.
    """
    return len(load_dataset(spec, download=False).x_train)


def describe() -> list[dict[str, str]]:
    """One row per dataset for `bnbench datasets`, with the full path of Keras' cached copy."""
    return [
        {
            "name": name,
            "task": info.task,
            "source": info.source,
            "offline": "yes" if info.offline else "no",
            "available": "yes" if info.cached() else info.missing,
            "cache": str(KERAS_SETS[name].cache) if name in KERAS_SETS else "",
        }
        for name, info in REGISTRY.items()
    ]
