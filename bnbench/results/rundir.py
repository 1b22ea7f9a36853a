"""The run directory: the one contract between training (its writer) and everything that reads it.

A run directory holds:

    config.yaml    the resolved spec, written before training starts
    history.csv    one `HistoryRow` per evaluation point
    summary.json   the `RunSummary`: status, final and best metrics, target, timings, versions
    model.keras    the trained model (optional)
    diagnostics/   one CSV per enabled diagnostic (`bnbench.results.diagnostics`)
    INCOMPLETE     present while the run is unfinished (or was interrupted or killed)
    traceback.txt  when the run raised (status failed)
    ablation.json  in an ablation: the run's arm, grid cell and seed

A run is *finished* when it holds `summary.json` with a finished status and no `INCOMPLETE`
marker. The marker is written before anything else and removed only after the summary is in
place, so a run killed at any moment is recognisably incomplete. Every writer and reader of these
files goes through this module.
"""

from __future__ import annotations

import traceback as tb
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from bnbench.errors import SpecError
from bnbench.results import diagnostics
from bnbench.results.diagnostics import DIAGNOSTICS_DIR
from bnbench.results.files import atomic_write_text, read_mapping, write_csv, write_json, write_yaml
from bnbench.results.layout import PLOTS_DIR

CONFIG = "config.yaml"
HISTORY = "history.csv"
SUMMARY = "summary.json"
MODEL = "model.keras"
INCOMPLETE = "INCOMPLETE"
TRACEBACK = "traceback.txt"
ENTRY = "ablation.json"
# Every name a run directory may hold; a folder with anything else is not (only) a run.
RUN_FILES = frozenset(
    {CONFIG, HISTORY, SUMMARY, MODEL, DIAGNOSTICS_DIR, INCOMPLETE, TRACEBACK, ENTRY, PLOTS_DIR}
)
# Any of these marks a folder as a run directory.
MARKERS = frozenset({CONFIG, SUMMARY, INCOMPLETE})
# The diagnostics CSVs (file stems under diagnostics/), in the order plots show them.
DIAGNOSTICS = tuple(file.name for file in diagnostics.FILES)

Status = Literal["completed", "diverged", "failed"]
FINISHED: tuple[Status, ...] = ("completed", "diverged", "failed")
# A run state is a finished status, or one of these.
MISSING, UNFINISHED = "missing", "incomplete"


def is_done(state: str) -> bool:
    """Whether a run in `state` is done and is never run again (a failed run is re-run on request).

    The one "is this run finished" rule of every command: completed and diverged runs are
    results; a failed run is finished but can be retried; missing and incomplete runs are not.
    """
    return state in ("completed", "diverged")


class _Record(BaseModel):
    # Unknown keys are kept: a summary written by a newer version still reads.
    model_config = ConfigDict(extra="allow")


class Target(_Record):
    """When the run first reached `metric` at `value` (step and seconds; None if it never did)."""

    metric: str | None = None
    value: float | None = None
    step: int | None = None
    seconds: float | None = None


class Params(_Record):
    """Parameter counts of the model."""

    trainable: int | None = None
    non_trainable: int | None = None


class RunSummary(_Record):
    """The content of `summary.json`.

    A failure recorded before training started has only `run_id`, `status` and `error`; every
    other field is then None (or empty). Older summaries read with the same defaults.
    """

    run_id: str
    status: Status
    name: str | None = None
    seed: int | None = None
    backend: str | None = None
    config_hash: str | None = None
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    # After `training.lr_scaling` (the rate the optimizer used); equals learning_rate without it.
    effective_learning_rate: float | None = None
    started_at: str | None = None
    versions: dict[str, str] = {}
    # The CPU that trained it: "processor", its "widest_isa" and the "isa_cap" the backends ran
    # under ("none" when uncapped); runs agree bit for bit only on the same cap and libraries.
    machine: dict[str, str] = {}
    diverged_step: int | None = None
    steps_done: int | None = None
    metric: str | None = None
    metrics: list[str] = []
    # "test_loss", "test_<metric>", "val_loss", "val_<metric>" at the end of training.
    final: dict[str, float] = {}
    # "val_<metric>" (or "val_loss") at its best evaluation point, and that point's "step".
    best: dict[str, float | int | None] = {}
    target: Target = Target()
    params: Params = Params()
    step_time_ms: float | None = None
    # Seconds by phase: imports, data, build, compile_and_setup, steps, evaluation, writing.
    timings: dict[str, float] = {}
    train_seconds: float | None = None
    finished_at: str | None = None
    error: str | None = None
    # Which BN statistics the val_/test_ numbers used: "moving" (inference mode, the only mode
    # before this field existed; also a network without BN) or "recalibrated" (re-estimated
    # before each evaluation). None only when not recorded: a run that failed before training,
    # or a summary older than the field. Whether the network has BN is `bn_layers`, not this.
    bn_statistics: Literal["moving", "recalibrated"] | None = None
    # How many BN layers the model holds (0: no batch norm); None when not recorded.
    bn_layers: int | None = None
    # The divergence rule's inputs and, for a diverged run, which part of it fired.
    initial_loss: float | None = None
    divergence_factor: float | None = None
    diverged_reason: str | None = None
    # Classification: the majority-class rate of the validation split, and whether the run's
    # validation accuracy stayed within half a class share (1 / (2 k)) of it, or ended there.
    chance_accuracy: float | None = None
    stalled: bool | None = None
    # With `evaluation.shift`: the test loss and metrics on the shifted inputs, keyed by
    # `shifted_key` ("test_accuracy@moving", "test_accuracy@n32", ...); empty without it.
    shifted: dict[str, float] = {}
    # Whether the run trained with the other seeds of its group as one vectorized JAX program
    # (`bnbench.train.vectorized`) or on its own, and why ("group of 3 seeds", "a single run",
    # "diagnostics are not vectorized", ...). None in summaries written before these fields.
    vectorized: bool | None = None
    vectorized_reason: str | None = None
    # Split -> [examples evaluated, examples in the split], for a run that evaluated only the
    # first examples of its validation or test split: the runtime probe's shortened runs
    # (`bnbench.ablate.probe`), never a run of a results tree. Empty: every example.
    evaluated: dict[str, list[int]] = {}


def shifted_key(name: str, examples: int | None) -> str:
    """The `RunSummary.shifted` key of a test `name` ("loss", "accuracy") on shifted inputs.

    Args:
        name: The loss or a metric.
        examples: How many shifted examples the BN statistics were re-estimated on; None for
            the training (moving) statistics.
    """
    return f"test_{name}@{'moving' if examples is None else f'n{examples}'}"


def shifted_count(key: str, name: str) -> int | None:
    """N of a `shifted_key(name, N)` key; None for any other key (the moving one included)."""
    head, _, tail = key.rpartition("@n")
    return int(tail) if head == f"test_{name}" and tail.isdigit() else None


@dataclass(frozen=True)
class HistoryRow:
    """One evaluation point of `history.csv`.

    Attributes:
        step: Optimizer steps done.
        epoch: Passes over the training set done (`step * batch_size / num_train`).
        examples_seen: `step * batch_size`.
        wall_seconds: Seconds since training started.
        values: The recorded quantities in column order: `train_loss`, `train_<metric>` (means
            over the steps since the previous point), `val_loss`, `val_<metric>`.
    """

    step: int
    epoch: float
    examples_seen: int
    wall_seconds: float
    values: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The row as one flat mapping, keyed by column."""
        head = {"step": self.step, "epoch": self.epoch, "examples_seen": self.examples_seen}
        return {**head, "wall_seconds": self.wall_seconds, **self.values}


# Extra evaluations of the held-out split, recorded as `val_<view>_<loss or metric>`:
# BN in training mode at the run's batch size, and (under recalibrated BN statistics) the moving
# statistics, so that both numbers are on record.
VIEWS = ("train_mode", "moving")


def history_columns(metric_names: Sequence[str], views: Sequence[str] = ()) -> list[str]:
    """The header of `history.csv` for runs recording `metric_names` and the extra `views`."""
    columns = ["step", "epoch", "examples_seen", "wall_seconds", "train_loss"]
    columns += [f"train_{m}" for m in metric_names] + ["val_loss"]
    columns += [f"val_{m}" for m in metric_names]
    for view in views:
        columns += [f"val_{view}_{name}" for name in ("loss", *metric_names)]
    return columns


# --- writing (training and the runner) -------------------------------------------------------


def begin(run_dir: Path, resolved: dict[str, Any]) -> None:
    """Create the run directory, mark it incomplete, and write the resolved config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / INCOMPLETE, "started\n")
    write_yaml(run_dir / CONFIG, resolved)


def mark_interrupted(run_dir: Path) -> None:
    """Leave the run marked incomplete, saying why."""
    atomic_write_text(run_dir / INCOMPLETE, "interrupted by the user\n")


def write_history(
    run_dir: Path,
    rows: Iterable[HistoryRow],
    metric_names: Sequence[str],
    views: Sequence[str] = (),
) -> None:
    """Write `history.csv` (rewritten whole at each evaluation point, atomically)."""
    columns = history_columns(metric_names, views)
    write_csv(run_dir / HISTORY, [row.record() for row in rows], columns)


def finish(run_dir: Path, summary: RunSummary) -> None:
    """Write the summary, then remove the marker: from here on the run is finished."""
    write_json(run_dir / SUMMARY, summary.model_dump(mode="json"))
    (run_dir / INCOMPLETE).unlink(missing_ok=True)


def record_failure(
    run_dir: Path, error: BaseException, summary: RunSummary | None = None, *, brief: bool = False
) -> None:
    """Finish a run that raised as `failed`, with its traceback (or, if `brief`, one line).

    Args:
        run_dir: The run directory; created if missing.
        error: The exception, being handled.
        summary: What is known about the run; its status and error are set here. Without it
            the summary holds only the run id, the status and the error.
        brief: Write the error's one-line description instead of the current traceback (for a
            failure recorded outside the process that raised).
    """
    message = f"{type(error).__name__}: {error}"
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / TRACEBACK, f"{message}\n" if brief else tb.format_exc())
    base = summary or RunSummary(run_id=run_dir.name, status="failed")
    finish(run_dir, base.model_copy(update={"status": "failed", "error": message}))


def write_entry(run_dir: Path, entry: dict[str, Any]) -> None:
    """Record the run's place in an ablation (arm, grid, seed, cell)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / ENTRY, entry)


# --- reading (runner, reports, plots, CLI) -----------------------------------------------------


def read_summary(run_dir: Path) -> RunSummary | None:
    """The run's summary, or None when the run is incomplete, never started, or unreadable."""
    if (run_dir / INCOMPLETE).exists():
        return None
    try:
        data = read_mapping(run_dir / SUMMARY)
        # A summary without its run id (written by hand, say) belongs to its directory.
        return RunSummary.model_validate({"run_id": run_dir.name, **data}) if data else None
    except (SpecError, ValidationError):
        return None


def has_summary(run_dir: Path) -> bool:
    """Whether `run_dir` holds a summary (finished or not)."""
    return (run_dir / SUMMARY).is_file()


def check_summary(run_dir: Path) -> None:
    """Parse the summary of `run_dir` as a reader would.

    Raises:
        SpecError: it is missing, unreadable or not a JSON object; the message names the file.
    """
    read_mapping(run_dir / SUMMARY, missing_ok=False)


def run_state(run_dir: Path) -> str:
    """'missing', 'incomplete', or the finished status ('completed', 'diverged', 'failed')."""
    if not run_dir.exists():
        return MISSING
    summary = read_summary(run_dir)
    return UNFINISHED if summary is None else summary.status


def read_config(run_dir: Path) -> dict[str, Any]:
    """The resolved config as plain data; {} when absent.

    Raises:
        SpecError: the file cannot be parsed.
    """
    return read_mapping(run_dir / CONFIG)


def read_entry(run_dir: Path) -> dict[str, Any]:
    """The run's `ablation.json` entry; {} for a run outside an ablation.

    Raises:
        SpecError: the file cannot be parsed or is not a mapping.
    """
    return read_mapping(run_dir / ENTRY)


def diagnostics_path(run_dir: Path, name: str) -> Path:
    """Where the diagnostic `name` (one of `DIAGNOSTICS`) of a run is written."""
    return run_dir / DIAGNOSTICS_DIR / f"{name}.csv"
