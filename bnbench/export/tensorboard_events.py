"""`bnbench export tensorboard`: TensorBoard event files from a results tree.

One TensorBoard run per bnbench run, in `<logdir>/<arm>/<grid cell>/s<seed>`, holding:

    history/<column>                    every train_*, val_*, val_train_mode_*, val_moving_*
                                        column of history.csv, against the training step
    <diagnostic>/<layer>[/unit_<i>]/<column>
                                        each recorded diagnostics CSV (activation percentiles
                                        per layer and percentile, train_inference_gap, ...)
    final/<key>                         the summary's final values (test and validation), at the
                                        last step: the metrics of the HParams tab

and the HParams plugin's records (`tensorboard_hparams`): the experiment (hparams arm, each grid
key, seed; the final metrics) in the log directory itself, and a session per run with its values
and its status, so TensorBoard's HParams tab compares arms and grid cells.

Events are written with tensorboardX, which needs neither TensorFlow nor Keras; TensorBoard
reads them like its own. The export goes to a temporary folder beside the log directory and
replaces it whole, so exporting again never duplicates events.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tempfile
import time
import uuid
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bnbench.errors import SpecError
from bnbench.export.extras import missing_extra
from bnbench.export.source import (
    LABEL_COLUMNS,
    ExportRun,
    ExportSource,
    read_source,
    value_columns,
)
from bnbench.export.tensorboard_hparams import (
    experiment_summary,
    hparam_types,
    session_end_summary,
    session_start_summary,
)
from bnbench.results import files
from bnbench.results.layout import RUNS_DIR

# Marks a log directory as ours, so that exporting again may replace it (and nothing else).
MARKER = "bnbench_export.json"
LOGDIR = "tensorboard"


@dataclass(frozen=True)
class TensorBoardExport:
    """What an export wrote.

    Attributes:
        logdir: The log directory (`tensorboard --logdir` it).
        runs: TensorBoard runs written, one per bnbench run.
        scalars: Scalar values written over all runs.
        hparams: The HParams tab's hyperparameters, e.g. ["arm", "training.learning_rate",
            "seed"].
        metrics: Its metric tags, e.g. ["final/test_accuracy", "final/test_loss"].
    """

    logdir: Path
    runs: int
    scalars: int
    hparams: list[str]
    metrics: list[str]


@dataclass(frozen=True)
class _Point:
    step: int
    tag: str
    value: float
    wall_time: float


def export_tensorboard(results_dir: Path, logdir: Path | None = None) -> TensorBoardExport:
    """Write the event files of every run of a results tree, replacing an earlier export.

    Args:
        results_dir: An ablation results directory (or a single run directory).
        logdir: Where to write; default `results_dir/tensorboard`. A folder that exists must be
            an earlier export (it holds `MARKER`) or empty.

    Returns:
        What was written.

    Raises:
        SpecError: tensorboardX is not installed; `results_dir` is not a results tree; or
            `logdir` holds other files, is a link, or would hold or sit in the tree's runs.
    """
    try:
        from tensorboardX import SummaryWriter
    except ImportError as error:
        raise missing_extra("tensorboard", error) from error
    source = read_source(Path(results_dir))
    logdir = Path(logdir) if logdir is not None else source.root / LOGDIR
    _check_logdir(logdir, source.root)
    domains, metrics = _hparam_domains(source), _metric_tags(source)
    types = hparam_types(domains)
    logdir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(logdir)
    staging = Path(tempfile.mkdtemp(dir=logdir.parent, prefix=_prefix(logdir), suffix=".tmp"))
    try:
        os.chmod(staging, files.MODE | (files.MODE & 0o444) >> 2)  # mkdtemp's folder is private
        with SummaryWriter(str(staging)) as writer:
            writer.file_writer.add_summary(experiment_summary(
                source.name, f"bnbench ablation {source.name}: {len(source.runs)} runs",
                domains, metrics,
            ))  # fmt: skip
        scalars, folders = 0, _folders(source)
        for run in source.runs:
            with SummaryWriter(str(staging.joinpath(*folders[run.run_id]))) as writer:
                scalars += _write_run(writer, run, types)
        files.write_json(staging / MARKER, {
            "exported_by": "bnbench export tensorboard",
            "results": str(source.root),
            "runs": {"/".join(folders[run.run_id]): run.run_id for run in source.runs},
        })  # fmt: skip
        _swap(staging, logdir)
    except BaseException:
        if staging.exists():
            files.remove_tree(staging, logdir.parent)
        raise
    return TensorBoardExport(logdir, len(source.runs), scalars, list(domains), metrics)


def _write_run(writer: Any, run: ExportRun, types: dict[str, str]) -> int:
    """Write one run's session and scalars; returns the number of scalars."""
    start = run.start_seconds()
    values = {"arm": run.arm, **run.grid, "seed": run.seed}
    writer.file_writer.add_summary(session_start_summary(values, types, start), 0, start)
    points = _points(run)
    last = max([run.last_step(), *(p.step for p in points)])
    end = run.end_seconds() or (points[-1].wall_time if points else start)
    final = run.summary.final if run.summary else {}
    points += [_Point(last, f"final/{k}", v, end) for k, v in final.items() if not math.isnan(v)]
    # Steps never go back within a file: TensorBoard takes a smaller step after a larger one
    # for a restarted job and drops the points above it.
    for point in sorted(points, key=lambda p: p.step):
        writer.add_scalar(point.tag, point.value, point.step, walltime=point.wall_time)
    writer.file_writer.add_summary(session_end_summary(run.status, end), last, end)
    return len(points)


def _points(run: ExportRun) -> list[_Point]:
    """Every history and diagnostics value of `run` as a tagged point; NaN values are left out."""
    points = []
    history = run.history
    if not history.empty:
        wall = pd.Series(run.wall_times(history["step"]), index=history.index)
        for column in run.metric_columns():
            points += _column_points(history, f"history/{column}", column, wall)
    for name, frame in run.diagnostics.items():
        wall = pd.Series(run.wall_times(frame["step"]), index=frame.index)
        labels = [column for column in LABEL_COLUMNS if column in frame]
        groups = frame.groupby(labels, sort=False, dropna=False) if labels else [((), frame)]
        for key, rows in groups:
            prefix = "/".join([name, *_label_parts(labels, key)])
            for column in value_columns(frame):
                points += _column_points(rows, f"{prefix}/{column}", column, wall)
    return points


def _column_points(frame: pd.DataFrame, tag: str, column: str, wall: pd.Series) -> list[_Point]:
    """The non-NaN values of `column` as points; `wall` holds each row's time, by index."""
    values = pd.to_numeric(frame[column], errors="coerce")
    keep = values.notna() & frame["step"].notna()
    steps, numbers = frame["step"][keep].astype(int), values[keep].astype(float)
    times = wall.loc[frame.index[keep]]
    return [
        _Point(int(s), tag, float(v), float(t))
        for s, v, t in zip(steps, numbers, times, strict=True)
    ]


def _label_parts(labels: list[str], key: Any) -> list[str]:
    """Tag parts of a diagnostics row's labels: the layer, then "unit_<i>" unless pooled."""
    values = key if isinstance(key, tuple) else (key,)
    parts = []
    for label, value in zip(labels, values, strict=True):
        text = "" if pd.isna(value) else str(value)
        if label == "units":
            text = "" if text in ("", "pooled") else f"unit_{text}"
        if text:
            parts.append(text)
    return parts


def _hparam_domains(source: ExportSource) -> dict[str, list[Any]]:
    """The HParams tab's columns and their values: arm, each grid key, seed."""
    seeds = sorted({run.seed for run in source.runs if run.seed is not None})
    return {"arm": list(source.tree.arms), **source.grid_values(), "seed": seeds}


def _metric_tags(source: ExportSource) -> list[str]:
    """final/<key> of every final value any run has: test values first, then validation."""
    keys = {key for run in source.runs if run.summary for key in run.summary.final}
    return [f"final/{key}" for key in sorted(keys, key=lambda k: (not k.startswith("test"), k))]


def _folders(source: ExportSource) -> dict[str, tuple[str, ...]]:
    """Each run's folders; the run id is added where two runs would share them."""
    counts = Counter(run.folders for run in source.runs)
    return {
        run.run_id: run.folders if counts[run.folders] == 1 else (*run.folders, run.run_id)
        for run in source.runs
    }


def _check_logdir(logdir: Path, root: Path) -> None:
    """Refuse a log directory whose replacement could lose anything but an earlier export."""
    target, results = logdir.resolve(), root.resolve()
    if target == results or target in results.parents:
        raise SpecError(f"--logdir {logdir}: holds the results tree {root}; choose a folder in it")
    if results / RUNS_DIR == target or results / RUNS_DIR in target.parents:
        raise SpecError(f"--logdir {logdir}: is inside the tree's {RUNS_DIR}/; choose another")
    if logdir.is_symlink():
        raise SpecError(f"--logdir {logdir}: is a symbolic link; bnbench never replaces one")
    if logdir.exists() and not logdir.is_dir():
        raise SpecError(f"--logdir {logdir}: exists and is not a folder")
    if logdir.is_dir() and os.listdir(logdir) and not (logdir / MARKER).is_file():
        raise SpecError(
            f"--logdir {logdir}: holds files that `bnbench export tensorboard` did not write "
            f"(no {MARKER}); choose another --logdir, or empty it"
        )


def _swap(staging: Path, logdir: Path) -> None:
    """Put the finished export `staging` in place of `logdir` (an earlier export, or nothing)."""
    if not logdir.exists():
        os.rename(staging, logdir)
        return
    old = logdir.parent / f"{_prefix(logdir)}{uuid.uuid4().hex[:8]}.tmp"
    os.rename(logdir, old)
    try:
        os.rename(staging, logdir)
    except OSError:
        os.rename(old, logdir)
        raise
    files.remove_tree(old, logdir.parent)


# A staging or swapped-out folder names its writer (`.<logdir>.<host>-<pid>.<8 chars>.tmp`), so
# the next export removes one whose writer was killed; one of another host goes once old.
_HOST = socket.gethostname()
_STALE_S = 3600.0


def _prefix(logdir: Path) -> str:
    return f".{logdir.name}.{_HOST}-{os.getpid()}."


def _remove_stale_staging(logdir: Path) -> None:
    """Delete the hidden folders that killed exports of `logdir` left beside it."""
    named = re.compile(rf"\.{re.escape(logdir.name)}\.(?:(.+)-(\d+)\.)?[a-z0-9_]{{8}}\.tmp")
    for entry in os.scandir(logdir.parent):
        found = named.fullmatch(entry.name)
        if found is None or not entry.is_dir(follow_symlinks=False):
            continue
        host, pid = found.group(1), int(found.group(2) or 0)
        gone = host == _HOST and pid != os.getpid() and not files.pid_alive(pid)
        with suppress(OSError):  # removed meanwhile by another export
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > _STALE_S
            if gone or old:
                files.remove_tree(Path(entry.path), logdir.parent)

