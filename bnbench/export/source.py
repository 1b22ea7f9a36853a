"""The runs of a results tree as exporters see them: names, grid values, histories, fingerprints.

Each exporter writes one entry per run (a TensorBoard run, an MLflow run, rows of
histories.csv); this module reads the tree once (`bnbench.results.tree`) and gives every run
the same arm / grid cell / seed identity and the same choice of which history columns are
metrics, so that the exports agree with each other and with the tables.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.layout import RUNS_CSV, RUNS_DIR, run_path
from bnbench.results.tree import ResultsTree, load_results_tree

# history.csv columns that place a point rather than measure the model: the x axes.
AXIS_COLUMNS = ("step", "epoch", "examples_seen", "wall_seconds")
# Columns the tree reader adds to every history and diagnostics row.
KEY_COLUMNS = ("run_id", "arm", "cell", "seed", "status")
# Diagnostics columns that name what a value belongs to rather than hold a value.
LABEL_COLUMNS = ("layer", "units")
# The run files an export copies or reads values from: a change in any of them is a new export.
_FINGERPRINTED = (rundir.CONFIG, rundir.SUMMARY, rundir.HISTORY, rundir.ENTRY, rundir.TRACEBACK)
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


@dataclass(frozen=True)
class ExportRun:
    """One run of the tree, with everything an exporter writes about it.

    Attributes:
        run_id: The run's id (its folder name).
        arm: Its arm.
        cell: Its grid cell's label, e.g. "lr=0.1" ("" without a grid).
        grid: Dotted grid key -> the run's value.
        seed: Its seed (None when unknown).
        status: completed, diverged, failed, incomplete (or missing).
        run_dir: Its run directory.
        history: Its history.csv rows (empty for a run that never evaluated).
        diagnostics: Diagnostic name -> its rows (only the diagnostics it recorded).
        summary: Its summary.json, or None while it is unfinished or unreadable.
        config: Its config.yaml ({} when absent).
    """

    run_id: str
    arm: str
    cell: str
    grid: dict[str, Any]
    seed: int | None
    status: str
    run_dir: Path
    history: pd.DataFrame
    diagnostics: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: rundir.RunSummary | None = None
    # Its config.yaml, read (through the guarded parser) before an exporter writes anything.
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def folders(self) -> tuple[str, ...]:
        """Its place in a tree of exports: arm / grid cell / seed, each safe as a folder name."""
        seed = f"s{self.seed}" if self.seed is not None else self.run_id
        cell = (safe_name(self.cell),) if self.cell else ()
        return (safe_name(self.arm), *cell, seed)

    @property
    def title(self) -> str:
        """E.g. "bn_before lr=0.1 s0": how an export names the run to people."""
        seed = f"s{self.seed}" if self.seed is not None else self.run_id
        return " ".join(part for part in (self.arm, self.cell, seed) if part)

    def metric_columns(self) -> list[str]:
        """The history columns that measure the model (train_*, val_*, val_<view>_*)."""
        return metric_columns(self.history)

    def start_seconds(self) -> float:
        """When the run started, in seconds since the epoch.

        The summary's `started_at`; for a run without one, the time its config was written
        (`rundir.begin` writes it first).
        """
        started = self.summary.started_at if self.summary else None
        if started:
            try:
                return datetime.fromisoformat(started).timestamp()
            except ValueError:
                pass  # a hand-edited summary: fall back to the file's time
        config = self.run_dir / rundir.CONFIG
        return config.stat().st_mtime if config.exists() else 0.0

    def end_seconds(self) -> float | None:
        """When the run finished (the summary's `finished_at`), or None."""
        finished = self.summary.finished_at if self.summary else None
        try:
            return datetime.fromisoformat(finished).timestamp() if finished else None
        except ValueError:
            return None

    def wall_times(self, steps: pd.Series) -> np.ndarray:
        """Seconds since the epoch at each of `steps`, from the history's `wall_seconds`.

        Steps between evaluation points are interpolated; step 0 is the start.
        """
        start = self.start_seconds()
        if self.history.empty or "wall_seconds" not in self.history:
            return np.full(len(steps), start)
        known = self.history[["step", "wall_seconds"]].dropna().sort_values("step")
        xs = np.concatenate([[0.0], known["step"].to_numpy(float)])
        ys = np.concatenate([[0.0], known["wall_seconds"].to_numpy(float)])
        offsets: np.ndarray = np.interp(steps.to_numpy(float), xs, ys)
        return start + offsets

    def last_step(self) -> int:
        """The last step the run evaluated at (0 for a run that never did)."""
        steps = self.history["step"].dropna() if "step" in self.history else pd.Series([])
        if len(steps):
            return int(steps.max())
        done = self.summary.steps_done if self.summary else None
        return done or 0

    def fingerprint(self) -> str:
        """A digest of the run files an export reads: equal digests, equal exports."""
        digest = hashlib.sha256()
        for name in _FINGERPRINTED:
            path = self.run_dir / name
            digest.update(name.encode() + b"\0")
            digest.update(path.read_bytes() if path.is_file() else b"-")
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ExportSource:
    """A results tree read for export.

    Attributes:
        tree: The tree as frames (`load_results_tree`).
        runs: Its runs, in the tree's order (arm, grid cell, seed).
    """

    tree: ResultsTree
    runs: list[ExportRun]

    @property
    def root(self) -> Path:
        return self.tree.root

    @property
    def name(self) -> str:
        """The ablation's name (or the run folder's)."""
        return self.tree.name

    def grid_values(self) -> dict[str, list[Any]]:
        """Each grid key's values over the runs, in sorted order."""
        values: dict[str, list[Any]] = {}
        for key in self.tree.grid_keys:
            found = {run.grid[key] for run in self.runs if run.grid.get(key) is not None}
            values[key] = sorted(found, key=lambda v: (isinstance(v, str), v))
        return values


def read_source(results_dir: Path) -> ExportSource:
    """Read an ablation (or single-run) results directory for export.

    Raises:
        SpecError: the directory is not a results tree or a file in it cannot be parsed; an
            ablation whose runs.csv has not been written yet says to run `bnbench report`.
    """
    root = Path(results_dir)
    if (root / RUNS_DIR).is_dir() and not (root / RUNS_CSV).is_file():
        raise SpecError(
            f"{root}: has runs/ but no {RUNS_CSV} yet; run `bnbench report {root}` first"
        )
    tree = load_results_tree(root)
    ablation = (root / RUNS_CSV).is_file()
    histories = _by_run(tree.histories)
    diagnostics = {name: _by_run(frame) for name, frame in tree.diagnostics.items()}
    runs = []
    for row in tree.runs.to_dict("records"):
        run_id = str(row["run_id"])
        run_dir = run_path(root, run_id) if ablation else root
        state = rundir.run_state(run_dir)
        runs.append(
            ExportRun(
                run_id=run_id,
                arm=str(row["arm"]),
                cell=str(row["cell"]),
                grid={key: plain(row[f"grid.{key}"]) for key in tree.grid_keys},
                seed=None if _missing(row["seed"]) else int(row["seed"]),
                status=state,
                run_dir=run_dir,
                history=histories.get(run_id, pd.DataFrame(columns=["step"])),
                diagnostics={
                    name: frames[run_id] for name, frames in diagnostics.items() if run_id in frames
                },
                summary=rundir.read_summary(run_dir) if state in rundir.FINISHED else None,
                config=rundir.read_config(run_dir),
            )
        )
    return ExportSource(tree, runs)


def metric_columns(history: pd.DataFrame) -> list[str]:
    """The columns of history rows that measure the model, in file order."""
    skip = {*AXIS_COLUMNS, *KEY_COLUMNS}
    return [c for c in history.columns if c not in skip and c.startswith(("train_", "val_"))]


def value_columns(frame: pd.DataFrame) -> list[str]:
    """The value columns of a diagnostics frame: all but step, labels and the run keys."""
    skip = {"step", *LABEL_COLUMNS, *KEY_COLUMNS}
    return [c for c in frame.columns if c not in skip]


def safe_name(text: str) -> str:
    """`text` as one folder name: "lr=0.1, batch size=64" -> "lr=0.1,batch_size=64"."""
    name = _UNSAFE.sub("_", text.replace(", ", ",")).strip("._")
    return name or "_"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: lists of mappings by index, other lists as values.

    E.g. {"model": {"blocks": [{"units": 64}]}} -> {"model.blocks.0.units": 64}.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for index, item in enumerate(value):
                flat.update(flatten(item, f"{dotted}.{index}."))
        else:
            flat[dotted] = value
    return flat


def plain(value: Any) -> Any:
    """A pandas cell as a plain Python value: NaN -> None, numpy scalars -> int/float/str."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if _missing(value) else value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _by_run(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    if frame.empty or "run_id" not in frame:
        return {}
    return {str(run_id): rows for run_id, rows in frame.groupby("run_id", sort=False)}
