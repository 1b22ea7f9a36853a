"""Read a results tree into pandas frames: the only input of the plots.

The runner writes the tree; this module only reads it, so figures can be re-rendered and
restyled without training. An ablation directory holds `ablation.yaml` (arm order), `runs.csv`
(one row per run, grid values in `grid.<dotted key>` columns) and `runs/<run_id>/` with
`history.csv`, `summary.json`, `config.yaml` and optional `diagnostics/*.csv`. A single run
directory (with `summary.json` and no `runs.csv`) is read as an ablation of one run whose arm is
the config's `name`. `tree_from_runs` builds the same tree from runs.csv-like rows of separately
trained run directories (`bnbench compare`), so the figures never know where their runs lie.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bnbench.config.registries import lower_is_better
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.cells import from_spreadsheet
from bnbench.results.layout import RUNS_CSV, run_path
from bnbench.results.rows import NUMERIC_COLUMNS, Selection, run_row, validation_score
from bnbench.results.tree_files import read_ablation

_SHORT_KEYS = {"learning_rate": "lr", "batch_size": "batch size"}
# Diagnostics columns kept as text: the layer's name, and which units a percentile pools
# ("pooled", or one unit's index).
_TEXT_COLUMNS = ("layer", "units")


@dataclass(frozen=True)
class BestCell:
    """The grid cell a figure shows an arm at, and why that one.

    Attributes:
        arm: The arm.
        cell: Its chosen cell's label ("" without a grid).
        reason: How it was chosen, e.g. "best mean final validation accuracy".
        scored: Whether any completed run of the arm had the validation score; if not, the
            cell is the arm's first and `reason` says so.
        completed: Runs of the cell the choice averaged (completed ones).
        runs: All runs of the cell.
    """

    arm: str
    cell: str
    reason: str
    scored: bool
    completed: int
    runs: int

    @property
    def label(self) -> str:
        """E.g. "bn_before at lr=0.1 (2/3 runs completed)": the note only when it matters."""
        where = f" at {self.cell}" if self.cell else ""
        if not self.scored:
            return f"{self.arm}{where} ({self.reason})"
        if self.completed < self.runs:
            return f"{self.arm}{where} ({self.completed}/{self.runs} runs completed)"
        return f"{self.arm}{where}"


@dataclass(frozen=True)
class ResultsTree:
    """Everything the plots need, read once.

    Attributes:
        root: The directory that was read.
        runs: One row per run: the runs.csv columns (numeric ones as floats, missing as NaN)
            plus `cell`, the label of the run's grid cell ("" without a grid).
        histories: The history.csv rows of every run with `run_id`, `arm`, `cell`, `seed` and
            `status` added; infinities are read as NaN.
        diagnostics: Diagnostics file stem -> its rows of every run, with the same added columns.
        arms: Arm names in ablation order; this order fixes each arm's colour.
        grid_keys: Dotted keys the grid varies, e.g. "training.learning_rate".
        cells: Grid-cell labels in grid order; ("",) without a grid.
        metric: The metric name, e.g. "accuracy", or None for loss-only runs.
        title: What the figures call the tree; None: `name` reads it from ablation.yaml.
    """

    root: Path
    runs: pd.DataFrame
    histories: pd.DataFrame
    diagnostics: dict[str, pd.DataFrame]
    arms: tuple[str, ...]
    grid_keys: tuple[str, ...]
    cells: tuple[str, ...]
    metric: str | None
    title: str | None = None

    @property
    def name(self) -> str:
        """The title, else the ablation's name from ablation.yaml, else the folder's name."""
        if self.title is not None:
            return self.title
        return read_ablation(self.root).name or self.root.name

    @property
    def score(self) -> tuple[str, str, bool]:
        """(runs column, axis label, higher is better) of the final test score."""
        if self.metric is None:
            return "final_test_loss", "final test loss", False
        return "final_test_metric", f"final test {self.metric}", not lower_is_better(self.metric)

    def varies(self, key: str) -> bool:
        """Whether the grid takes more than one value of the dotted `key`."""
        return key in self.grid_keys and self.runs[f"grid.{key}"].nunique() > 1

    def best_cells(self, by: Selection = "final") -> dict[str, BestCell]:
        """Each arm's grid cell with the best mean validation score over its completed runs.

        Chosen on validation, never on test: the figures then show the test score of the
        chosen cell, and a cell chosen on that same score would overstate the arm. Ties go to
        the cell first in grid order. An arm without any validation score (all runs diverged,
        say) is shown at its first cell, and the reason says so.

        Args:
            by: "final" or "best" validation score (`bnbench.results.rows.validation_score`).

        Raises:
            SpecError: `by` is unknown.
        """
        column, words, higher = validation_score(self.metric, by)
        runs = self.runs.assign(score=self.runs[column])  # every numeric column is present
        ok = runs[runs["status"] == "completed"]
        best = {}
        for arm in self.arms:
            means = ok[ok["arm"] == arm].groupby("cell")["score"].mean().dropna()
            means = means.reindex([c for c in self.cells if c in means.index])
            if means.empty:
                cell = next(iter(runs.loc[runs["arm"] == arm, "cell"]), "")
                reason = f"no completed run with a {words.removeprefix('mean ')}: first cell shown"
            else:
                cell = str(means.idxmax() if higher else means.idxmin())
                reason = f"best {words}"
            mine = runs[(runs["arm"] == arm) & (runs["cell"] == cell)]
            done = int((mine["status"] == "completed").sum())
            best[arm] = BestCell(arm, cell, reason, not means.empty, done, len(mine))
        return best


def load_results_tree(results_dir: Path) -> ResultsTree:
    """Read an ablation or single-run results directory.

    Args:
        results_dir: A directory holding runs.csv (an ablation) or summary.json (one run).

    Returns:
        The tree as frames.

    Raises:
        SpecError: (a ValueError) If the directory is missing or is not a results tree, or a
            file in it cannot be parsed; the message names the path.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise SpecError(f"results directory {str(root)!r} does not exist or is not a directory")
    if (root / RUNS_CSV).is_file():
        runs, run_dirs, arm_order = _read_ablation(root)
    elif rundir.has_summary(root):
        runs, run_dirs, arm_order = _read_single_run(root)
    else:
        raise SpecError(
            f"{str(root)!r} is not a results tree: it holds neither runs.csv (an ablation) "
            "nor summary.json (a single run)"
        )
    return tree_from_runs(root, runs, run_dirs, arm_order)


def tree_from_runs(
    root: Path,
    runs: pd.DataFrame,
    run_dirs: dict[str, Path],
    arm_order: list[str],
    title: str | None = None,
) -> ResultsTree:
    """A tree from runs.csv-like rows and the run directory of each run id.

    Args:
        root: The folder the tree stands for (where its figures go).
        runs: One row per run: `run_id`, `arm`, `seed`, `status`, the `RUN_COLUMNS` present and
            any `grid.<dotted key>` columns.
        run_dirs: Run id -> its run directory, read for history.csv and the diagnostics.
        arm_order: Arms in the order that fixes their colours; arms not in it follow.
        title: What the figures call the tree (default: from ablation.yaml in `root`).

    Raises:
        SpecError: a history or diagnostics file cannot be parsed; the message names it.
    """
    runs = runs.copy()
    for column in NUMERIC_COLUMNS:
        runs[column] = pd.to_numeric(runs[column], errors="coerce") if column in runs else np.nan
    runs["status"] = runs["status"].fillna("unknown").astype(str) if "status" in runs else "unknown"
    grid_keys = tuple(c.removeprefix("grid.") for c in runs.columns if c.startswith("grid."))
    runs["cell"] = grid_labels(runs, grid_keys)
    cells = tuple(runs.sort_values([f"grid.{k}" for k in grid_keys])["cell"].unique())
    arms = tuple(dict.fromkeys([*arm_order, *runs["arm"]]))
    metrics = runs["metric"].dropna().astype(str) if "metric" in runs else pd.Series([])
    metrics = metrics[metrics != ""]
    keys = runs[["run_id", "arm", "cell", "seed", "status"]]
    return ResultsTree(
        root=root,
        runs=runs,
        histories=_read_all(run_dirs, lambda run_dir: run_dir / rundir.HISTORY, keys),
        diagnostics={
            name: _read_all(run_dirs, partial(rundir.diagnostics_path, name=name), keys)
            for name in rundir.DIAGNOSTICS
        },
        arms=arms,
        grid_keys=grid_keys,
        cells=cells or ("",),
        metric=str(metrics.iloc[0]) if len(metrics) else None,
        title=title,
    )


def grid_labels(runs: pd.DataFrame, keys: tuple[str, ...] | list[str]) -> pd.Series:
    """Label of each run's values of the grid `keys`, e.g. "lr=0.1, batch size=64"."""
    if not keys:
        return pd.Series("", index=runs.index, dtype=object)
    parts = [
        runs[f"grid.{key}"].map(
            lambda v, k=key: f"{_SHORT_KEYS.get(k.split('.')[-1], k)}={_fmt(v)}"
        )
        for key in keys
    ]
    return pd.concat(parts, axis=1).agg(", ".join, axis=1)


def seed_band(frame: pd.DataFrame, x: str, column: str, band: str = "std") -> pd.DataFrame:
    """Mean across seeds of `column` at each `x`, per arm and cell, with a band around it.

    Args:
        frame: Rows with `arm`, `cell`, `x` and `column`.
        x: The x column, e.g. "step".
        column: The value column; NaN values are ignored.
        band: "std" for mean ± standard deviation, "minmax" for the range over seeds.

    Returns:
        Columns arm, cell, x, mean, low, high, count (number of seeds with a value).
    """
    data = frame[["arm", "cell", x, column]].dropna(subset=[x])
    out = (
        data.groupby(["arm", "cell", x])[column]
        .agg(["mean", "std", "min", "max", "count"])
        .reset_index()
        .rename(columns={x: "x", "min": "low", "max": "high"})
    )
    if band == "std":
        spread = out["std"].fillna(0.0)
        out["low"], out["high"] = out["mean"] - spread, out["mean"] + spread
    result: pd.DataFrame = out.drop(columns="std")
    return result


def _read_ablation(root: Path) -> tuple[pd.DataFrame, dict[str, Path], list[str]]:
    path = root / RUNS_CSV
    try:
        runs = pd.read_csv(path, dtype={"run_id": str, "arm": str, "status": str, "metric": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SpecError(f"cannot read {str(path)!r}: {error}") from error
    text = runs.select_dtypes(include=["object", "string"]).columns
    runs[text] = runs[text].apply(lambda column: column.map(_from_csv))  # as write_csv wrote it
    missing = {"run_id", "arm"} - set(runs.columns)
    if missing or runs.empty:
        raise SpecError(f"{str(path)!r} lists no runs (columns run_id and arm are required)")
    arm_order = list(read_ablation(root).arms)
    run_dirs = {run_id: run_path(root, run_id) for run_id in runs["run_id"]}
    return runs, run_dirs, arm_order


def _read_single_run(root: Path) -> tuple[pd.DataFrame, dict[str, Path], list[str]]:
    rundir.check_summary(root)  # names the file if it cannot be read
    row = run_row(root)
    runs = pd.DataFrame([row])
    return runs, {row["run_id"]: root}, [row["arm"]]


def _read_all(
    run_dirs: dict[str, Path], file: Callable[[Path], Path], keys: pd.DataFrame
) -> pd.DataFrame:
    frames = []
    for run_id, run_dir in run_dirs.items():
        path = file(run_dir)
        if not path.is_file():
            continue  # failed runs have no history; diagnostics are optional
        try:
            frame = pd.read_csv(path, dtype=dict.fromkeys(_TEXT_COLUMNS, str))
        except pd.errors.EmptyDataError:
            continue
        except (pd.errors.ParserError, UnicodeDecodeError) as error:
            raise SpecError(f"cannot read {str(path)!r}: {error}") from error
        for column in frame.columns:
            if column not in _TEXT_COLUMNS:
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
        frames.append(frame.assign(run_id=run_id))
    if not frames:
        empty: pd.DataFrame = pd.DataFrame(columns=[*keys.columns, "step"])
        return empty
    data = pd.concat(frames, ignore_index=True).replace([np.inf, -np.inf], np.nan)
    if "layer" in data:
        data["layer"] = data["layer"].astype(str)
    if "units" in data:  # a file without the column predates it: its percentiles were pooled
        data["units"] = data["units"].fillna("pooled").astype(str)
    merged: pd.DataFrame = data.merge(keys, on="run_id", how="left")
    return merged


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float | int | np.number) else str(value)


def _from_csv(value: object) -> object:
    return from_spreadsheet(value) if isinstance(value, str) else value
