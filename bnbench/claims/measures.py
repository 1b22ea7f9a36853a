"""Per-seed statistics the verdict rules share: paired differences, censored speedups, slopes.

Each function returns one `Value` per seed that has what it needs (seeds missing a run or a
number are left out, and the finding's n says how many remain), so every rule's interval is over
seeds, the unit that pairs runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from bnbench.analysis.paired import TimeToTarget
from bnbench.claims.claim import Finding
from bnbench.claims.evidence import Cell, Evidence
from bnbench.claims.verdicts import Bound, Side, Value, combine, decide, interval, rule_text

Scale = Literal["exp", "pow10"]


def differences(
    evidence: Evidence,
    column: str,
    arm: str,
    reference: str,
    cell: Cell | None = None,
    reference_cell: Cell | None = None,
) -> list[Value]:
    """Seed by seed, `column` of `arm` minus `column` of `reference` (each in its cell)."""
    mine = evidence.by_seed(column, arm, cell)
    theirs = evidence.by_seed(column, reference, cell if reference_cell is None else reference_cell)
    return [
        Value(seed, mine[seed] - theirs[seed])
        for seed in sorted(mine.keys() & theirs.keys())
        if math.isfinite(mine[seed] - theirs[seed])
    ]


def per_seed(values: Mapping[int, float]) -> list[Value]:
    """The finite values of a seed -> value mapping, as exact values."""
    return [Value(seed, v) for seed, v in sorted(values.items()) if math.isfinite(v)]


def log_speedups(
    arm: Mapping[int, TimeToTarget], reference: Mapping[int, TimeToTarget]
) -> list[Value]:
    """Seed by seed, ln(reference steps / arm steps) to the target, censored times as bounds.

    The reference censored (it never got there) makes the ratio a lower bound, the arm censored
    an upper bound; a seed where both were censored says nothing and is left out.
    """
    out = []
    for seed in sorted(arm.keys() & reference.keys()):
        a, r = arm[seed], reference[seed]
        if a.time is None or r.time is None or a.time <= 0 or r.time <= 0:
            continue
        if a.censored and r.censored:
            continue
        bound: Bound = "lower" if r.censored else "upper" if a.censored else "exact"
        out.append(Value(seed, math.log(r.time / a.time), bound))
    return out


def censored_slope(points: Sequence[tuple[float, TimeToTarget]]) -> Value | None:
    """Least-squares slope of log2(steps to target) against log2(x) for one seed.

    Censored times enter at their censoring step. When every censored point lies at larger x
    than every exact one, the true times there are larger still and the slope is a lower bound;
    censoring anywhere else leaves the slope unbounded (None), as does a seed with every time
    censored or fewer than two points.
    """
    usable = [(x, t) for x, t in points if t.time is not None and t.time > 0 and x > 0]
    if len(usable) < 2 or all(t.censored for _, t in usable):
        return None
    censored = [x for x, t in usable if t.censored]
    exact = [x for x, t in usable if not t.censored]
    if censored and min(censored) <= max(exact):
        return None
    xs = np.log2([x for x, _ in usable])
    ys = np.log2([float(t.time) for _, t in usable if t.time is not None])
    slope = float(np.polyfit(xs, ys, 1)[0])
    return Value(0, slope, "lower" if censored else "exact")


def subtract(first: Mapping[int, Value], second: Mapping[int, Value]) -> list[Value]:
    """Seed by seed `first - second`, with the bound that difference has (None: left out)."""
    out = []
    for seed in sorted(first.keys() & second.keys()):
        bound = combine(first[seed].bound, second[seed].bound, -1)
        if bound is not None:
            out.append(Value(seed, first[seed].value - second[seed].value, bound))
    return out


def finding(
    label: str,
    statistic: str,
    values: Sequence[Value],
    threshold: float,
    side: Side,
    *,
    digits: int = 3,
    scale: Scale | None = None,
) -> Finding:
    """A finding whose verdict holds the 95% interval of `values` against `threshold`.

    Args:
        label: Which finding of the claim this is ("" for a claim's only one).
        statistic: The statistic's name, on the scale shown.
        values: Per-seed values (on the log scale when `scale` is given).
        threshold: The declared threshold on the scale shown.
        side: Where the claim puts the statistic relative to the threshold.
        digits: Decimals shown.
        scale: Show exp (ln scale values) or 10** (log10 values) of the interval.
    """
    found = interval(values)
    if scale is not None:
        found = found.mapped(scale)
    verdict = decide(found, threshold, side)
    return Finding(label, statistic, found, threshold, rule_text(threshold, side),
                   verdict, digits, values=tuple(values), side=side, scale=scale)  # fmt: skip


def mean_of(values: Mapping[int, float]) -> float:
    """Mean of the finite values (NaN without any)."""
    data = [v for v in values.values() if math.isfinite(v)]
    return float(np.mean(data)) if data else math.nan


def fmt(value: float | None, digits: int = 3, signed: bool = False) -> str:
    """A number for a sentence: "n/a" for a missing one."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def reached(times: Mapping[int, TimeToTarget]) -> str:
    """E.g. "3/5 seeds reached the target"."""
    count = sum(not t.censored for t in times.values())
    return f"{count}/{len(times)} seeds reached the target"


def minus(first: Mapping[int, float], second: Mapping[int, float]) -> dict[int, float]:
    """Seed -> `first - second`, for the seeds both have."""
    return {seed: first[seed] - second[seed] for seed in first.keys() & second.keys()}


def differences_of(first: Mapping[int, float], second: Mapping[int, float]) -> list[Value]:
    """Seed by seed `first - second`, as exact values (non-finite ones left out)."""
    return per_seed(minus(first, second))


def accuracy(evidence: Evidence, arm: str, cell: Cell | None = None) -> dict[int, float]:
    """Seed -> final test accuracy; a diverged run scores its data's chance rate (it learned
    nothing usable)."""
    rows = evidence.where(arm, cell)
    out = {}
    for seed, status, score, chance in zip(rows["seed"], rows["status"], rows["final_test_metric"],
                                           rows["chance_accuracy"], strict=True):  # fmt: skip
        diverged = status == "diverged" and chance is not None
        out[int(seed)] = float(chance) if diverged else float(score)
    return out


def target_words(evidence: Evidence) -> str:
    """E.g. "target val_accuracy ≥ 0.9 within 400 steps" ("no target" without one)."""
    rows = evidence.runs.dropna(subset=["target_value"])
    if rows.empty:
        return "no target"
    steps = int(evidence.runs["total_steps"].max())
    metric, value = rows["target_metric"].iloc[0], float(rows["target_value"].iloc[0])
    return f"target {metric} ≥ {value:g} within {steps} steps"
