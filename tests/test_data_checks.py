"""Data that cannot give a meaningful number is refused when loaded, naming the array at fault."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.schema import DatasetSpec
from bnbench.data.datasets import load_dataset
from bnbench.errors import SpecError
from tests.support.specs import files_under

Arrays = dict[str, np.ndarray]
runner = CliRunner()


def _good() -> Arrays:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.random((12, 3)),
        "y_train": np.arange(12) % 3,
        "x_test": rng.random((6, 3)),
        "y_test": np.arange(6) % 3,
    }


def _with(**changes: Callable[[Arrays], np.ndarray]) -> Arrays:
    arrays = _good()
    for name, change in changes.items():
        arrays[name] = change(arrays)
    return arrays


def _nan_at(*cells: tuple[int, int]) -> Callable[[Arrays], np.ndarray]:
    def change(arrays: Arrays) -> np.ndarray:
        x = arrays["x_train"].copy()
        for cell in cells:
            x[cell] = np.nan
        return x

    return change


def _inf_in_test(arrays: Arrays) -> np.ndarray:
    x = arrays["x_test"].copy()
    x[4, 2] = -np.inf
    return x


def _one_hot(arrays: Arrays) -> np.ndarray:
    return np.eye(3, dtype=np.int64)[arrays["y_train"]]


def _write(path: Path, arrays: Arrays) -> Path:
    np.savez(path, **arrays)  # np.savez pickles object arrays, as a careless user's file would
    return path


CASES = {
    "nan-input": (
        _with(x_train=_nan_at((5, 1), (7, 0), (9, 2))),
        ["x_train holds 3 NaN values", "first in example 5, at x_train[5, 1]"],
    ),
    "inf-test-input": (_with(x_test=_inf_in_test), ["x_test holds 1 infinite value", "[4, 2]"]),
    "negative-label": (
        _with(y_train=lambda a: np.where(np.arange(12) == 4, -1, a["y_train"])),
        ["y_train holds 1 negative label (first at index 4: -1)"],
    ),
    "fractional-test-label": (
        _with(y_test=lambda a: a["y_test"] + 0.5 * (np.arange(6) == 2)),
        ["y_test holds 1 fractional label (first at index 2: 2.5)"],
    ),
    "train-length-mismatch": (
        _with(y_train=lambda a: a["y_train"][:10]),
        ["x_train has 12 examples but y_train has 10 labels"],
    ),
    "test-length-mismatch": (
        _with(x_test=lambda a: a["x_test"][:5]),
        ["x_test has 5 examples but y_test has 6 labels"],
    ),
    "feature-shape-mismatch": (
        _with(x_test=lambda a: np.ones((6, 5))),
        ["x_train examples have shape (3,) but x_test examples have shape (5,)"],
    ),
    "empty": (
        _with(x_train=lambda a: np.ones((0, 3)), y_train=lambda a: np.zeros(0, np.int64)),
        ["x_train is empty (shape (0, 3))"],
    ),
    "strings": (
        _with(x_train=lambda a: a["x_train"].astype(str)),
        ["x_train holds text (dtype <U", "integers, floats or booleans"],
    ),
    "complex": (
        _with(x_test=lambda a: a["x_test"] * 1j),
        ["x_test holds complex numbers (dtype complex128)"],
    ),
    "object": (
        _with(x_train=lambda a: a["x_train"].astype(object)),
        ["x_train holds pickled (object) data", "np.asarray(x_train, dtype=np.float32)"],
    ),
    "zero-d": (_with(y_test=lambda a: np.array(3)), ["y_test is a single value (3)"]),
    "one-d-input": (
        _with(x_train=lambda a: a["x_train"][:, 0], x_test=lambda a: a["x_test"][:, 0]),
        ["x_train has shape (12,)", "x_train[:, None]"],
    ),
    "unseen-test-class": (
        _with(y_test=lambda a: np.array([0, 1, 2, 3, 4, 0])),
        ["y_test holds 2 classes that never occur in y_train (3, 4)"],
    ),
    "single-class": (
        _with(y_train=lambda a: np.zeros(12, np.int64), y_test=lambda a: np.zeros(6, np.int64)),
        ["y_train holds a single class (0)"],
    ),
    "one-hot": (
        _with(y_train=_one_hot),
        ["y_train holds one-hot rows (shape (12, 3))", "y_train.argmax(axis=1)"],
    ),
}


@pytest.mark.parametrize(("arrays", "expected"), CASES.values(), ids=CASES.keys())
def test_unusable_npz_is_refused_naming_the_array(tmp_path, arrays, expected):
    path = _write(tmp_path / "data.npz", arrays)
    with pytest.raises(SpecError) as err:
        load_dataset(DatasetSpec(name="npz", path=str(path), normalize="none"))
    message = str(err.value)
    assert message.startswith(f"dataset 'npz' ({path}): ")
    for fragment in expected:
        assert fragment in message
    # numpy's own word for a refused pickle belongs to object arrays only.
    assert ("pickled" in message) == (arrays["x_train"].dtype == object)


def test_the_good_arrays_load(tmp_path):
    """The baseline the cases above break, so each failure is down to its one change."""
    data = load_dataset(DatasetSpec(name="npz", path=str(_write(tmp_path / "ok.npz", _good()))))
    assert data.task == "classification" and data.num_classes == 3


def test_registry_labels_beyond_the_class_count(tmp_path):
    """MNIST has 10 classes, so a label 12 in a local mnist.npz is refused, not a wider head."""
    arrays = _good()
    arrays["x_train"], arrays["x_test"] = np.zeros((12, 28, 28), np.uint8), np.zeros((6, 28, 28))
    arrays["y_train"] = np.where(np.arange(12) == 3, 12, arrays["y_train"])
    path = _write(tmp_path / "mnist.npz", arrays)
    with pytest.raises(SpecError) as err:
        load_dataset(DatasetSpec(name="mnist", path=str(path)))
    assert "y_train holds 1 label >= 10 (first at index 3: 12)" in str(err.value)
    assert "0..9" in str(err.value)


def test_a_file_that_is_not_an_npz_archive(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(SpecError) as err:
        load_dataset(DatasetSpec(name="npz", path=str(path)))
    assert "is not a .npz archive" in str(err.value) and "np.savez" in str(err.value)
    assert "pickled" not in str(err.value)


def test_refusal_happens_before_the_scale_is_worked_out(tmp_path):
    """A NaN makes the range unknowable too; the NaN is the message worth reading."""
    path = _write(tmp_path / "data.npz", _with(x_train=_nan_at((0, 0))))
    with pytest.raises(SpecError, match="x_train holds 1 NaN value"):
        load_dataset(DatasetSpec(name="npz", path=str(path)))


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        (_with(x_train=_nan_at((2, 2))), "x_train holds 1 NaN value"),
        (_with(x_test=lambda a: np.ones((6, 4))), "x_test examples have shape (4,)"),
        (_with(x_test=lambda a: np.full((6, 3), 200.0)), "dataset.scale_by"),
    ],
    ids=["nan-input", "shape-mismatch", "unknown-scale"],
)
def test_cli_train_refuses_before_writing_anything(
    tmp_path, tiny_spec, write_spec, arrays, fragment
):
    tiny_spec["dataset"] = {"name": "npz", "path": str(_write(tmp_path / "data.npz", arrays))}
    tiny_spec["training"]["batch_size"] = 4
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(tiny_spec)), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert not out.exists() and files_under(out) == []
