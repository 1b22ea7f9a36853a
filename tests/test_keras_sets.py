"""`bnbench train` on the Keras datasets end to end, read from tiny files in Keras' cache layout."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.schema import DatasetSpec
from bnbench.data.datasets import describe, load_dataset
from bnbench.results import rundir
from tests.support.keras_cache import point_keras_home, write_all, write_cifar10, write_mnist
from tests.support.specs import TINY_SPEC

runner = CliRunner()


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    return point_keras_home(tmp_path / "keras_home", monkeypatch)


def _train(tmp_path: Path, write_spec, dataset: dict, blocks: list[dict]) -> rundir.RunSummary:
    spec = copy.deepcopy(TINY_SPEC)
    spec["dataset"] = dataset
    spec["model"]["blocks"] = blocks
    spec["training"] = {**spec["training"], "steps": 4, "eval_every": 2, "batch_size": 8}
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(spec)), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = rundir.read_summary(out)
    assert summary is not None and summary.status == "completed"
    assert [row["step"] for row in _history(out)] == ["2", "4"]
    return summary


def _history(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / rundir.HISTORY).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_train_mlp_on_mnist_from_the_keras_cache(keras_home, tmp_path, write_spec):
    write_mnist(keras_home, 40, 10)
    summary = _train(
        tmp_path, write_spec, {"name": "mnist", "flatten": True, "validation_split": 0.25},
        [{"type": "dense", "units": 8}],
    )  # fmt: skip
    assert 0.0 <= summary.final["test_accuracy"] <= 1.0
    assert (keras_home / "datasets" / "mnist.npz").exists()  # read in place, nothing downloaded


def test_train_conv_net_on_cifar10_from_the_keras_cache(keras_home, tmp_path, write_spec):
    write_cifar10(keras_home, 8)  # 40 training images, 8 test images
    blocks = [{"type": "conv2d", "filters": 4, "pool": "max"}, {"type": "flatten"},
              {"type": "dense", "units": 8}]  # fmt: skip
    summary = _train(tmp_path, write_spec, {"name": "cifar10", "validation_split": 0.2}, blocks)
    assert 0.0 <= summary.final["test_accuracy"] <= 1.0


def test_fake_cache_holds_all_four_where_keras_looks(keras_home):
    write_all(keras_home, n_train=20, n_test=5)
    rows = {row["name"]: row for row in describe()}
    shapes = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3),
              "cifar100": (32, 32, 3)}  # fmt: skip
    sizes = {"mnist": (20, 5), "fashion_mnist": (20, 5), "cifar10": (20, 4), "cifar100": (20, 20)}
    for name, shape in shapes.items():
        assert rows[name]["available"] == "yes", name
        data = load_dataset(DatasetSpec(name=name, validation_split="test"), download=False)
        assert data.input_shape == shape, name
        assert (len(data.x_train), len(data.x_test)) == sizes[name], name
        assert data.num_classes == (100 if name == "cifar100" else 10)
