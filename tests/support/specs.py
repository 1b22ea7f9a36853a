"""Specs and small helpers that many tests share: a tiny run spec, a 4-run ablation of it."""

from __future__ import annotations

import copy
from pathlib import Path

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


def files_under(path: Path) -> list[Path]:
    """Every file below `path` (empty when it does not exist)."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def write_summary(run_dir: Path, summary: dict) -> None:
    """Write a hand-built run summary through the run-directory contract."""
    from bnbench.results import rundir

    data = {"run_id": run_dir.name, **summary}
    rundir.finish(run_dir, rundir.RunSummary.model_validate(data))


# TINY_SPEC on JAX, where seeds that differ only in their seed train as one vectorized group.
JAX_SPEC = {**copy.deepcopy(TINY_SPEC), "backend": "jax"}
# An ablation of two cells of three seeds on `spec.yaml`: two vectorized groups of three.
GROUPED_SEEDS = {
    "name": "seeds",
    "base": "spec.yaml",
    "overrides": {"training.steps": 4, "training.eval_every": 2},
    "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
    "seeds": [0, 1, 2],
}
