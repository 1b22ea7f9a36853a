"""A two-arm, two-seed ablation of the tiny spec, written to a folder, and its final losses."""

from __future__ import annotations

from pathlib import Path

import yaml

from bnbench.results import rundir
from tests.support.specs import TINY_SPEC

ABLATION = {
    "name": "abl",
    "base": "spec.yaml",
    "overrides": {"training.steps": 30, "training.eval_every": 10},
    "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
    "seeds": [0, 1],
}


def write_ablation(tmp_path: Path, ablation: dict, spec: dict = TINY_SPEC) -> Path:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(ablation, sort_keys=False))
    return path


def final_losses(results: Path) -> dict[str, float]:
    out = {}
    for run in sorted((results / "runs").iterdir()):
        summary = rundir.read_summary(run)
        assert summary is not None, run
        out[run.name] = summary.final["test_loss"]
    return out
