"""One row of `runs.csv` per run directory, read through the run-directory contract.

Both the tables (`bnbench.analysis.tables`) and the figures (`bnbench.results.tree`) read runs
through `run_row`, so the two never disagree about what a run holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
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



@dataclass(frozen=True)
class RunRow:
    """One run as `runs.csv` has it: what a table or figure needs of a run directory.

    Attributes:
        run_id, arm, seed, status, backend: Who the run is and how it ended (`status` is a run
            state: a finished status, 'incomplete' or 'missing').
        cell: The grid cell's label ("training.learning_rate=0.1"), as the runner labels it.
        metric ... learning_rate: From `summary.json` (`rundir.RunSummary`), falling back on
            the config where the summary does not say (batch size, learning rate).
        bn_statistics: The evaluation mode recorded (`RunSummary.bn_statistics`); None: not
            recorded (`DEFAULT_BN_STATISTICS` then).
        shift_kind ... adapted_test_metric: `evaluation.shift` (None without it): the shift,
            and the test metric on shifted inputs with the moving statistics and with BN
            re-estimated on the largest number of examples; summary.json's `shifted` holds
            every number of examples and the loss too.
        grid: Grid key -> the run's value, written as `grid.<key>` columns.
    """

    run_id: str
    arm: str
    seed: int | None
    status: str
    backend: str | None
    cell: str
    metric: str | None = None
    final_test_loss: float | None = None
    final_test_metric: float | None = None
    final_val_loss: float | None = None
    final_val_metric: float | None = None
    best_val_metric: float | int | None = None
    best_val_loss: float | int | None = None
    target_metric: str | None = None
    target_value: float | None = None
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    diverged_step: int | None = None
    # 1: a completed classifier that never left chance or ended at it; 0; None: not known.
    stalled: int | None = None
    total_steps: int | None = None
    step_time_ms: float | None = None
    params_trainable: int | None = None
    params_non_trainable: int | None = None
    batch_size: Any = None
    learning_rate: Any = None
    bn_statistics: str | None = None
    shift_kind: Any = None
    shift_severity: Any = None
    shift_prior_strength: Any = None
    adapt_examples: int | None = None
    shifted_test_metric: float | None = None
    adapted_test_metric: float | None = None
    grid: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The row as one flat mapping: the `run_columns` keys plus `cell`, in column order."""
        flat = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "grid"}
        return flat | {f"grid.{key}": value for key, value in self.grid.items()}


# The columns of `runs.csv` after the run's identity (run_id, arm, seed, status, backend), in
# `RunRow`'s order; `cell` is for the summary only.
RUN_COLUMNS = tuple(f.name for f in fields(RunRow))[6:-1]
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
    """The runs.csv row of one run directory, plus `cell` for the summary, as one flat mapping
    (`read_run_row(...).record()`)."""
    return read_run_row(path, entry, grid_keys).record()


def read_run_row(
    path: Path, entry: dict[str, Any] | None = None, grid_keys: tuple[str, ...] = ()
) -> RunRow:
    """The runs.csv row of one run directory.

    Args:
        path: the run directory.
        entry: its `ablation.json` entry (arm, grid, seed, cell); empty for a lone run,
            whose arm is then its config name.
        grid_keys: the ablation's grid keys, each read from the config into `grid.<key>`.

    Raises:
        SpecError: the run's config cannot be parsed.
    """
    return row_from(path, entry, grid_keys, rundir.read_config(path), rundir.read_summary(path))


def row_from(
    path: Path,
    entry: dict[str, Any] | None,
    grid_keys: tuple[str, ...],
    config: dict[str, Any],
    read: rundir.RunSummary | None,
) -> RunRow:
    """`run_row` from the run's files already read (each file is read once): its `config` and
    its summary as `rundir.read_summary` returns it (`read`)."""
    entry = entry or {}
    # As `rundir.run_state` says, without reading the summary again.
    status: str = read.status if read is not None else rundir.UNFINISHED
    if read is None and not path.exists():
        status = rundir.MISSING
    summary = read or rundir.RunSummary(run_id=path.name, status="failed")  # its defaults only
    training, grid = _mapping(config.get("training")), _mapping(entry.get("grid"))
    final, best, target, params = summary.final, summary.best, summary.target, summary.params
    metric = summary.metric or None
    # Outside an ablation a run is its own arm, named as `bnbench train` names it: by its config.
    arm = entry.get("arm") or config.get("name") or summary.name or path.name
    grid_values = {key: grid[key] if key in grid else _dotted(config, key) for key in grid_keys}
    cell = entry.get("cell")
    if cell is None:  # labelled as the runner labels cells (ablation.PlannedRun.cell)
        cell = ",".join(f"{key}={value}" for key, value in grid_values.items())
    return RunRow(
        run_id=path.name,
        arm=str(arm),
        seed=_int(entry.get("seed", config.get("seed", summary.seed))),
        status=status,
        backend=summary.backend or config.get("backend"),
        cell=cell,
        metric=metric,
        final_test_loss=final.get("test_loss"),
        final_test_metric=final.get(f"test_{metric}") if metric else None,
        final_val_loss=final.get("val_loss"),
        final_val_metric=final.get(f"val_{metric}") if metric else None,
        best_val_metric=best.get(f"val_{metric}") if metric else None,
        best_val_loss=None if metric else best.get("val_loss"),
        target_metric=target.metric,
        target_value=target.value,
        steps_to_target=target.step,
        seconds_to_target=target.seconds,
        diverged_step=summary.diverged_step,
        stalled=None if summary.stalled is None else int(summary.stalled),
        total_steps=summary.total_steps,
        step_time_ms=summary.step_time_ms,
        params_trainable=params.trainable,
        params_non_trainable=params.non_trainable,
        batch_size=_first(summary.batch_size, training.get("batch_size")),
        learning_rate=_first(summary.learning_rate, training.get("learning_rate")),
        bn_statistics=summary.bn_statistics,
        **_shift_columns(config, summary, metric),
        grid=grid_values,
    )


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
