"""Datasets: the registry, Keras' cache layout in a temporary KERAS_HOME, offline sets, errors."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest

from bnbench.config.loading import validate
from bnbench.config.registries import DATASET_NAMES
from bnbench.config.schema import DatasetSpec, RunSpec
from bnbench.data.datasets import REGISTRY, describe, load_dataset
from bnbench.errors import SpecError
from tests.support.keras_cache import (
    point_keras_home,
    write_cifar,
    write_cifar10,
    write_idx,
    write_mnist,
)

_MODEL = {"blocks": [{"type": "dense", "units": 4}]}


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    return point_keras_home(tmp_path / "keras_home", monkeypatch)


def test_registry_and_spec_names_agree():
    assert set(REGISTRY) == set(DATASET_NAMES)
    rows = describe()
    assert {row["name"] for row in rows} == set(DATASET_NAMES)
    assert next(r for r in rows if r["name"] == "digits")["offline"] == "yes"


def test_datasets_show_the_full_cache_path(keras_home):
    rows = {row["name"]: row for row in describe()}
    assert rows["mnist"]["cache"] == str(keras_home / "datasets" / "mnist.npz")
    assert rows["digits"]["cache"] == ""


def test_mnist_from_keras_cache(keras_home):
    write_mnist(keras_home, 30, 10)
    data = load_dataset(DatasetSpec(name="mnist", validation_split=0.2))
    assert data.x_train.shape == (24, 28, 28, 1) and data.x_val.shape == (6, 28, 28, 1)
    assert data.x_test.shape == (10, 28, 28, 1)
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    assert data.num_classes == 10


def test_fashion_mnist_from_keras_cache_flattened(keras_home):
    write_idx(keras_home / "datasets" / "fashion-mnist", 20, 8)
    data = load_dataset(
        DatasetSpec(name="fashion_mnist", flatten=True, subset=10, validation_split="test")
    )
    assert data.x_train.shape == (10, 784)
    assert data.x_val.shape == data.x_test.shape == (8, 784)


def test_cifar10_from_keras_cache(keras_home):
    write_cifar10(keras_home, 4)
    data = load_dataset(DatasetSpec(name="cifar10", validation_split=0.1))
    assert data.x_train.shape[1:] == (32, 32, 3)
    assert len(data.x_train) + len(data.x_val) == 20 and len(data.x_test) == 4


def test_cifar100_from_local_path(tmp_path):
    root = tmp_path / "copy" / "cifar-100-python"
    write_cifar(root, ["train"], "test", "fine_labels", 6, num_classes=100)
    data = load_dataset(
        DatasetSpec(name="cifar100", path=str(tmp_path / "copy"), validation_split="test")
    )
    assert data.x_train.shape == (6, 32, 32, 3) and data.num_classes == 100


def test_failed_download_explains_what_to_do(keras_home, monkeypatch):
    import keras.src.utils.file_utils as file_utils

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    with pytest.raises(SpecError) as err:
        load_dataset(DatasetSpec(name="fashion_mnist"))
    message = str(err.value)
    assert "download failed" in message and "dataset.path" in message
    assert str(keras_home) in message


def test_download_goes_through_keras_loader_into_the_cache(keras_home, monkeypatch, tmp_path):
    """The real keras.datasets code path, with the network replaced by local files."""
    import keras.src.utils.file_utils as file_utils

    source = tmp_path / "served"
    write_idx(source, 12, 6)

    def fake_retrieve(url, filename, reporthook=None):
        Path(filename).write_bytes((source / url.rsplit("/", 1)[-1]).read_bytes())

    monkeypatch.setattr(file_utils, "urlretrieve", fake_retrieve)
    data = load_dataset(DatasetSpec(name="fashion_mnist", validation_split=0.5))
    assert data.x_train.shape == (6, 28, 28, 1)
    assert (keras_home / "datasets" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_npz_user_file_infers_task(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(
        path,
        x_train=np.ones((10, 3)),
        y_train=np.arange(10) % 4,
        x_test=np.ones((4, 3)),
        y_test=np.arange(4),
    )
    data = load_dataset(DatasetSpec(name="npz", path=str(path), normalize="none"))
    assert data.task == "classification" and data.num_classes == 4


def test_npz_missing_arrays(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.ones((3, 2)))
    with pytest.raises(SpecError, match="x_train, y_train, x_test, y_test"):
        load_dataset(DatasetSpec(name="npz", path=str(path)))


def test_offline_sets():
    digits = load_dataset(DatasetSpec(name="digits", flatten=True))
    assert digits.x_train.shape[1] == 64 and digits.x_test.shape == (360, 64)
    two = load_dataset(DatasetSpec(name="two_scale", normalize="none", num_samples=100))
    assert two.task == "regression" and two.x_train.shape == (72, 2)
    assert two.x_train[:, 1].max() > 20 * two.x_train[:, 0].max() / 10  # very different scales
    std = load_dataset(DatasetSpec(name="two_scale", normalize="standardize"))
    assert np.allclose(std.x_train.mean(axis=0), 0, atol=1e-5)
    blobs = load_dataset(DatasetSpec(name="blobs"))
    assert blobs.num_classes == 3


# --- normalize: scale divides by the range the data comes in ----------------------------------


def _write_npz(path: Path, x_train: np.ndarray, x_test: np.ndarray) -> Path:
    np.savez(
        path,
        x_train=x_train,
        y_train=np.arange(len(x_train)) % 2,
        x_test=x_test,
        y_test=np.arange(len(x_test)) % 2,
    )
    return path


def test_npz_uint8_pixels_are_divided_by_255(tmp_path):
    """uint8 pixels end in [0, 1], not left at 0..255 (which stalls a network without BN)."""
    pixels = np.arange(256, dtype=np.uint8).reshape(32, 8)
    path = _write_npz(tmp_path / "u8.npz", pixels, pixels[:4])
    data = load_dataset(DatasetSpec(name="npz", path=str(path), validation_split="test"))
    assert data.scale_divisor == 255.0
    assert data.x_train.max() == 1.0 and data.x_train.min() == 0.0
    assert np.allclose(data.x_test, pixels[:4] / 255)


def test_npz_uint16_and_unit_floats_keep_their_range(tmp_path):
    wide = np.linspace(0, 65535, 40).astype(np.uint16).reshape(10, 4)
    data = load_dataset(
        DatasetSpec(name="npz", path=str(_write_npz(tmp_path / "a.npz", wide, wide)))
    )
    assert data.scale_divisor == 65535.0 and data.x_test.max() == 1.0
    unit = np.linspace(-1, 1, 40).reshape(10, 4)
    data = load_dataset(
        DatasetSpec(name="npz", path=str(_write_npz(tmp_path / "b.npz", unit, unit)))
    )
    assert data.scale_divisor == 1.0 and np.allclose(data.x_test, unit)


@pytest.mark.parametrize(
    ("x", "found"),
    [
        (np.linspace(0, 200, 40).reshape(10, 4), "floats from 0 to 200, outside [-1, 1]"),
        (np.arange(40).reshape(10, 4), "int64"),  # numpy's default int says nothing of the range
        (np.arange(40, dtype=np.uint8).reshape(10, 4) % 2, "only reach 1 of the 255"),
    ],
    ids=["float-beyond-1", "signed-int", "uint8-mask"],
)
def test_npz_scale_refuses_a_range_it_cannot_tell(tmp_path, x, found):
    path = _write_npz(tmp_path / "x.npz", x, x)
    with pytest.raises(SpecError) as err:
        load_dataset(DatasetSpec(name="npz", path=str(path)))
    message = str(err.value)
    assert found in message and "dataset.scale_by" in message
    assert "normalize: standardize" in message and str(path) in message


def test_npz_scale_by_is_used_and_other_modes_need_no_range(tmp_path):
    x = np.linspace(0, 200, 40).reshape(10, 4)
    path = str(_write_npz(tmp_path / "x.npz", x, x))
    data = load_dataset(DatasetSpec(name="npz", path=path, scale_by=200.0))
    assert data.scale_divisor == 200.0 and np.allclose(data.x_test, x / 200)
    data = load_dataset(DatasetSpec(name="npz", path=path, normalize="standardize", scale_by=7.0))
    assert data.scale_divisor is None
    data = load_dataset(DatasetSpec(name="npz", path=path, normalize="none"))
    assert data.scale_divisor is None and np.allclose(data.x_test, x)


def test_registry_datasets_keep_their_divisor():
    """digits is stored as floats 0..16: the registry's 16 wins over any rule on its dtype."""
    spec = DatasetSpec(name="digits", validation_split="test")
    x_train, _, x_test, _ = REGISTRY["digits"].load(spec)
    data = load_dataset(spec)
    assert data.scale_divisor == 16.0
    assert np.array_equal(data.x_train[..., 0], (x_train / np.float32(16)).astype(np.float32))
    assert np.array_equal(data.x_test[..., 0], (x_test / np.float32(16)).astype(np.float32))
    halved = load_dataset(DatasetSpec(name="digits", validation_split="test", scale_by=8.0))
    assert halved.scale_divisor == 8.0 and np.allclose(halved.x_test, 2 * data.x_test)
    assert load_dataset(DatasetSpec(name="blobs")).scale_divisor == 1.0


@pytest.mark.parametrize("value", [0, -255, "inf"])
def test_scale_by_must_be_positive_and_finite(value):
    with pytest.raises(SpecError, match=r"dataset\.scale_by"):
        validate(RunSpec, {"dataset": {"name": "npz", "scale_by": value}, "model": _MODEL}, None)
