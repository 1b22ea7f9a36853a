"""Steps to a relative target, for the claims that time one (faster_training, depth,
input_scaling).

A shipped absolute target ("0.9 validation accuracy") holds on one dataset only; here the target
is a declared fraction of the way from chance to the plateau of the slower arm, read from the
runs' own histories (`bnbench.analysis.targets.relative_target`): fixed once, from the plateau
alone, before any arm is timed, and the same for every arm of the comparison. A claim that runs
each arm at its best setting of a grid (input_scaling) takes each arm's plateau at that setting
(`derive_at_best`). A claim whose runs recorded an absolute target of their own (a user's
`--configs` file that sets `training.target_value`) keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bnbench.analysis.paired import TimeToTarget
from bnbench.analysis.targets import (
    Curve,
    RelativeTarget,
    TargetScale,
    best_setting,
    curves,
    plateau,
    relative_target,
    steps_to_target,
)
from bnbench.claims.evidence import Evidence
from bnbench.config.registries import lower_is_better

# How far from chance towards the slower arm's plateau (its mean best validation accuracy) the
# target lies: high enough that reaching it means having learned the task, low enough that every
# arm that learns it gets there within the budget (Ioffe & Szegedy time a fixed fraction of the
# final accuracy the same way).
FRACTION = 0.9
METRIC = "val_accuracy"


def absolute(evidence: Evidence) -> bool:
    """Whether the runs recorded an absolute target of their own (kept, as they were run)."""
    return bool(evidence.runs["target_value"].notna().any())


def relative_times(
    evidence: Evidence, arms: Sequence[str], cell: Mapping[str, Any] | None = None
) -> tuple[RelativeTarget | None, dict[str, dict[int, TimeToTarget]]]:
    """The target FRACTION of the way from chance to the slower arm's plateau in `cell`, and
    each arm's seed -> steps to it there (`derive`, then `times_to`)."""
    target = derive(evidence, arms, cell)
    return target, {arm: times_to(evidence, arm, target, cell) for arm in arms}


def derive(
    evidence: Evidence, arms: Sequence[str], cell: Mapping[str, Any] | None = None
) -> RelativeTarget | None:
    """The target FRACTION of the way from chance to the plateau of the slower of `arms` in
    `cell`; None when no arm learned anything (or none has a history)."""
    found = {arm: _curves(evidence, arm, cell) for arm in arms}
    chance = evidence.runs["chance_accuracy"].dropna()
    baseline = float(chance.iloc[0]) if len(chance) else 0.0
    try:
        return relative_target({a: c for a, c in found.items() if c}, METRIC, FRACTION,
                               baseline=baseline)  # fmt: skip
    except ValueError:
        return None


def derive_at_best(
    evidence: Evidence,
    arms: Sequence[str],
    key: str,
    *,
    metric: str,
    fraction: float,
    baseline: float,
    scale: TargetScale = "linear",
) -> tuple[RelativeTarget | None, dict[str, Any]]:
    """The target `fraction` of the way from `baseline` to the plateau of the slower of `arms`,
    each arm's plateau taken at its best value of the grid `key`.

    For a claim that measures each arm at its fastest setting of a grid: an arm's plateau at the
    setting it learns best at is the best it reaches, so a target short of the slower arm's is
    one every arm reaches at some setting. It is fixed from plateaus alone, before any arm is
    timed, and the same for every arm. An arm that learned nothing at any setting (its plateau
    no better than `baseline`) does not fix it (its runs are censored against it).

    Returns:
        The target (None when no arm learned anything), and arm -> the setting its plateau was
        taken at, for the arms that learned.
    """
    higher = not lower_is_better(metric)
    # No grid: the one setting there is.
    cells: dict[Any, Mapping[str, Any] | None] = {v: {key: v} for v in evidence.values(key)}
    cells = cells or {None: None}
    found: dict[str, Mapping[int, Curve]] = {}
    chosen: dict[str, Any] = {}
    for arm in arms:
        found_at = {v: _curves(evidence, arm, cell, metric) for v, cell in cells.items()}
        settings = {v: c for v, c in found_at.items() if c}
        if not settings:
            continue
        try:
            best = best_setting(settings, higher_is_better=higher)
        except ValueError:
            continue  # every run diverged at once
        level = plateau(settings[best], higher_is_better=higher)
        if (level > baseline) if higher else (level < baseline):
            found[arm], chosen[arm] = settings[best], best
    try:
        target = relative_target(found, metric, fraction, baseline=baseline, scale=scale)
    except ValueError:
        return None, chosen
    return target, chosen


def times_to(
    evidence: Evidence,
    arm: str,
    target: RelativeTarget | None,
    cell: Mapping[str, Any] | None = None,
) -> dict[int, TimeToTarget]:
    """Seed -> steps of the arm's run in `cell` to `target` (read from its curve of
    `target.metric`), censored at its planned length when never reached (every run, when there
    is no target)."""
    rows = evidence.where(arm, cell)
    found = _curves(evidence, arm, cell, METRIC if target is None else target.metric)
    times = {}
    for seed, length in zip(rows["seed"], rows["total_steps"], strict=True):
        curve = found.get(int(seed))
        if target is None or curve is None:
            times[int(seed)] = TimeToTarget(None, float(length))
        else:
            end = max(int(length), curve.steps[-1])
            times[int(seed)] = steps_to_target(curve, target, end).time_to_target()
    return times


def _curves(
    evidence: Evidence, arm: str, cell: Mapping[str, Any] | None, metric: str = METRIC
) -> dict[int, Curve]:
    histories = evidence.histories
    mine = histories[histories["run_id"].isin(evidence.where(arm, cell)["run_id"])]
    return curves(mine, metric, arm) if metric in mine and len(mine) else {}
