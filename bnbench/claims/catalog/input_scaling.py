"""input_scaling: batch norm smooths optimization on badly scaled inputs (after LeCun et al. 1998).

The runs are a regression on `two_scale` data (one feature spans ~20x the range of the other)
with raw inputs, standardized inputs, and raw inputs with batch norm (on the inputs, and in the
hidden block), each at the same grid of learning rates. A stable step size depends on the
curvature, which is what input scale changes, so no single rate is fair to every arm: as
`bnbench landscape` gives each surface its own step size, the rule takes each arm's fastest rate
of the grid, seed by seed. The condition numbers in the sentences come from the training split
the runs used (`bnbench.demos.landscape`), not from the runs.

The target is relative, derived from the runs' histories before any arm is timed and the same
for every arm: FRACTION of the way in log(validation MSE) from Var(y) of the training split (the
MSE of predicting the mean, R² = 0) to the plateau of the slower arm, each arm's plateau (the
mean over seeds of its best validation MSE) taken at the rate of the grid where it is lowest
(`bnbench.claims.relative.derive_at_best`). Each arm is timed at every rate and measured at
its fastest, so a target short of every learning arm's best plateau is one each reaches at some
rate; an arm that learned nothing at any rate does not fix it. A log scale, because the MSE falls
over orders of magnitude (from ~1e5 to below 1): a linear 90% of the way from Var(y) ≈ 29,000
would be an R² of 0.9, which raw inputs pass at their first evaluation. On this scale 1 − R² of
the target is (1 − R² of the plateau) ** FRACTION. The plateau is each run's best value, as the
other timing claims take it; BN's recalibrated MSE is noisy, so its best points (1 to 13 in the
quick pass) sit well below its typical level (~90 over the last evaluations), and a plateau from
those last evaluations would put the target near 160, which raw inputs pass at step 50.

A hit is known only within (previous evaluation, hit] (`measures.hits`): the speedup's interval
spans both ends (`measures.speedup_finding`), and the resolution is stated in a sentence.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bnbench.analysis.paired import TimeToTarget
from bnbench.analysis.targets import Hit, RelativeTarget
from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import curves, figure
from bnbench.claims.evidence import Cell, Evidence
from bnbench.claims.measures import (
    fmt,
    hits,
    mean_of,
    reached,
    resolution_sentence,
    speedup_finding,
)
from bnbench.claims.relative import absolute, derive_at_best, times_to
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
# The target: FRACTION of the way in ln(validation MSE) from Var(y) to the slower arm's plateau
# at its best rate. 0.9 as faster_training's accuracy target: near enough the plateau that
# reaching it means having fitted the data (an R² near the plateau's), short enough of it that
# every arm that learns gets there (the quick pass: plateaus 0.54 raw, 6.7 bn; target 15.5).
FRACTION = 0.9
METRIC = "val_loss"


@dataclass(frozen=True)
class Fastest:
    """An arm's fewest steps to the target over the grid's rates, for one seed.

    Attributes:
        hit: When the run at the fastest rate reached the target, interval-censored to its
            evaluation points; censored at the budget when no rate got there.
        rate: The rate that got there first (ties: the smaller rate); None when none did.
    """

    hit: Hit
    rate: float | None

    @property
    def time(self) -> TimeToTarget:
        """The hitting step (censored at the budget), as `bnbench.analysis.paired` counts it."""
        return self.hit.time_to_target()


@dataclass(frozen=True)
class Derived:
    """The target the runs are timed against, and how it was fixed.

    Attributes:
        target: The relative target; None when the runs recorded an absolute one (kept) or
            when none could be derived.
        words: The sentence that states it.
        conditioning: The training data's condition numbers and Var(y) (None without a dataset).
    """

    target: RelativeTarget | None
    words: str
    conditioning: Conditioning | None


def derive(evidence: Evidence) -> Derived:
    """The relative target (see the module docstring), or the runs' own absolute one."""
    found = training_conditioning(evidence)
    rates = ", ".join(f"{float(r):g}" for r in evidence.values(LEARNING_RATE)) or "one rate"
    steps = f"{int(evidence.runs['total_steps'].max()):,}"
    grid = f"every arm ran at the learning rates {rates}, each measured at its fastest one per seed"
    if absolute(evidence):
        rows = evidence.runs.dropna(subset=["target_value"])
        metric, value = rows["target_metric"].iloc[0], float(rows["target_value"].iloc[0])
        direction = "≤" if lower_is_better(str(metric)) else "≥"
        words = f"Target (recorded by the runs): {metric} {direction} {value:g}"
        return Derived(None, f"{words} within {steps} steps; {grid}.", found)
    if found is None:
        return Derived(None, "No target: the runs' configs name no dataset, so Var(y), where the "
                             f"target counts from, is unknown; {grid}.", found)  # fmt: skip
    arms = [arm for arm in ARMS if arm in evidence.tree.arms]
    target, best = derive_at_best(evidence, arms, LEARNING_RATE, metric=METRIC, fraction=FRACTION,
                                  baseline=found.target_variance, scale="log")  # fmt: skip
    if target is None:
        return Derived(None, f"No target: no arm learned anything at any rate; {grid}.", found)
    text = target.describe()
    at = ", ".join(f"{arm} {float(rate):g}" for arm, rate in best.items())
    unlearned = [arm for arm in arms if arm not in best]
    none = f"; {', '.join(unlearned)} learned nothing at any rate" if unlearned else ""
    words = (f"Target {text.removeprefix('target ')}: the baseline is Var(y) of the training "
             f"split (the MSE of predicting the mean), each arm's plateau taken at its best "
             f"rate ({at}){none}, fixed before any arm is timed and the same for every arm; "
             f"within {steps} steps, {grid}.")  # fmt: skip
    return Derived(target, words, found)


def fastest(
    evidence: Evidence, arm: str, target: RelativeTarget | None = None
) -> dict[int, Fastest]:
    """Seed -> the arm's fastest rate and when it reached the target there.

    The target is the runs' own when they recorded one (`relative.absolute`), else `target`
    (None: no target, every run censored). A seed counts only when the arm has a finished run at
    every rate of the grid (the minimum over fewer rates would not be the same statistic).
    """
    rates = [float(r) for r in evidence.values(LEARNING_RATE)]
    cells: list[Cell | None] = [{LEARNING_RATE: r} for r in rates] or [None]
    recorded = absolute(evidence)
    options: dict[int, list[tuple[Hit, float | None]]] = {}
    for cell in cells:
        rate = None if cell is None else float(cell[LEARNING_RATE])
        times = evidence.times(arm, cell) if recorded else times_to(evidence, arm, target, cell)
        for seed, hit in hits(evidence, arm, cell, times).items():
            options.setdefault(seed, []).append((hit, rate))
    out = {}
    for seed, found in options.items():
        if len(found) != len(cells):
            continue
        reached_at = [(h.step, math.inf if r is None else r, h, r) for h, r in found
                      if h.step is not None]  # fmt: skip
        if reached_at:
            _, _, hit, rate = min(reached_at, key=lambda option: option[:2])
            out[seed] = Fastest(hit, rate)
        else:
            out[seed] = Fastest(max((h for h, _ in found), key=lambda h: h.last_step), None)
    return out


def assess(evidence: Evidence) -> Assessment:
    """Paired ratio raw / BN of the steps to the target, each arm at its fastest rate."""
    derived = derive(evidence)
    times = {arm: fastest(evidence, arm, derived.target) for arm in ARMS
             if arm in evidence.tree.arms}  # fmt: skip
    reference = {seed: f.hit for seed, f in times.get(REFERENCE, {}).items()}
    findings = []
    for arm, words in BN_ARMS.items():
        if arm not in times:
            continue
        arm_hits = {seed: f.hit for seed, f in times[arm].items()}
        statistic = (f"steps to the target, raw inputs / {words} (each at its fastest rate), "
                     "geometric mean")  # fmt: skip
        findings.append(speedup_finding(words, statistic, arm_hits, reference))
    sentences = [derived.words, _conditioning_sentence(evidence, derived)]
    sentences += [_arm_sentence(evidence, arm, times[arm]) for arm in times]
    if "standardized" in times:
        standardized = {seed: f.hit for seed, f in times["standardized"].items()}
        ratio = speedup_finding("", "", standardized, reference).interval
        sentences.append(
            f"Standardizing the inputs instead: raw / standardized steps = "
            f"{fmt(ratio.estimate, 2)} [{fmt(ratio.low, 2)}, {fmt(ratio.high, 2)}] (geometric "
            f"mean, 95% CI over {ratio.n} seeds{', with bounds' if ratio.bounds else ''})."
        )
    every = [{seed: f.hit for seed, f in found.items()} for found in times.values()]
    if (note := resolution_sentence(*every)) is not None:
        sentences.append(note)
    return Assessment(findings, sentences)


def _conditioning_sentence(evidence: Evidence, derived: Derived) -> str:
    found = derived.conditioning
    if found is None:
        return "Condition numbers: n/a (the runs' configs name no dataset)."
    value = None if derived.target is None else derived.target.value
    rows = evidence.runs.dropna(subset=["target_value"])
    # The runs' loss is the regression default, the MSE: a loss target is an R².
    if not rows.empty and str(rows["target_metric"].iloc[0]).endswith("loss"):
        value = float(rows["target_value"].iloc[0])
    r_squared = ""
    if value is not None:
        variance, r2 = found.target_variance, 1 - value / found.target_variance
        r_squared = f"; the target is an R² of {r2:.4f} (Var(y) = {variance:,.0f})"
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
    derived = derive(evidence)
    for arm in (a for a in ARMS if a in evidence.tree.arms):
        rate = _shown_rate(evidence, arm, derived.target)
        cell = None if rate is None else {LEARNING_RATE: rate}
        suffix = "" if rate is None else f" (lr {rate:g})"
        curves(ax, evidence, "val_loss", [arm], cell, label_suffix=suffix)
    recorded = evidence.runs["target_value"].dropna()
    target = float(recorded.iloc[0]) if len(recorded) else None
    if derived.target is not None:
        target = derived.target.value
    if target is not None:
        ax.axhline(target, color="0.4", ls=":", lw=1, label="target")
    ax.set(yscale="log", ylabel="validation MSE (seed mean, log scale)")
    ax.set_title("each arm at its most often fastest rate", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return fig


def _shown_rate(evidence: Evidence, arm: str, target: RelativeTarget | None) -> float | None:
    """The rate most seeds found fastest (the smaller on a tie); without any, the rate of the
    lowest mean final validation loss."""
    rates = [f.rate for f in fastest(evidence, arm, target).values() if f.rate is not None]
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
        "paired ratio of steps to a relative target on two_scale regression (90% of the way in "
        "log MSE from Var(y) to the slower arm's plateau at its best rate), raw inputs / BN (on "
        "the inputs; in the hidden block), each arm at its fastest rate of the same grid"
    ),
    runtime="full 40 s, quick 20 s",
    effect=0.25,  # 1.25x fewer steps
    quick=Reduction(grid={LEARNING_RATE: [1e-5, 1e-4]}, arms=["raw", "bn"]),
    arms=ARMS,
    fixes_data="its question is about two badly scaled inputs (the synthetic two_scale set)",
    assess=assess,
    draw=draw,
)
