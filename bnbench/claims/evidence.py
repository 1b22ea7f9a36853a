"""What a claim's verdict rule reads: one claim's results tree, run by run, seed by seed.

A claim's folder is an ordinary ablation results tree (`bnbench.results.tree`); this adds, per
run, everything its `summary.json` says at the end of training (`final.<key>` columns such as
`final.test_accuracy` or `final.val_train_mode_accuracy`, `stalled`, `chance_accuracy`), read
through the run-directory contract. Runs that failed or never finished are not evidence.

The tree is read from the run directories, each file once (not from runs.csv, which only
`bnbench claims run` and `bnbench report` write): a report reads and never rewrites.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bnbench.analysis.paired import TimeToTarget
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.layout import RUNS_DIR
from bnbench.results.rows import row_from, run_columns
from bnbench.results.tree import ResultsTree, tree_from_runs
from bnbench.results.tree_files import StoredAblation, read_ablation

# A run is evidence when it finished training: completed, or diverged (a result, not a crash).
USABLE = ("completed", "diverged")
Cell = Mapping[str, Any]


@dataclass(frozen=True)
class Evidence:
    """One claim's finished runs, with their summaries' final values.

    Attributes:
        tree: The results tree as the figures read it.
        runs: `tree.runs` restricted to finished runs, plus `final.<key>`, `stalled` and
            `chance_accuracy` from each run's summary.
        summaries: Run id -> its summary, for the finished runs.
        configs: Run id -> its resolved config as plain data, for the finished runs.
    """

    tree: ResultsTree
    runs: pd.DataFrame
    summaries: Mapping[str, rundir.RunSummary] = field(default_factory=dict)
    configs: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def histories(self) -> pd.DataFrame:
        history = self.tree.histories
        rows: pd.DataFrame = history[history["run_id"].isin(self.runs["run_id"])]
        return rows

    def diagnostics(self, name: str) -> pd.DataFrame:
        """The rows of one diagnostics file (`rundir.DIAGNOSTICS`) of the finished runs."""
        frame = self.tree.diagnostics[name]
        rows: pd.DataFrame = frame[frame["run_id"].isin(self.runs["run_id"])]
        return rows

    @property
    def seeds(self) -> list[int]:
        return sorted({int(s) for s in self.runs["seed"].dropna()})

    def values(self, key: str) -> list[Any]:
        """The sorted values the grid takes for the dotted `key`."""
        column = f"grid.{key}"
        return sorted(self.tree.runs[column].dropna().unique()) if column in self.tree.runs else []

    def where(self, arm: str | None = None, cell: Cell | None = None) -> pd.DataFrame:
        """The finished runs of `arm` (any arm if None) in the grid cell matching `cell`."""
        rows = self.runs if arm is None else self.runs[self.runs["arm"] == arm]
        for key, wanted in (cell or {}).items():
            rows = rows[rows[f"grid.{key}"].map(lambda value, w=wanted: _same(value, w))]
        return rows

    def by_seed(
        self, column: str, arm: str, cell: Cell | None = None, completed: bool = False
    ) -> dict[int, float]:
        """Seed -> `column` of the arm's runs in `cell` (NaN where a run has no value, and for
        a diverged run when `completed`)."""
        rows = self.where(arm, cell)
        if column not in rows:
            return {}
        values = rows[column].where(rows["status"] == "completed") if completed else rows[column]
        return {int(s): _float(v) for s, v in zip(rows["seed"], values, strict=True)}

    def times(self, arm: str, cell: Cell | None = None) -> dict[int, TimeToTarget]:
        """Seed -> steps to the target; a run that never reached it is censored at its budget.

        A diverged run that had not reached the target never will: it is censored at its
        planned length (it took at least that long), not at the step it diverged.
        """
        rows = self.where(arm, cell)
        return {
            int(seed): TimeToTarget(None if math.isnan(_float(s)) else _float(s), _float(total))
            for seed, s, total in zip(
                rows["seed"], rows["steps_to_target"], rows["total_steps"], strict=True
            )
        }

    def budget(self) -> str:
        """The budget in words, e.g. "400 steps at batch 32; 3 seeds, 9 runs"."""
        steps = sorted({int(s) for s in self.runs["total_steps"].dropna()})
        batches = sorted({int(b) for b in self.runs["batch_size"].dropna()})
        length, batch = _span(steps, "steps"), _span(batches, "")
        return f"{length} at batch {batch}; {len(self.seeds)} seeds, {len(self.runs)} runs"


def load_evidence(claim_dir: Path, stored: StoredAblation | None = None) -> Evidence:
    """Read one claim's results tree from its run directories, each file once.

    Args:
        claim_dir: The claim's folder, holding `runs/<run_id>/`.
        stored: Its ablation.yaml as already read (read here when None).

    Raises:
        SpecError: the folder holds no run directory, or a file in one cannot be read.
    """
    stored = read_ablation(claim_dir) if stored is None else stored
    runs_dir = claim_dir / RUNS_DIR
    dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise SpecError(f"{str(runs_dir)!r} holds no run directories")
    found = [(path, rundir.read_entry(path), rundir.read_config(path), rundir.read_summary(path))
             for path in dirs]  # fmt: skip
    grid = stored.grid
    keys = [*map(str, grid)] + [str(k) for _, e, _, _ in found for k in e.get("grid") or {}]
    grid_keys = tuple(dict.fromkeys(keys))
    rows = [row_from(path, entry, grid_keys, config, summary).record()
            for path, entry, config, summary in found]  # fmt: skip
    arms = list(stored.arms)
    rows.sort(key=lambda row: _order(row, arms, grid_keys, grid))
    frame = pd.DataFrame(rows, columns=run_columns(grid_keys))
    run_dirs = {path.name: path for path, *_ in found}
    title = stored.name or claim_dir.name
    tree = tree_from_runs(claim_dir, frame, run_dirs, arms, title=title)
    runs = tree.runs[tree.runs["status"].isin(USABLE)].copy()
    by_id = {path.name: (config, summary) for path, _, config, summary in found}
    extra: list[dict[str, Any]] = []
    for run_id in runs["run_id"]:
        summary = by_id[str(run_id)][1]
        row: dict[str, Any] = {"stalled": None, "chance_accuracy": None}
        if summary is not None:
            row = {f"final.{key}": value for key, value in summary.final.items()}
            row |= {"stalled": summary.stalled, "chance_accuracy": summary.chance_accuracy}
        extra.append(row)
    columns = pd.DataFrame(extra, index=runs.index)
    finished = [str(run_id) for run_id in runs["run_id"]]
    summaries = {rid: s for rid in finished if (s := by_id[rid][1]) is not None}
    configs = {rid: by_id[rid][0] for rid in finished}
    runs = runs.drop(columns=[c for c in columns.columns if c in runs.columns])  # runs.csv: 1/0
    return Evidence(tree, pd.concat([runs, columns], axis=1), summaries, configs)


def _order(
    row: dict[str, Any], arms: list[str], grid_keys: tuple[str, ...], grid: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Arm order, then the cell's place in the ablation's grid, then seed (as runs.csv)."""
    arm = arms.index(row["arm"]) if row["arm"] in arms else len(arms)
    places = []
    for key in grid_keys:
        listed = [str(v) for v in grid.get(key) or []]
        value = str(row[f"grid.{key}"])
        places.append(listed.index(value) if value in listed else len(listed))
    seed = row["seed"]
    return arm, places, seed is None, seed or 0, row["run_id"]


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, int | float) and not isinstance(wanted, bool):
        try:
            return bool(np.isclose(float(value), float(wanted), rtol=1e-9, atol=0.0))
        except (TypeError, ValueError):
            return False
    return bool(str(value) == str(wanted))


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _span(values: list[int], unit: str) -> str:
    suffix = f" {unit}" if unit else ""
    if not values:
        return f"?{suffix}"
    if len(values) == 1:
        return f"{values[0]}{suffix}"
    return f"{values[0]}–{values[-1]}{suffix}"
