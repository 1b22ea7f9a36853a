"""`histories.csv`: every run's history in one tidy table, for pandas and R.

One row per run, evaluation point and quantity:

    run_id, arm, cell, grid.<key>..., seed, status, step, epoch, metric, value

so that `pd.read_csv("histories.csv")` is ready for `groupby`, `pivot` or seaborn's
`relplot(x="step", y="value", hue="arm", col="metric")` without reading the run folders.
Rebuilt by `bnbench report` beside runs.csv. Missing and infinite values (a diverged run after
its divergence) are left out, as the tree reader reads infinities as missing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bnbench.export.source import metric_columns
from bnbench.results.cells import spreadsheet_safe
from bnbench.results.files import atomic_write_text
from bnbench.results.tree import load_results_tree

HISTORIES_CSV = "histories.csv"


def write_histories(results_dir: Path) -> Path:
    """Write `results_dir/histories.csv` from the run histories of an ablation.

    Args:
        results_dir: An ablation directory whose runs.csv is written (`build_report`).

    Returns:
        The file written.

    Raises:
        SpecError: the directory is not a results tree, or a file in it cannot be parsed.
    """
    tree = load_results_tree(Path(results_dir))
    grid = [f"grid.{key}" for key in tree.grid_keys]
    keys = ["run_id", "arm", "cell", *grid, "seed", "status"]
    history = tree.histories
    metrics = metric_columns(history)
    axes = [column for column in ("step", "epoch") if column in history]
    if history.empty or not metrics:
        tidy = pd.DataFrame(columns=[*keys, "step", "epoch", "metric", "value"])
    else:
        runs = tree.runs[["run_id", *grid]]
        wide = history[["run_id", "arm", "cell", "seed", "status", *axes, *metrics]]
        wide = wide.merge(runs, on="run_id", how="left")
        tidy = wide.melt(
            id_vars=[*keys, *axes], value_vars=metrics, var_name="metric", value_name="value"
        ).dropna(subset=["value"])
        # Runs in the order of runs.csv (arm, grid cell, seed), then each quantity over time.
        order = {run_id: i for i, run_id in enumerate(tree.runs["run_id"])}
        tidy = tidy.assign(
            _run=tidy["run_id"].map(order),
            _metric=tidy["metric"].map({m: i for i, m in enumerate(metrics)}),
        ).sort_values(["_run", "_metric", "step"], kind="stable")
        tidy = tidy.drop(columns=["_run", "_metric"])
        tidy["seed"] = tidy["seed"].astype("Int64")
        tidy["step"] = tidy["step"].astype("Int64")
    path = tree.root / HISTORIES_CSV
    text = tidy.select_dtypes(include=["object", "string"]).columns
    tidy[text] = tidy[text].apply(lambda column: column.map(_safe))
    atomic_write_text(path, tidy.to_csv(index=False))
    return path


def _safe(value: object) -> object:
    """Text as `write_csv` writes it (no cell runs as a formula); numbers and blanks as they are."""
    return spreadsheet_safe(value) if isinstance(value, str) else value
