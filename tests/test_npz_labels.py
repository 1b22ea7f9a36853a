"""An .npz whose class labels are stored as whole-valued floats is refused, not regressed."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from tests.support.specs import TINY_SPEC, files_under


def _npz(path, labels_dtype):
    rng = np.random.default_rng(0)
    x = rng.random((60, 4), dtype=np.float32)
    y = (np.arange(60) % 3).astype(labels_dtype)
    np.savez(path, x_train=x[:48], y_train=y[:48], x_test=x[48:], y_test=y[48:])


def _spec(tmp_path, write_spec, labels_dtype, **training):
    _npz(tmp_path / "data.npz", labels_dtype)
    spec = copy.deepcopy(TINY_SPEC)
    spec["dataset"] = {"name": "npz", "path": str(tmp_path / "data.npz")}
    spec["training"].update(steps=4, eval_every=2, batch_size=8, **training)
    return write_spec(spec)


@pytest.mark.parametrize("command", ["validate", "train"])
def test_float_class_numbers_are_refused_with_the_fix(tmp_path, write_spec, command):
    path = _spec(tmp_path, write_spec, np.float32)
    out = tmp_path / "run"
    args = [command, str(path)] + (["--out", str(out)] if command == "train" else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "whole numbers (3 distinct, 0 to 2)" in result.output
    assert "MSE regression" in result.output and "astype('int64')" in result.output
    assert files_under(out) == []


def test_integer_labels_classify_and_a_named_loss_regresses(tmp_path, write_spec):
    path = _spec(tmp_path, write_spec, np.int64)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "sparse_categorical_crossentropy" in result.output
    path = _spec(tmp_path, write_spec, np.float32, loss="mse", metrics=["mae"])
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "mse / mae" in result.output
