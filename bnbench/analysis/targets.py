"""Targets and budgets that follow the data: a target relative to a plateau, steps to it, and a
training length counted in passes over the training set.

An absolute target such as "97% validation accuracy" means something on one dataset only: on
5,000 MNIST digits no arm reaches it, every run is censored and a "faster training" verdict is
inconclusive by construction. Here the target is a declared fraction of the plateau that an arm
reaches, read from the runs' own histories; it is derived once, from the plateau alone (never
from how fast any arm got there), and the same record is then applied to every arm, so no arm
is measured against a line drawn for it. Steps to the target are read at evaluation points
only, so each is an interval (previous evaluation, hitting evaluation]; the record carries that
resolution so a report can say it.

Pure functions of histories: nothing here trains, reads files or imports Keras.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import pandas as pd

from bnbench.analysis.paired import TimeToTarget
from bnbench.config.registries import lower_is_better

PlateauRule = Literal["best", "last"]
# Where the fraction is measured: on the metric itself, or on its logarithm (a loss that falls
# over orders of magnitude, where 90% of the linear way from 1e5 to 10 is reached at once).
TargetScale = Literal["linear", "log"]
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Curve:
    """One run's evaluations of one recorded quantity, in step order.

    Attributes:
        steps: Evaluation steps, positive and strictly increasing.
        values: The quantity at each step; NaN (a diverged evaluation) never reaches a target.
    """

    steps: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.steps or len(self.steps) != len(self.values):
            raise ValueError(
                f"a curve needs one value per step and at least one step, got "
                f"{len(self.steps)} steps and {len(self.values)} values"
            )
        if self.steps[0] < 1 or any(np.diff(self.steps) <= 0):
            raise ValueError(f"steps must be positive and increasing, got {list(self.steps)}")


def curves(
    histories: pd.DataFrame, column: str, arm: str, cell: str | None = None
) -> dict[int, Curve]:
    """Seed -> the curve of `column` of one arm's runs, from history rows as
    `ResultsTree.histories` holds them (`run_id`, `arm`, `cell`, `seed`, `step`, columns).

    Raises:
        ValueError: `column` is not recorded, or a seed has more than one run (give `cell`).
    """
    if column not in histories:
        raise ValueError(f"{column!r} is not in the histories; recorded: {list(histories)}")
    rows = histories[histories["arm"] == arm]
    if cell is not None:
        rows = rows[rows["cell"] == cell]
    found: dict[int, Curve] = {}
    for seed, run in rows.groupby("seed", sort=True):
        if run["run_id"].nunique() > 1:
            raise ValueError(f"arm {arm!r} has several runs of seed {seed}; name the grid cell")
        run = run.sort_values("step")
        steps = tuple(int(s) for s in run["step"])
        found[int(seed)] = Curve(steps, tuple(float(v) for v in run[column]))
    return found


def plateau(
    runs: Mapping[int, Curve], *, higher_is_better: bool, rule: PlateauRule = "best", last: int = 3
) -> float:
    """The level an arm settles at: the mean over its runs of each run's best value ("best"), or
    of the mean of its last `last` evaluations ("last"); non-finite values are skipped.

    "best" suits a curve that peaks and then overfits (the validation accuracy of a long run);
    "last" one that is still noisy at its end, where a single best point flatters it.

    Raises:
        ValueError: no run has a finite value, or `last` < 1.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1 evaluation, got {last!r}")
    levels = []
    for curve in runs.values():
        values = np.array(curve.values[-last:] if rule == "last" else curve.values, dtype=float)
        values = values[np.isfinite(values)]
        if values.size:
            best = values.max() if higher_is_better else values.min()
            levels.append(float(values.mean() if rule == "last" else best))
    if not levels:
        raise ValueError("no run has a finite value to take a plateau from")
    return float(np.mean(levels))


def best_setting(
    settings: Mapping[Key, Mapping[int, Curve]],
    *,
    higher_is_better: bool,
    rule: PlateauRule = "best",
    last: int = 3,
) -> Key:
    """The setting (e.g. a learning rate of a grid) at which an arm's plateau is best.

    An arm run at several settings, each taken at its best (as a claim that measures every arm
    at its fastest rate does), reaches this plateau and no better one: a target fixed from it is
    one the arm can reach. Settings with no finite value are skipped; on a tie the first one in
    `settings`' order wins.

    Args:
        settings: Setting -> seed -> curve of one arm's runs there.
        higher_is_better: Which way the curves' metric improves.
        rule: "best" or "last" (see `plateau`).
        last: Evaluations the "last" rule averages.

    Raises:
        ValueError: no setting has a run with a finite value, or `last` < 1.
    """
    if last < 1:
        raise ValueError(f"last must be at least 1 evaluation, got {last!r}")
    levels = {}
    for key, runs in settings.items():
        try:
            levels[key] = plateau(runs, higher_is_better=higher_is_better, rule=rule, last=last)
        except ValueError:
            continue  # every run of this setting diverged at once: not a plateau
    if not levels:
        raise ValueError("no setting has a run with a finite value to take a plateau from")
    pick = max if higher_is_better else min
    return pick(levels, key=lambda key: levels[key])


@dataclass(frozen=True)
class RelativeTarget:
    """A target fixed from one arm's plateau, the same for every arm.

    value = baseline + fraction × (plateau − baseline): with baseline 0 a plain fraction of the
    plateau; with the chance accuracy (or, for a loss, the loss at the start) the fraction of
    the way from knowing nothing to the plateau. On the log scale the way is measured in
    log(metric): value = baseline × (plateau / baseline) ** fraction, e.g. for an MSE from Var(y)
    (the loss of predicting the mean) to the plateau, 1 − R² of the target is
    (1 − R² of the plateau) ** fraction.

    Attributes:
        metric: The history column, e.g. "val_accuracy".
        value: The target; reached at or above it (at or below for a loss or error).
        fraction: The declared fraction, in (0, 1].
        plateau: The plateau it is a fraction of.
        baseline: Where the fraction counts from.
        arm: The arm whose plateau it is.
        how: How the plateau was taken, in words.
        runs: Runs the plateau averages.
        resolution: Steps between evaluations (the widest gap in the histories): a step to the
            target is known to within this.
        scale: "linear" or "log": on which scale `fraction` measures the way.
    """

    metric: str
    value: float
    fraction: float
    plateau: float
    baseline: float
    arm: str
    how: str
    runs: int
    resolution: int
    scale: TargetScale = "linear"

    @property
    def higher_is_better(self) -> bool:
        return not lower_is_better(self.metric)

    def reached(self, value: float) -> bool:
        """Whether `value` is at or beyond the target (never for NaN)."""
        return value >= self.value if self.higher_is_better else value <= self.value

    def describe(self) -> str:
        """E.g. "target val_accuracy 0.828 = 0.9 × plateau 0.92 of no_bn (mean over 3 runs of
        the best val_accuracy), checked every 20 steps"; on the log scale "target val_loss 20 =
        1e+04 × (plateau 10 / 1e+04)^0.9 (log scale) of …"."""
        level, base = f"{self.plateau:.3g}", f"{self.baseline:.3g}"
        rule = f"{self.fraction:g} × plateau {level}"
        if self.scale == "log":
            rule = f"{base} × (plateau {level} / {base})^{self.fraction:g} (log scale)"
        elif self.baseline != 0.0:
            rule = f"{base} + {self.fraction:g} × (plateau {level} − {base})"
        return (
            f"target {self.metric} {self.value:.3g} = {rule} of {self.arm} "
            f"({self.how}), checked every {self.resolution} steps"
        )


def relative_target(
    arms: Mapping[str, Mapping[int, Curve]],
    metric: str,
    fraction: float,
    *,
    reference: str | None = None,
    baseline: float = 0.0,
    rule: PlateauRule = "best",
    last: int = 3,
    scale: TargetScale = "linear",
) -> RelativeTarget:
    """The target `fraction` of the way to the plateau of `reference`, or of the slower arm.

    Without `reference` the arm with the worst plateau is used (the lowest accuracy, the
    highest loss): a target fixed from it is one every arm can reach, so the comparison measures
    speed rather than which arm gets there at all.

    Args:
        arms: Arm -> seed -> curve of `metric` (see `curves`).
        metric: The history column the curves hold; its name says which way is better.
        fraction: How far towards the plateau, in (0, 1].
        reference: The arm whose plateau fixes the target; None: the slower arm.
        baseline: Where the fraction counts from (0, chance accuracy, or the starting loss).
        rule: "best" or "last" (see `plateau`).
        last: Evaluations the "last" rule averages.
        scale: "linear", or "log": the fraction of the way in log(metric), for a loss that
            spans orders of magnitude (baseline and plateau must then be positive).

    Raises:
        ValueError: a fraction outside (0, 1], no arms, an unknown reference, an arm without a
            finite value, a plateau no better than the baseline (nothing was learned), or on
            the log scale a baseline or plateau that is not positive.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if not arms:
        raise ValueError("no arms to derive a target from")
    if reference is not None and reference not in arms:
        raise ValueError(f"unknown reference arm {reference!r}; arms: {', '.join(arms)}")
    if scale == "log" and not baseline > 0.0:
        raise ValueError(f"a log-scale target needs a positive baseline, got {baseline!r}")
    higher = not lower_is_better(metric)
    levels = {name: plateau(runs, higher_is_better=higher, rule=rule, last=last)
              for name, runs in arms.items()}  # fmt: skip
    worst = min if higher else max
    arm = reference if reference is not None else worst(levels, key=lambda name: levels[name])
    level = levels[arm]
    if (level <= baseline) if higher else (level >= baseline):
        side = "above" if higher else "below"
        raise ValueError(
            f"the plateau {level:.4g} of {arm} is not {side} the baseline {baseline:.4g}: "
            "nothing was learned, so no target can be derived from it"
        )
    if scale == "log" and not level > 0.0:
        raise ValueError(f"a log-scale target needs a positive plateau, got {level:.4g} of {arm}")
    how = f"best {metric}" if rule == "best" else f"mean of the last {last} evaluations"
    counted = sum(any(map(math.isfinite, c.values)) for c in arms[arm].values())
    if scale == "log":
        value = math.exp(math.log(baseline) + fraction * (math.log(level) - math.log(baseline)))
    else:
        value = baseline + fraction * (level - baseline)
    return RelativeTarget(
        metric=metric,
        value=value,
        fraction=fraction,
        plateau=level,
        baseline=baseline,
        arm=arm,
        how=f"mean over {counted} run{'s' if counted != 1 else ''} of the {how}",
        runs=counted,
        resolution=_resolution(arms),
        scale=scale,
    )


def _resolution(arms: Mapping[str, Mapping[int, Curve]]) -> int:
    """The widest gap between evaluations (from step 0) in any run: evaluation points are
    every `eval_every` steps and the last, so this is `eval_every` (or a shorter run's length)."""
    gaps = [int(np.diff((0, *c.steps)).max()) for runs in arms.values() for c in runs.values()]
    return max(gaps)


@dataclass(frozen=True)
class Hit:
    """When one run reached a target, as its evaluation points can tell.

    Attributes:
        step: The first evaluation step at or beyond the target; None: never, within the run.
        previous: The evaluation before it (0 when the first one hits): the target was reached
            in (previous, step]. For a run that never reached it, its last evaluation step.
        last_step: The run's length (its last step, or its planned budget): a run that never
            reached the target took more than this, a lower bound.
    """

    step: int | None
    previous: int
    last_step: int

    @property
    def censored(self) -> bool:
        return self.step is None

    def time_to_target(self) -> TimeToTarget:
        """The hit as `bnbench.analysis.paired` counts it (the hitting step; censored at the
        run's length), for `paired_speedup`."""
        return TimeToTarget(None if self.step is None else float(self.step), float(self.last_step))

    def describe(self) -> str:
        if self.step is None:
            return f"not reached by step {self.last_step}"
        return f"reached between step {self.previous} and {self.step}"


def steps_to_target(curve: Curve, target: RelativeTarget, last_step: int | None = None) -> Hit:
    """The first evaluation of `curve` at or beyond the target, with the one before it.

    Args:
        curve: One run's curve of `target.metric`.
        target: The target (the same record for every arm).
        last_step: The run's planned length, when it stopped early (a diverged run that had not
            reached the target never will: it is censored at its budget, not where it stopped);
            None: its last evaluation step.

    Raises:
        ValueError: `last_step` is before the curve's last evaluation.
    """
    end = curve.steps[-1] if last_step is None else last_step
    if end < curve.steps[-1]:
        raise ValueError(f"last_step {end} is before the last evaluation, {curve.steps[-1]}")
    previous = 0
    for step, value in zip(curve.steps, curve.values, strict=True):
        if math.isfinite(value) and target.reached(value):
            return Hit(step, previous, end)
        previous = step
    return Hit(None, previous, end)


def hits(
    runs: Mapping[int, Curve], target: RelativeTarget, last_step: int | None = None
) -> dict[int, Hit]:
    """Seed -> `steps_to_target` of each run."""
    return {seed: steps_to_target(curve, target, last_step) for seed, curve in runs.items()}
