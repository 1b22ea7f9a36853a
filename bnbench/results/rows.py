"""One row of `runs.csv` per run directory, read through the run-directory contract.

Both the tables (`bnbench.analysis.tables`) and the figures (`bnbench.results.tree`) read runs
through `run_row`, so the two never disagree about what a run holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from bnbench.config.registries import lower_is_better
from bnbench.errors import SpecError
from bnbench.results import rundir

# Which validation score picks each arm's best grid cell: its value at the end of training
# (default: the same point as the final test score that is then reported, as in DeepOBS) or its
# best value over training (more optimistic: a maximum over evaluation points). Never the test
# score: a cell chosen on test and reported on test overstates the arm.
Selection = Literal["final", "best"]
SELECTIONS: tuple[Selection, ...] = ("final", "best")
# Which batch-normalization statistics evaluation used, when a run does not say: older versions
# had only the moving averages.
DEFAULT_BN_STATISTICS = "moving"

RUN_COLUMNS = (
    "metric",
    "final_test_loss",
    "final_test_metric",
    "final_val_loss",
    "final_val_metric",
    "best_val_metric",
    "best_val_loss",
    "target_metric",
    "target_value",
    "steps_to_target",
    "seconds_to_target",
    "diverged_step",
    "stalled",  # 1: a completed classifier that never left chance or ended at it; 0; blank
    "total_steps",
    "step_time_ms",
    "params_trainable",
    "params_non_trainable",
    "batch_size",
    "learning_rate",
    "bn_statistics",
    # `evaluation.shift` (blank without it): the shift, and the test metric on shifted inputs
    # with the moving statistics and with BN re-estimated on the largest number of examples;
    # summary.json's `shifted` holds every number of examples and the loss too.
    "shift_kind",
    "shift_severity",
    "shift_prior_strength",
    "adapt_examples",
    "shifted_test_metric",
    "adapted_test_metric",
)
_TEXT_COLUMNS = ("metric", "target_metric", "bn_statistics", "shift_kind")
# Every runs.csv column but the text ones, so readers parse exactly these as numbers.
NUMERIC_COLUMNS = tuple(c for c in ("seed", *RUN_COLUMNS) if c not in _TEXT_COLUMNS)


def run_columns(grid_keys: tuple[str, ...]) -> list[str]:
    """The header of `runs.csv` for an ablation whose grid varies `grid_keys`."""
    grid = [f"grid.{key}" for key in grid_keys]
    return ["run_id", "arm", "seed", "status", "backend", *grid, *RUN_COLUMNS]


def run_row(
    path: Path, entry: dict[str, Any] | None = None, grid_keys: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The runs.csv row of one run directory, plus `cell` for the summary.

    Args:
        path: the run directory.
        entry: its `ablation.json` entry (arm, grid, seed, cell); empty for a lone run,
            whose arm is then its config name.
        grid_keys: the ablation's grid keys, each read from the config into `grid.<key>`.

    Raises:
        SpecError: the run's config cannot be parsed.
    """
    entry = entry or {}
    config = rundir.read_config(path)
    status = rundir.run_state(path)
    summary = rundir.read_summary(path) if status != rundir.UNFINISHED else None
    if summary is None:
        summary = rundir.RunSummary(run_id=path.name, status="failed")  # only defaults are read
    training, grid = _mapping(config.get("training")), _mapping(entry.get("grid"))
    final, best, target, params = summary.final, summary.best, summary.target, summary.params
    metric = summary.metric or None
    # Outside an ablation a run is its own arm, named as `bnbench train` names it: by its config.
    arm = entry.get("arm") or config.get("name") or summary.name or path.name
    row: dict[str, Any] = {
        "run_id": path.name,
        "arm": str(arm),
        "seed": _int(entry.get("seed", config.get("seed", summary.seed))),
        "status": status,
        "backend": summary.backend or config.get("backend"),
        "cell": entry.get("cell"),
        "metric": metric,
        "final_test_loss": final.get("test_loss"),
        "final_test_metric": final.get(f"test_{metric}") if metric else None,
        "final_val_loss": final.get("val_loss"),
        "final_val_metric": final.get(f"val_{metric}") if metric else None,
        "best_val_metric": best.get(f"val_{metric}") if metric else None,
        "best_val_loss": None if metric else best.get("val_loss"),
        "target_metric": target.metric,
        "target_value": target.value,
        "steps_to_target": target.step,
        "seconds_to_target": target.seconds,
        "diverged_step": summary.diverged_step,
        "stalled": None if summary.stalled is None else int(summary.stalled),
        "total_steps": summary.total_steps,
        "step_time_ms": summary.step_time_ms,
        "params_trainable": params.trainable,
        "params_non_trainable": params.non_trainable,
        "batch_size": _first(summary.batch_size, training.get("batch_size")),
        "learning_rate": _first(summary.learning_rate, training.get("learning_rate")),
        # Written by newer versions only; blank here means "not recorded" (then: moving).
        "bn_statistics": getattr(summary, "bn_statistics", None),
        **_shift_columns(config, summary, metric),
    }
    for key in grid_keys:
        row[f"grid.{key}"] = grid[key] if key in grid else _dotted(config, key)
    if row["cell"] is None:  # labelled as the runner labels cells (ablation.PlannedRun.cell)
        row["cell"] = ",".join(f"{key}={row[f'grid.{key}']}" for key in grid_keys)
    return row


def validation_score(metric: str | None, by: Selection = "final") -> tuple[str, str, bool]:
    """The validation score that picks each arm's best grid cell.

    Tables (`bnbench.analysis.stats`) and figures (`bnbench.results.tree`) both choose through
    this, so a figure's "best cell" is the one the summary marks.

    Args:
        metric: The runs' metric, e.g. "accuracy"; None scores by the validation loss.
        by: "final" (value at the end of training) or "best" (best value over training).

    Returns:
        (runs.csv column, words for titles such as "mean final validation accuracy",
        whether higher is better).

    Raises:
        SpecError: (a ValueError) `by` is not one of SELECTIONS.
    """
    if by not in SELECTIONS:
        raise SpecError(f"unknown cell selection {by!r}: expected one of {', '.join(SELECTIONS)}")
    quantity = metric or "loss"
    column = f"{by}_val_{'metric' if metric else 'loss'}"
    return column, f"mean {by} validation {quantity}", not lower_is_better(quantity)


def _shift_columns(
    config: dict[str, Any], summary: rundir.RunSummary, metric: str | None
) -> dict[str, Any]:
    """The runs.csv columns of `evaluation.shift`, from the config and `summary.shifted`."""
    shift = _mapping(_dotted(config, "evaluation.shift"))
    counts = [n for n in shift.get("adapt_examples") or [] if isinstance(n, int)]
    largest = max(counts) if counts else None
    scores = summary.shifted
    return {
        "shift_kind": shift.get("kind"),
        "shift_severity": shift.get("severity"),
        "shift_prior_strength": shift.get("prior_strength"),
        "adapt_examples": largest,
        "shifted_test_metric": scores.get(rundir.shifted_key(metric, None)) if metric else None,
        "adapted_test_metric": (
            scores.get(rundir.shifted_key(metric, largest)) if metric and largest else None
        ),
    }


def _first(recorded: Any, configured: Any) -> Any:
    """The summary's value when it recorded one, else the config's."""
    return configured if recorded is None else recorded


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dotted(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None
