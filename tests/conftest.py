"""Shared fixtures. Tests run Keras in-process on TensorFlow; other backends run in subprocesses."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Two cores are shared by the whole suite: keep each test's math single-threaded-ish.
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

from pathlib import Path

import pytest
import yaml

TINY_SPEC = {
    "name": "tiny",
    "seed": 0,
    "backend": "tensorflow",
    "dataset": {"name": "digits", "subset": 120, "validation_split": 0.25, "flatten": True},
    "model": {
        "activation": "relu",
        "norm": {"kind": "batch"},
        "blocks": [{"type": "dense", "units": 16}, {"type": "dense", "units": 16}],
    },
    "training": {
        "optimizer": "sgd",
        "learning_rate": 0.1,
        "batch_size": 16,
        "steps": 12,
        "eval_every": 4,
    },
}


# A 4-run ablation of TINY_SPEC (written beside it as spec.yaml): 2 arms x 2 rates, seed 0.
GRID_ABLATION = {
    "name": "abl",
    "base": "spec.yaml",
    "overrides": {"training.steps": 8},
    "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
    "grid": {"training.learning_rate": [0.01, 0.1]},
    "seeds": [0],
}


@pytest.fixture
def tiny_spec() -> dict:
    """A run spec that trains in about a second."""
    import copy

    return copy.deepcopy(TINY_SPEC)


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write a spec (dict or raw text) to a YAML file and return its path."""

    def write(spec: dict | str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


def files_under(path: Path) -> list[Path]:
    """Every file below `path` (empty when it does not exist)."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def write_summary(run_dir: Path, summary: dict) -> None:
    """Write a hand-built run summary through the run-directory contract."""
    from bnbench.results import rundir

    data = {"run_id": run_dir.name, **summary}
    rundir.finish(run_dir, rundir.RunSummary.model_validate(data))
