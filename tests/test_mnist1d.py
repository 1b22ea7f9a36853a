"""MNIST-1D: generated in-process (no network), deterministic, its published shape, the extra."""

from __future__ import annotations

import copy
import os
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.loading import load_run_spec
from bnbench.config.schema import DatasetSpec
from bnbench.data import mnist1d
from bnbench.data.datasets import describe, load_dataset
from bnbench.results import rundir
from tests.support.specs import TINY_SPEC, files_under

pytest.importorskip("mnist1d", reason='needs the extra: pip install "bnbench[mnist1d]"')

runner = CliRunner()
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mlp_mnist1d.yaml"
SMALL = {"name": "mnist1d", "num_samples": 200}  # 160 train / 40 test, generated in ~0.2 s
INSTALL = 'pip install "bnbench[mnist1d]"'

# Runs before bnbench in a fresh interpreter: any import of mnist1d fails as if the package
# were not installed (the package itself stays where it is).
_HIDE_PACKAGE = textwrap.dedent(
    """
    import sys

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "mnist1d":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    from bnbench.cli import main
    sys.argv = ["bnbench", *sys.argv[1:]]
    main()
    """
)


def _without_package(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [sys.executable, "-c", _HIDE_PACKAGE, *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
        env={**os.environ, "PYTHONPATH": root, "COLUMNS": "200"},
    )  # fmt: skip


def test_published_shape_and_classes():
    data = load_dataset(DatasetSpec(name="mnist1d", validation_split="test"))
    assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert data.input_shape == (40,) and data.num_classes == 10 and data.output_units == 10
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert set(np.unique(data.y_train)) == set(range(10))
    # 'scale' leaves the set as the package made it: centred, unit variance over all signals.
    both = np.concatenate([data.x_train, data.x_test])
    assert abs(float(both.mean())) < 0.01 and abs(float(both.std()) - 1.0) < 0.01


def test_subset_validation_split_and_flatten():
    data = load_dataset(DatasetSpec(**SMALL, subset=100, validation_split=0.2, flatten=True))
    assert data.x_train.shape == (80, 40) and data.x_val.shape == (20, 40)
    assert data.x_test.shape == (40, 40)


def test_generation_is_deterministic_and_leaves_global_generators_alone():
    mnist1d._generate.cache_clear()
    np.random.seed(7)
    random.seed(7)
    first = load_dataset(DatasetSpec(**SMALL))
    after = (np.random.random(), random.random())
    np.random.seed(7)
    random.seed(7)
    assert after == (np.random.random(), random.random())
    mnist1d._generate.cache_clear()
    second = load_dataset(DatasetSpec(**SMALL))
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    other = load_dataset(DatasetSpec(name="mnist1d", num_samples=300))
    assert not np.array_equal(other.x_test[:10], first.x_test[:10])


def test_cached_arrays_cannot_be_changed_through_a_caller():
    x_train, *_ = mnist1d.load(DatasetSpec(**SMALL))
    x_train[:] = 0.0
    again, *_ = mnist1d.load(DatasetSpec(**SMALL))
    assert np.abs(again).sum() > 0


def test_generated_without_network_or_files(tmp_path, monkeypatch):
    """The package's `get_dataset` would download a pickle and write it to the working folder."""
    mnist1d._generate.cache_clear()
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("mnist1d tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    data = load_dataset(DatasetSpec(name="mnist1d", num_samples=120))
    assert data.x_test.shape == (24, 40)
    assert list(tmp_path.iterdir()) == []


def test_datasets_lists_it_offline_and_available():
    row = next(r for r in describe() if r["name"] == "mnist1d")
    assert row["offline"] == "yes" and row["available"] == "yes" and row["cache"] == ""
    result = runner.invoke(app, ["datasets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "mnist1d" in result.output


def test_without_the_package_train_names_the_extra_and_writes_nothing(tmp_path, write_spec):
    spec = copy.deepcopy(TINY_SPEC)
    spec["dataset"] = dict(SMALL)
    path, out = write_spec(spec), tmp_path / "run"
    done = _without_package("train", str(path), "--out", str(out), "-q", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "dataset 'mnist1d' needs the optional mnist1d package" in lines[0]
    assert INSTALL in lines[0]
    assert files_under(out) == []
    listed = _without_package("datasets", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "mnist1d" in line)
    assert "no" in row and INSTALL in " ".join(listed.stdout.split())


def test_train_an_mlp_for_one_epoch(tmp_path, write_spec):
    spec = copy.deepcopy(TINY_SPEC)
    spec["dataset"] = dict(SMALL)
    spec["training"] = {**spec["training"], "steps": None, "epochs": 1, "eval_every": 3}
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(spec)), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = rundir.read_summary(out)
    assert summary is not None and summary.status == "completed"
    assert summary.total_steps == 9  # ceil(144 training signals / batch 16)
    assert 0.0 <= summary.final["test_accuracy"] <= 1.0
    config = rundir.read_config(out)
    assert config["dataset"]["name"] == "mnist1d"


def test_shipped_config_is_valid_and_explains_itself():
    spec = load_run_spec(CONFIG)
    assert spec.dataset.name == "mnist1d" and spec.training.steps == 6000
    header = [line for line in CONFIG.read_text(encoding="utf-8").splitlines() if line[:1] == "#"]
    text = "\n".join(header)
    for part in (
        "Expected:",
        "Runtime:",
        "Run:  bnbench train configs/mlp_mnist1d.yaml",
        INSTALL,
        "logistic regression 32%, MLP 68%, CNN 94%",
    ):
        assert part in text, part
