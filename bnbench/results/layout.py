"""The layout of an ablation's results tree, around its run directories (`rundir`).

ablation.yaml   the resolved ablation (arms, grid, seeds, base spec)
manifest.json   versions, machine, start and end times
runs/<run id>/  one run directory per planned run
runs.csv        one row per run (`bnbench.results.rows`)
summary.*       the tables (`bnbench.analysis.tables`)
plots/          the figures (`bnbench.analysis.plots`)
"""

from __future__ import annotations

from pathlib import Path

ABLATION = "ablation.yaml"
MANIFEST = "manifest.json"
RUNS_DIR = "runs"
RUNS_CSV = "runs.csv"
PLOTS_DIR = "plots"
# The ablation's summary tables (one row per arm and grid cell), not a run's summary.json.
TABLES = {"csv": "summary.csv", "json": "summary.json", "md": "summary.md", "tex": "summary.tex"}


def run_path(results_dir: Path, run_id: str) -> Path:
    """The run directory of `run_id` in an ablation's results tree."""
    return results_dir / RUNS_DIR / run_id
