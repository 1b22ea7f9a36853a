"""Data files that lie about their size: each is one message and exit 2, refused before numpy
allocates or walks what they claim, and nothing is written."""

from __future__ import annotations

import gzip
import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.errors import SpecError
from tests.support.specs import files_under

runner = CliRunner()
CIFAR10 = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
           "test_batch"]  # fmt: skip


def _refused(args: list[Any], *fragments: str) -> str:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = " ".join(result.output.split())
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _npy(shape: tuple[int, ...], descr: str = "<f8", data: bytes = b"\0" * 64) -> bytes:
    """An .npy member whose header claims `shape`, followed by only `data`."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + data


def _npz(path: Path, **members: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(f"{name}.npy", content)
    return path


def _real(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _spec(write_spec, tiny_spec, dataset: dict[str, Any]) -> Path:
    tiny_spec["dataset"] = {**dataset, "validation_split": 0.25}
    tiny_spec["model"]["blocks"] = [{"type": "flatten"}, {"type": "dense", "units": 4}]
    return write_spec(tiny_spec)


def _claiming(tmp_path: Path, name: str) -> Path:
    """A 1 KB .npz whose x_train header claims 10^13 float64s: 72.8 TiB."""
    small = _real(np.zeros((4, 8, 8), np.uint8))
    labels = _real(np.arange(4, dtype=np.int64))
    return _npz(tmp_path / name, x_train=_npy((10**13,)), y_train=labels, x_test=small,
                y_test=labels)  # fmt: skip


def test_an_npz_claiming_terabytes_is_refused_before_allocating(tmp_path, write_spec, tiny_spec):
    path = _claiming(tmp_path, "data.npz")
    spec = _spec(write_spec, tiny_spec, {"name": "npz", "path": str(path)})
    out = tmp_path / "run"
    _refused(["train", spec, "--out", out], "x_train's header claims shape (10000000000000,)",
             "72.8 TiB", "damaged")  # fmt: skip
    assert files_under(out) == []
    _refused(["validate", spec], "72.8 TiB")


def test_an_mnist_npz_with_a_huge_header_is_refused(tmp_path, write_spec, tiny_spec):
    path = _claiming(tmp_path, "mnist.npz")
    spec = _spec(write_spec, tiny_spec, {"name": "mnist", "path": str(path)})
    _refused(["validate", spec], "mnist.npz: x_train's header claims", "72.8 TiB")


def test_an_npz_header_without_its_data_is_refused_but_real_arrays_read(tmp_path):
    from bnbench.data.keras_sets import read_npz

    images, labels = np.zeros((4, 8, 8), np.uint8), np.arange(4, dtype=np.int64)
    real = _npz(tmp_path / "ok.npz", x_train=_real(images), y_train=_real(labels),
                x_test=_real(images), y_test=_real(labels))  # fmt: skip
    assert read_npz(real)[0].shape == (4, 8, 8)
    np.savez_compressed(tmp_path / "zipped.npz", x_train=images, y_train=labels,
                        x_test=images, y_test=labels)  # fmt: skip
    assert read_npz(tmp_path / "zipped.npz")[1].tolist() == [0, 1, 2, 3]
    cut = _npz(tmp_path / "cut.npz", x_train=_npy((4, 8, 8), "|u1", b"\0" * 200),
               y_train=_real(labels), x_test=_real(images), y_test=_real(labels))  # fmt: skip
    with pytest.raises(SpecError, match=r"claims shape \(4, 8, 8\) of uint8 \(256 bytes\)"):
        read_npz(cut)


def _fashion(folder: Path, image_bytes: int) -> Path:
    folder.mkdir()
    for kind, count in (("train", 5), ("t10k", 3)):
        (folder / f"{kind}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(b"\0" * 8 + bytes(count)))
        (folder / f"{kind}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(b"\0" * 16 + bytes(image_bytes if kind == "train" else 3 * 784)))
    return folder


def test_fashion_mnist_images_not_a_whole_number_of_images_are_refused(
    tmp_path, write_spec, tiny_spec
):
    folder = _fashion(tmp_path / "fashion", 5 * 784 - 3)
    spec = _spec(write_spec, tiny_spec, {"name": "fashion_mnist", "path": str(folder)})
    _refused(["validate", spec], "train-images-idx3-ubyte.gz: 3933 bytes is not an idx file of "
             "28x28 images", "damaged")  # fmt: skip
    from bnbench.data.keras_sets import _read_idx_gz

    whole = _fashion(tmp_path / "whole", 5 * 784)
    assert _read_idx_gz(whole)[0].shape == (5, 28, 28)
    wrong = _fashion(tmp_path / "wrong", 4 * 784)
    with pytest.raises(SpecError, match="train has 4 images but 5 labels"):
        _read_idx_gz(wrong)


@pytest.mark.parametrize("samples", [10**12, 3 * 10**8])
def test_a_synthetic_set_too_large_is_refused_at_once(tmp_path, write_spec, tiny_spec, samples):
    spec = _spec(write_spec, tiny_spec, {"name": "blobs", "num_samples": samples})
    # Refused by validation, before anything is generated (the message says so).
    _refused(["validate", spec], f"dataset.num_samples: {samples:,} is more than a synthetic "
             "set may hold")  # fmt: skip


def _nest(depth: int) -> list[Any]:
    """A list that pickles to a few hundred bytes (each level refers to the one below twice
    through the pickle's memo) but holds 2**depth leaves."""
    nest: list[Any] = [0, 1]
    for _ in range(depth):
        nest = [nest, nest]
    return nest


@pytest.mark.parametrize(("batch", "fragment"), [
    ({b"data": _nest(50), b"labels": [1, 2]}, "b'data' is a list, not a 2-D array"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": _nest(50)},
     "b'labels' is not a flat list of integer labels"),
])  # fmt: skip
def test_a_cifar_batch_nested_by_reference_is_refused_not_walked(tmp_path, tiny_spec, batch,
                                                                 fragment):  # fmt: skip
    folder = tmp_path / "cifar"
    folder.mkdir()
    for name in CIFAR10:
        (folder / name).write_bytes(pickle.dumps(batch))
    assert (folder / "data_batch_1").stat().st_size < 70_000
    tiny_spec["dataset"] = {"name": "cifar10", "path": str(folder), "validation_split": 0.25}
    tiny_spec["model"]["blocks"] = [{"type": "flatten"}, {"type": "dense", "units": 4}]
    import yaml

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec))
    # A subprocess, so that the old behaviour (numpy walking 2**50 leaves) fails on the timeout.
    command = [sys.executable, "-m", "bnbench", "validate", str(tmp_path / "spec.yaml")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert fragment in message and "Traceback" not in message, message
