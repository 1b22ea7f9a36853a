"""input_scaling: batch norm smooths optimization on badly scaled inputs (after LeCun et al. 1998).

The runs are a regression on `two_scale` data (one feature spans ~20x the range of the other)
with raw inputs, standardized inputs, and raw inputs with batch norm (on the inputs, and in the
hidden block), each at the same grid of learning rates. A stable step size depends on the
curvature, which is what input scale changes, so no single rate is fair to every arm: as
`bnbench landscape` gives each surface its own step size, the rule takes each arm's fastest rate
of the grid, seed by seed. The condition numbers in the sentences come from the training split
the runs used (`bnbench.demos.landscape`), not from the runs.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bnbench.analysis.paired import TimeToTarget
from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import curves, figure
from bnbench.claims.evidence import Cell, Evidence
from bnbench.claims.measures import finding, fmt, log_speedups, mean_of, reached
from bnbench.claims.verdicts import interval
from bnbench.config.registries import lower_is_better
from bnbench.config.schema import DatasetSpec
from bnbench.demos.landscape import (
    Conditioning,
    conditioning,
    descend,
    draw_surface,
    surfaces,
    training_split,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LEARNING_RATE = "training.learning_rate"
REFERENCE = "raw"
ARMS = ("raw", "standardized", "bn", "bn_hidden")
# The arms the claim is about, and how a finding names them.
BN_ARMS = {"bn": "BN on the inputs", "bn_hidden": "BN in the hidden block"}


@dataclass(frozen=True)
class Fastest:
    """An arm's fewest steps to the target over the grid's rates, for one seed.

    Attributes:
        time: The steps at the fastest rate; censored at the budget when no rate got there.
        rate: The rate that got there first (ties: the smaller rate); None when none did.
    """

    time: TimeToTarget
    rate: float | None


def fastest(evidence: Evidence, arm: str) -> dict[int, Fastest]:
    """Seed -> the arm's fastest rate and its steps to the target.

    A seed counts only when the arm has a finished run at every rate of the grid (the minimum
    over fewer rates would not be the same statistic). A diverged run never reached the target.
    """
    rates = [float(r) for r in evidence.values(LEARNING_RATE)]
    cells: list[Cell | None] = [{LEARNING_RATE: r} for r in rates] or [None]
    options: dict[int, list[tuple[TimeToTarget, float | None]]] = {}
    for cell in cells:
        rate = None if cell is None else float(cell[LEARNING_RATE])
        for seed, time in evidence.times(arm, cell).items():
            options.setdefault(seed, []).append((time, rate))
    out = {}
    for seed, found in options.items():
        if len(found) != len(cells):
            continue
        hits = [(t.steps, math.inf if r is None else r, r) for t, r in found if t.steps is not None]
        if hits:
            steps, _, rate = min(hits)
            last = next(t.last_step for t, r in found if r == rate and t.steps == steps)
            out[seed] = Fastest(TimeToTarget(steps, last), rate)
        else:
            budgets = [t.last_step for t, _ in found if t.last_step is not None]
            out[seed] = Fastest(TimeToTarget(None, max(budgets) if budgets else None), None)
    return out


def assess(evidence: Evidence) -> Assessment:
    """Paired ratio raw / BN of the steps to the target, each arm at its fastest rate."""
    times = {arm: fastest(evidence, arm) for arm in ARMS if arm in evidence.tree.arms}
    reference = {seed: f.time for seed, f in times.get(REFERENCE, {}).items()}
    findings = []
    for arm, words in BN_ARMS.items():
        if arm not in times:
            continue
        values = log_speedups({seed: f.time for seed, f in times[arm].items()}, reference)
        statistic = (f"steps to the target, raw inputs / {words} (each at its fastest rate), "
                     "geometric mean")  # fmt: skip
        findings.append(finding(words, statistic, values, 1.0, "above", digits=2, scale="exp"))
    sentences = [_target(evidence), _conditioning_sentence(evidence)]
    sentences += [_arm_sentence(evidence, arm, times[arm]) for arm in times]
    if "standardized" in times:
        standardized = {seed: f.time for seed, f in times["standardized"].items()}
        ratio = interval(log_speedups(standardized, reference)).mapped("exp")
        sentences.append(
            f"Standardizing the inputs instead: raw / standardized steps = "
            f"{fmt(ratio.estimate, 2)} [{fmt(ratio.low, 2)}, {fmt(ratio.high, 2)}] (geometric "
            f"mean, 95% CI over {ratio.n} seeds{', with bounds' if ratio.bounds else ''})."
        )
    return Assessment(findings, sentences)


def _target(evidence: Evidence) -> str:
    rows = evidence.runs.dropna(subset=["target_value"])
    rates = ", ".join(f"{float(r):g}" for r in evidence.values(LEARNING_RATE)) or "one rate"
    if rows.empty:
        return f"No target recorded; learning rates {rates}."
    metric, value = rows["target_metric"].iloc[0], float(rows["target_value"].iloc[0])
    steps = int(evidence.runs["total_steps"].max())
    direction = "≤" if lower_is_better(str(metric)) else "≥"
    return (f"Target: {metric} {direction} {value:g} within {steps:,} steps; every arm ran at the "
            f"learning rates {rates}, each measured at its fastest one per seed.")  # fmt: skip


def _conditioning_sentence(evidence: Evidence) -> str:
    found = training_conditioning(evidence)
    if found is None:
        return "Condition numbers: n/a (the runs' configs name no dataset)."
    rows = evidence.runs.dropna(subset=["target_value"])
    r_squared = ""
    # The runs' loss is the regression default, the MSE: a loss target is an R².
    if not rows.empty and str(rows["target_metric"].iloc[0]).endswith("loss"):
        variance = found.target_variance
        share = float(rows["target_value"].iloc[0]) / variance
        r_squared = f"; the target is an R² of {1 - share:.4f} (Var(y) = {variance:,.0f})"
    return (f"On the {found.examples:,} training examples, the MSE of a linear model has "
            f"condition number {found.raw:,.1f} on raw features and {found.standardized:.3f} "
            f"on standardized ones (as in bnbench landscape){r_squared}.")  # fmt: skip


def training_conditioning(evidence: Evidence) -> Conditioning | None:
    """The condition numbers of the data the runs trained on (None without a dataset config)."""
    data = _training_data(evidence)
    return None if data is None else conditioning(*data)


def _training_data(evidence: Evidence) -> tuple[np.ndarray, np.ndarray] | None:
    """The raw training split named by the first run's config; None when it names none.

    Every arm trains on the same examples (they differ only in `normalize`, which
    `training_split` sets to none), so the first run's dataset section is theirs.
    """
    if evidence.runs.empty:
        return None
    first = str(evidence.runs["run_id"].iloc[0])
    dataset = evidence.configs[first].get("dataset")
    return None if dataset is None else training_split(DatasetSpec.model_validate(dataset))


def _arm_sentence(evidence: Evidence, arm: str, found: dict[int, Fastest]) -> str:
    times = {seed: f.time for seed, f in found.items()}
    exact = [t.steps for t in times.values() if t.steps is not None]
    after = f", after {np.mean(exact):,.0f} steps on average" if exact else ""
    rates = Counter(f"{f.rate:g}" for f in found.values() if f.rate is not None)
    fastest_at = ", ".join(f"{rate} ({count} seeds)" for rate, count in sorted(rates.items()))
    where = f" at its fastest rate: {fastest_at}" if fastest_at else ""
    rows = evidence.where(arm)
    bad = rows[rows["status"] == "diverged"]
    diverged = sorted({float(r) for r in bad[f"grid.{LEARNING_RATE}"]}) if len(bad) else []
    shown = ", ".join(f"{r:g}" for r in diverged) or "none"
    best_val = mean_of(_lowest(evidence, arm, "final_val_loss"))
    best_train = mean_of(_lowest(evidence, arm, "train_loss"))
    return (f"{arm}: {reached(times)}{after}{where}; {len(bad)} of {len(rows)} runs diverged "
            f"(rates: {shown}); lowest final MSE over the rates {fmt(best_val, 2)} on validation, "
            f"{fmt(best_train, 2)} in training (mean over seeds).")  # fmt: skip


def _lowest(evidence: Evidence, arm: str, column: str) -> dict[int, float]:
    """Seed -> the lowest final value of `column` over the arm's completed runs: a runs.csv
    column, or (train_loss) the last value in the run's history."""
    rows = evidence.where(arm)
    rows = rows[rows["status"] == "completed"]
    if column not in rows:
        history = evidence.histories
        if column not in history:
            return {}
        last = history.sort_values("step").groupby("run_id")[column].last()
        rows = rows.assign(**{column: rows["run_id"].map(last)})
    lowest = rows.groupby("seed")[column].min()
    return {int(seed): float(value) for seed, value in lowest.items()}


def draw(evidence: Evidence) -> Figure:
    """Loss surfaces of the raw and standardized data beside each arm's validation loss."""
    data = _training_data(evidence)
    fig, axes = figure(3 if data is not None else 1, "badly scaled inputs: two_scale regression")
    if data is not None:
        _surfaces(axes[:2], *data)
    ax = axes[-1]
    for arm in (a for a in ARMS if a in evidence.tree.arms):
        rate = _shown_rate(evidence, arm)
        cell = None if rate is None else {LEARNING_RATE: rate}
        suffix = "" if rate is None else f" (lr {rate:g})"
        curves(ax, evidence, "val_loss", [arm], cell, label_suffix=suffix)
    target = evidence.runs["target_value"].dropna()
    if len(target):
        ax.axhline(float(target.iloc[0]), color="0.4", ls=":", lw=1, label="target")
    ax.set(yscale="log", ylabel="validation MSE (seed mean, log scale)")
    ax.set_title("each arm at its most often fastest rate", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return fig


def _shown_rate(evidence: Evidence, arm: str) -> float | None:
    """The rate most seeds found fastest (the smaller on a tie); without any, the rate of the
    lowest mean final validation loss."""
    rates = [f.rate for f in fastest(evidence, arm).values() if f.rate is not None]
    if rates:
        counts = Counter(rates)
        return min(counts, key=lambda r: (-counts[r], r))
    grid = [float(r) for r in evidence.values(LEARNING_RATE)]
    losses = {r: mean_of(evidence.by_seed("final_val_loss", arm, {LEARNING_RATE: r}, True))
              for r in grid}  # fmt: skip
    finite = {r: v for r, v in losses.items() if math.isfinite(v)}
    return min(finite, key=lambda r: finite[r]) if finite else (grid[0] if grid else None)


def _surfaces(axes: list[Axes], x: np.ndarray, y: np.ndarray) -> None:
    steps = 100  # `bnbench landscape`'s default: enough for standardized, not for raw
    for ax, (name, surface) in zip(axes, surfaces(x, y).items(), strict=True):
        result, weights = descend(surface, steps, 0.8)
        draw_surface(ax, name, surface, weights, result, steps)


CLAIM = Claim(
    id="input_scaling",
    statement="Batch norm smooths optimization on badly scaled inputs.",
    source="common tutorial claim, after LeCun et al. 1998",
    measures=(
        "paired ratio of steps to R² ≥ 0.999 on two_scale regression, raw inputs / BN (on the "
        "inputs; in the hidden block), each arm at its fastest rate of the same grid"
    ),
    runtime="full 40 s, quick 20 s",
    effect=0.25,  # 1.25x fewer steps
    quick=Reduction(grid={LEARNING_RATE: [1e-5, 1e-4]}, arms=["raw", "bn"]),
    arms=ARMS,
    fixes_data="its question is about two badly scaled inputs (the synthetic two_scale set)",
    assess=assess,
    draw=draw,
)
