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

from tests.support.specs import TINY_SPEC


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
