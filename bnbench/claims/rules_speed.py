"""Verdict rules and figures of the claims about speed and robustness of training.

faster_training, higher_learning_rates, init_sensitivity and depth (and input_scaling, from
`bnbench.claims.rules_scaling`). Thresholds are declared here, next to the rule that uses them,
and fixed before any run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from bnbench.analysis.paired import TimeToTarget
from bnbench.claims.claim import Assessment
from bnbench.claims.drawing import by_x, curves, figure, times_by_x
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import (
    censored_slope,
    finding,
    fmt,
    log_speedups,
    mean_of,
    per_seed,
    reached,
    subtract,
)

# Claim 10 (input_scaling) is a speed claim too; its rule lives in its own module because it
# also reads the data its runs trained on. Named here so the registry finds it with the others.
from bnbench.claims.rules_scaling import assess_input_scaling as assess_input_scaling
from bnbench.claims.rules_scaling import draw_input_scaling as draw_input_scaling
from bnbench.claims.verdicts import Bound, Value

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# higher_learning_rates: a rate is "good" when its final validation accuracy is within this of the
# arm's best rate for the same seed (5 points of accuracy: clearly trained, not just not broken).
WITHIN_BEST = 0.05
# A rate "works" when its run did not diverge and ended at least this fraction of the way from
# chance to the seed's best accuracy: a run that did not blow up but sits at chance (the loss
# rule lets such runs finish) does not count as training at that rate.
WORKS = 0.5
LEARNING_RATE = "training.learning_rate"
STDDEV = "model.initializer.stddev"
DEPTH = "model.blocks.0.repeat"


# --- 1. faster training -------------------------------------------------------------------------


def assess_faster_training(evidence: Evidence) -> Assessment:
    """Paired ratio of steps to target, no BN / BN, under moving and recalibrated statistics."""
    reference = evidence.times("no_bn")
    findings, sentences = [], []
    target = _target(evidence)
    sentences.append(f"Without BN, {reached(reference)} ({target}).")
    for arm, words in (("bn_recalibrated", "recalibrated"), ("bn_moving", "moving")):
        times = evidence.times(arm)
        values = log_speedups(times, reference)
        statistic = f"steps to target, no BN / BN ({words} BN statistics), geometric mean"
        findings.append(finding(f"{words} BN statistics", statistic, values, 1.0, "above",
                                digits=2, scale="exp"))  # fmt: skip
        exact = [t.steps for t in times.values() if t.steps is not None]
        mean_steps = fmt(float(np.mean(exact)), 0) if exact else "n/a"
        sentences.append(
            f"With BN evaluated with {words} statistics, {reached(times)}, after {mean_steps} "
            f"steps on average (seeds that reached it)."
        )
    return Assessment(findings, sentences)


def draw_faster_training(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "faster training: validation accuracy against steps", width=6.0)
    curves(ax, evidence, "val_accuracy", ["no_bn", "bn_moving", "bn_recalibrated"])
    value = evidence.runs["target_value"].dropna()
    if len(value):
        ax.axhline(float(value.iloc[0]), color="0.4", ls=":", lw=1, label="target")
    ax.set_ylabel("validation accuracy (seed mean)")
    ax.legend(fontsize=7, frameon=False)
    return fig


# --- 2. higher learning rates -------------------------------------------------------------------


def assess_higher_learning_rates(evidence: Evidence) -> Assessment:
    """Decades of rates within WITHIN_BEST of the best, and the largest working rate."""
    rates = [float(r) for r in evidence.values(LEARNING_RATE)]
    widths = {arm: _widths(evidence, arm, rates) for arm in ("no_bn", "bn")}
    largest = {arm: _largest_stable(evidence, arm, rates) for arm in ("no_bn", "bn")}
    width_values = differences_of(widths["bn"], widths["no_bn"])
    largest_values = subtract(largest["bn"], largest["no_bn"])
    findings = [
        finding("range of good rates",
                f"decades of learning rates within {WITHIN_BEST:g} of the best val. accuracy, "
                "BN − no BN", width_values, 0.0, "above", digits=2),
        finding("largest working rate",
                "log10 of the largest rate that neither diverges nor stays near chance, "
                "BN − no BN (decades)", largest_values, 0.0, "above", digits=2),
    ]  # fmt: skip
    sentences = [
        f"Rates tried: {', '.join(f'{r:g}' for r in rates)}.",
        *(
            f"{arm}: on average {fmt(mean_of(widths[arm]), 2)} decades of rates within "
            f"{WITHIN_BEST:g} of its best; {_diverged(evidence, arm)}."
            for arm in ("no_bn", "bn")
        ),
    ]
    return Assessment(findings, sentences)


def differences_of(first: dict[int, float], second: dict[int, float]) -> list[Value]:
    return per_seed({s: first[s] - second[s] for s in first.keys() & second.keys()})


def _widths(evidence: Evidence, arm: str, rates: list[float]) -> dict[int, float]:
    """Seed -> decades spanned by the rates whose final val. accuracy is within WITHIN_BEST."""
    scores: dict[int, dict[float, float]] = {}
    for rate in rates:
        rows = evidence.where(arm, {LEARNING_RATE: rate})
        for seed, status, score in zip(rows["seed"], rows["status"], rows["final_val_metric"],
                                       strict=True):  # fmt: skip
            value = float(score) if status == "completed" else math.nan
            scores.setdefault(int(seed), {})[rate] = value
    out = {}
    for seed, by_rate in scores.items():
        finite = {r: v for r, v in by_rate.items() if math.isfinite(v)}
        if not finite:
            continue
        best = max(finite.values())
        good = [r for r, v in finite.items() if v >= best - WITHIN_BEST]
        out[seed] = math.log10(max(good)) - math.log10(min(good))
    return out


def _largest_stable(evidence: Evidence, arm: str, rates: list[float]) -> dict[int, Value]:
    """Seed -> log10 of the largest rate that works (`WORKS`), a bound at the grid's ends."""
    out: dict[int, Value] = {}
    chances = evidence.by_seed("chance_accuracy", arm)
    for seed in sorted(chances):
        scores = {r: evidence.by_seed("final_val_metric", arm, {LEARNING_RATE: r}, True)
                  .get(seed, math.nan) for r in rates}  # fmt: skip
        finite = [v for v in scores.values() if math.isfinite(v)]
        stable: list[float] = []
        if finite and math.isfinite(chances[seed]):
            floor = chances[seed] + WORKS * (max(finite) - chances[seed])
            stable = [r for r, v in scores.items() if math.isfinite(v) and v >= floor]
        bound: Bound
        if not stable:  # every rate diverged: the largest working one is below the grid
            value, bound = math.log10(min(rates)), "upper"
        else:
            value = math.log10(max(stable))
            bound = "lower" if max(stable) == max(rates) else "exact"
        out[seed] = Value(seed, value, bound)
    return out


def _diverged(evidence: Evidence, arm: str) -> str:
    rows = evidence.where(arm)
    bad = rows[rows["status"] == "diverged"]
    rates = sorted({float(r) for r in bad[f"grid.{LEARNING_RATE}"]})
    shown = ", ".join(f"{r:g}" for r in rates) or "none"
    return f"{len(bad)} of {len(rows)} runs diverged (rates: {shown})"


def draw_higher_learning_rates(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "learning-rate range: final validation accuracy", width=6.0)
    rates = evidence.values(LEARNING_RATE)
    by_x(ax, evidence,
         lambda arm, r: evidence.by_seed("final_val_metric", arm, {LEARNING_RATE: r}, True),
         rates, ["no_bn", "bn"], log_x=True)  # fmt: skip
    ax.set_xlabel("learning rate (diverged runs: no dot)")
    ax.set_ylabel("final validation accuracy")
    return fig


# --- 3. less sensitive to initialization --------------------------------------------------------


def assess_init_sensitivity(evidence: Evidence) -> Assessment:
    """Per seed, the range of final test accuracy across init scales; no BN − BN."""
    spreads = {arm: _spread(evidence, arm) for arm in ("no_bn", "bn")}
    values = differences_of(spreads["no_bn"], spreads["bn"])
    scales = ", ".join(f"{s:g}" for s in evidence.values(STDDEV))
    statistic = "range (max − min) of final test accuracy across init scales, no BN − BN"
    sentences = [f"Initial weights N(0, σ²) with σ in {scales}; a diverged run scores chance."]
    for arm in ("no_bn", "bn"):
        sentences.append(f"{arm}: mean range {fmt(mean_of(spreads[arm]))} across scales.")
    return Assessment([finding("", statistic, values, 0.0, "above")], sentences)


def _accuracy_or_chance(evidence: Evidence, arm: str, cell: dict[str, float]) -> dict[int, float]:
    rows = evidence.where(arm, cell)
    out = {}
    for seed, status, score, chance in zip(rows["seed"], rows["status"],
                                           rows["final_test_metric"], rows["chance_accuracy"],
                                           strict=True):  # fmt: skip
        value = float(chance) if status == "diverged" and chance is not None else float(score)
        out[int(seed)] = value
    return out


def _spread(evidence: Evidence, arm: str) -> dict[int, float]:
    scales = [float(s) for s in evidence.values(STDDEV)]
    table: dict[int, list[float]] = {}
    for scale in scales:
        for seed, value in _accuracy_or_chance(evidence, arm, {STDDEV: scale}).items():
            table.setdefault(seed, []).append(value)
    return {seed: float(np.ptp(v)) for seed, v in table.items()
            if len(v) == len(scales) and np.all(np.isfinite(v))}  # fmt: skip


def draw_init_sensitivity(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "initialization scale: final test accuracy", width=6.0)
    scales = evidence.values(STDDEV)
    by_x(ax, evidence, lambda arm, s: _accuracy_or_chance(evidence, arm, {STDDEV: s}), scales,
         ["no_bn", "bn"], log_x=True)  # fmt: skip
    ax.set_xlabel("σ of the initial weights N(0, σ²)")
    ax.set_ylabel("final test accuracy (diverged: chance)")
    return fig


# --- 6. depth -----------------------------------------------------------------------------------


def assess_depth(evidence: Evidence) -> Assessment:
    """Slope of log2 steps-to-target against log2 depth, per arm, and its difference."""
    depths = [float(d) for d in evidence.values(DEPTH)]
    slopes = {arm: _slopes(evidence, arm, depths) for arm in ("no_bn", "bn")}
    statistic = "slope of log2(steps to target) against log2(depth)"
    findings = [
        finding("without BN", f"{statistic}, no BN", list(slopes["no_bn"].values()), 0.0,
                "above", digits=2),
        finding("BN removes the penalty", f"{statistic}, no BN − BN",
                subtract(slopes["no_bn"], slopes["bn"]), 0.0, "above", digits=2),
    ]  # fmt: skip
    sentences = [
        f"Depths (hidden blocks): {', '.join(f'{d:g}' for d in depths)}; {_target(evidence)}."
    ]
    for arm in ("no_bn", "bn"):
        parts = [_depth_summary(evidence.times(arm, {DEPTH: d}), d) for d in depths]
        sentences.append(f"{arm}: " + "; ".join(parts) + ".")
    return Assessment(findings, sentences)


def _depth_summary(times: dict[int, TimeToTarget], depth: float) -> str:
    """E.g. "8 blocks: 3/3 seeds reached the target, after 560 steps on average"."""
    steps = [t.steps for t in times.values() if t.steps is not None]
    after = f", after {np.mean(steps):.0f} steps on average" if steps else ""
    return f"{depth:g} blocks: {reached(times)}{after}"


def _slopes(evidence: Evidence, arm: str, depths: list[float]) -> dict[int, Value]:
    out = {}
    for seed in evidence.seeds:
        points = [(d, t) for d in depths
                  for s, t in evidence.times(arm, {DEPTH: d}).items() if s == seed]  # fmt: skip
        slope = censored_slope(points)
        if slope is not None:
            out[seed] = Value(seed, slope.value, slope.bound)
    return out


def draw_depth(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "depth: steps to target against the number of blocks", width=6.0)
    times_by_x(ax, evidence, DEPTH, evidence.values(DEPTH), ["no_bn", "bn"], log_x=True)
    ax.set_xlabel("hidden blocks")
    return fig


def _target(evidence: Evidence) -> str:
    rows = evidence.runs.dropna(subset=["target_value"])
    if rows.empty:
        return "no target"
    steps = int(evidence.runs["total_steps"].max())
    metric, value = rows["target_metric"].iloc[0], float(rows["target_value"].iloc[0])
    return f"target {metric} ≥ {value:g} within {steps} steps"
