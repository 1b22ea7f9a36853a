"""A hand-built results tree of the shift_adaptation claim, for its rule tests.

`tests.support.claims_tree.Tree` writes the runs; this adds what that claim reads beyond them,
through the run-directory contract: each run's `evaluation.shift` in its config and its shifted test
accuracies in `summary.json` (`RunSummary.shifted`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnbench.analysis.tables import build_report
from bnbench.results import rundir
from bnbench.results.files import write_yaml
from tests.support.claims_tree import SEEDS, Tree

KIND, SEVERITY = "evaluation.shift.kind", "evaluation.shift.severity"
# Per-seed effects at N = 32 (re-estimated − training statistics), as in test_claims_rules.py.
EFFECTS = {"for": (0.10, 0.12, 0.09, 0.11, 0.13, 0.08),
           "against": (-0.10, -0.12, -0.09, -0.11, -0.13, -0.08),
           "unclear": (0.05, -0.06, 0.04, -0.03, 0.01, -0.02)}  # fmt: skip


@dataclass
class ShiftTree(Tree):
    """A `Tree` whose runs also carry a shift and shifted test accuracies."""

    shifted: dict[tuple[str, int, str], dict[str, float]] = field(default_factory=dict)
    shifts: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)

    def add_shifted(self, seed: int, cell: dict[str, Any], *, clean: float, moving: float,
                    adapted: dict[int, float], prior: int | None = None) -> None:  # fmt: skip
        """One `bn` run of `cell`: clean test accuracy, shifted with the training statistics,
        and shifted after re-estimation on each N of `adapted`."""
        self.add("bn", seed, cell, test=clean)
        scores = {rundir.shifted_key("accuracy", None): moving}
        scores |= {rundir.shifted_key("accuracy", n): v for n, v in adapted.items()}
        key = ("bn", seed, _label(cell))
        self.shifted[key] = scores
        self.shifts[key] = {"kind": cell[KIND], "severity": cell[SEVERITY],
                            "adapt_examples": sorted(adapted), "prior_strength": prior}  # fmt: skip

    def write(self, root: Path) -> Path:
        folder = super().write(root)
        for path in sorted((folder / "runs").iterdir()):
            entry = rundir.read_entry(path)
            key = (entry["arm"], entry["seed"], _label(entry["grid"]))
            if key not in self.shifted:
                continue
            config = {**rundir.read_config(path), "evaluation": {"shift": self.shifts[key]}}
            write_yaml(path / rundir.CONFIG, config)
            summary = rundir.read_summary(path)
            assert summary is not None
            rundir.finish(path, summary.model_copy(update={"shifted": self.shifted[key]}))
        build_report(folder)  # runs.csv again, now with the shift columns
        return folder


def _label(cell: dict[str, Any]) -> str:
    return ",".join(f"{k}={cell[k]}" for k in sorted(cell))


def shift_adaptation(effect: str, effects: dict[str, tuple[float, ...]] = EFFECTS) -> ShiftTree:
    """Two shifts (noise 0.5, contrast 0.5); re-estimation on 32 examples moves each seed's
    shifted accuracy by the effect, from 0.6 with the training statistics."""
    grid = {KIND: ["noise", "contrast"], SEVERITY: [0.5]}
    tree = ShiftTree("shift_adaptation", ["bn"], grid)
    for seed, d in zip(SEEDS, effects[effect], strict=True):
        for kind in grid[KIND]:
            adapted = {1: 0.3, 8: 0.5 + d / 2, 32: 0.6 + d, 256: 0.6 + d}
            tree.add_shifted(seed, {KIND: kind, SEVERITY: 0.5}, clean=0.95, moving=0.6,
                             adapted=adapted)  # fmt: skip
    return tree
