"""The diagnostics CSVs of a run directory: `diagnostics/<name>.csv`, their names and columns.

Training writes them (`bnbench.train.diagnostics`, one module per diagnostic); figures, exports
and claims read them; tests build them from the columns here. A diagnostic's name is its file's
stem and its figure's name; `switch` is the `diagnostics.*` key of the run spec that enables it
(`bn_statistics` for the moving statistics: run ids hash the resolved config, so that key keeps
its name; `evaluation.bn_statistics` is the unrelated evaluation mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnbench.results.files import write_csv

DIAGNOSTICS_DIR = "diagnostics"


@dataclass(frozen=True)
class DiagnosticFile:
    """One diagnostics CSV.

    Attributes:
        name: The file's stem (`diagnostics/<name>.csv`) and the figure's name.
        switch: The `diagnostics.*` key of the run spec that enables it.
        columns: Its columns; the percentile columns of `activation_percentiles` depend on the
            percentiles asked for (`percentile_columns`), so it lists only the fixed ones.
    """

    name: str
    switch: str
    columns: tuple[str, ...]

    def path(self, run_dir: Path) -> Path:
        """Where the run in `run_dir` keeps this file."""
        return run_dir / DIAGNOSTICS_DIR / f"{self.name}.csv"

    def write(
        self, run_dir: Path, rows: Sequence[Sequence[Any]], columns: Sequence[str] = ()
    ) -> None:
        """Write `rows` (one value per column, in order) atomically; `columns`: the full header
        when it is not the fixed one (activation percentiles)."""
        header = list(columns or self.columns)
        records = [dict(zip(header, row, strict=True)) for row in rows]
        write_csv(self.path(run_dir), records, header)


ACTIVATION_PERCENTILES = DiagnosticFile(
    "activation_percentiles", "activation_percentiles", ("step", "layer", "units")
)
MOVING_STATISTICS = DiagnosticFile("moving_statistics", "bn_statistics", (
    "step", "layer", "moving_mean_mean", "moving_mean_std", "moving_var_mean", "gamma_mean",
    "gamma_std", "beta_mean", "beta_std", "batch_mean_gap", "batch_var_gap"))  # fmt: skip
TRAIN_INFERENCE_GAP = DiagnosticFile("train_inference_gap", "train_inference_gap", (
    "step", "train_mode_loss", "inference_mode_loss", "train_mode_metric",
    "inference_mode_metric", "train_mode_batch_size"))  # fmt: skip
GRADIENT_NORMS = DiagnosticFile("gradient_norms", "gradient_norms", ("step", "layer", "grad_norm"))
VARIANCE_SHIFT = DiagnosticFile("variance_shift", "variance_shift", (
    "step", "layer", "fed_by_dropout", "variance_ratio", "train_mode_variance",
    "inference_mode_variance", "averaged_units"))  # fmt: skip

# Every diagnostics file, in the order figures show them.
FILES = (ACTIVATION_PERCENTILES, MOVING_STATISTICS, TRAIN_INFERENCE_GAP, GRADIENT_NORMS,
         VARIANCE_SHIFT)  # fmt: skip
BY_NAME = {file.name: file for file in FILES}


def percentile_columns(percentiles: Sequence[float]) -> tuple[str, ...]:
    """The columns of `activation_percentiles.csv` for `percentiles`: step, layer, units, p<q>."""
    return (*ACTIVATION_PERCENTILES.columns, *(f"p{p:g}" for p in percentiles))
