"""Per-seed statistics the verdict rules share: paired differences, censored speedups, slopes.

Each function returns one `Value` per seed that has what it needs (seeds missing a run or a
number are left out, and the finding's n says how many remain), so every rule's interval is over
seeds, the unit that pairs runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from bnbench.analysis.inference import Interval
from bnbench.analysis.paired import TimeToTarget
from bnbench.analysis.targets import Hit
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


def with_test_set_error(found: Interval, standard_error: float) -> Interval:
    """`found` (an interval over seeds) widened by a test set's sampling error.

    Every seed is scored on the same test examples, so the test set's sampling error does not
    average out over seeds: it adds to the variance of the seed mean. Each half-width h becomes
    sqrt(h² + (z · standard_error)²), z the normal quantile of the interval's level; an open
    end stays open.
    """
    from scipy import stats

    if found.estimate is None or not math.isfinite(standard_error):
        return found
    spread = float(stats.norm.ppf(0.5 + found.level / 2)) * standard_error

    middle = found.estimate
    low = middle - math.hypot(middle - found.low, spread) if math.isfinite(found.low) else found.low
    high = (
        middle + math.hypot(found.high - middle, spread)
        if math.isfinite(found.high)
        else found.high
    )
    return replace(found, low=low, high=high)


def binomial_difference_se(first: float, second: float, examples: int) -> float:
    """Standard error of a difference of two accuracies on `examples` test examples each,
    their binomial errors added as if independent (conservative: paired predictions on the same
    examples correlate positively, which shrinks the true error)."""
    if not (math.isfinite(first) and math.isfinite(second)) or examples < 1:
        return math.nan
    return math.sqrt((first * (1 - first) + second * (1 - second)) / examples)


def hits(evidence: Evidence, arm: str, cell: Cell | None = None,
         times: Mapping[int, TimeToTarget] | None = None) -> dict[int, Hit]:  # fmt: skip
    """Seed -> when the run reached the target, interval-censored to its evaluation points.

    A run is checked against its target only at evaluation points, so a hit at step s means the
    target was reached in (previous evaluation, s]: at the first point, in (0, s]. A run whose
    history was not recorded (hand-built trees) keeps its hit as exact (previous = s). `times`
    are the steps to another target than the runs' own (a relative one); default: theirs.
    """
    times = evidence.times(arm, cell) if times is None else times
    rows = evidence.where(arm, cell)
    history = evidence.histories
    out = {}
    for seed, run_id in zip(rows["seed"], rows["run_id"], strict=True):
        time = times[int(seed)]
        last = int(time.last_step or 0)
        steps = history.loc[history["run_id"] == run_id, "step"] if len(history) else []
        points = sorted(int(s) for s in steps)
        if time.steps is None:
            out[int(seed)] = Hit(None, points[-1] if points else last, last)
            continue
        step = int(time.steps)
        before = [p for p in points if p < step]
        previous = (before[-1] if before else 0) if points else step
        out[int(seed)] = Hit(step, previous, last)
    return out


def resolution(*found: Mapping[int, Hit]) -> int | None:
    """The widest (previous, step] interval among the hits: how finely a hit is known."""
    widths = [h.step - h.previous for hs in found for h in hs.values() if h.step is not None]
    return max(widths) if widths else None


def resolution_sentence(*found: Mapping[int, Hit], of: str = "speedup") -> str | None:
    """The sentence that states how finely the hits are known (None without any hit); `of`
    names the statistic whose interval spans both ends of each hit."""
    steps = resolution(*found)
    if steps is None:
        return None
    return (f"The target is checked at evaluation points, so a hit is known to within {steps} "
            f"steps (previous point, hit]; the {of}'s interval spans both ends.")  # fmt: skip


def _ends(hit: Hit) -> tuple[float, float]:
    """(low, high) of the steps the run took: (previous, step], or (last step, ∞) if censored."""
    if hit.step is None:
        return float(hit.last_step), math.inf
    return float(hit.previous), float(hit.step)


def _log(ratio: float) -> float:
    """ln of a ratio of steps, -inf at 0 (an open lower end), inf at inf."""
    return math.log(ratio) if ratio > 0 else -math.inf


def speedup_finding(
    label: str, statistic: str, arm: Mapping[int, Hit], reference: Mapping[int, Hit]
) -> Finding:
    """Reference / arm steps to target against 1, with each seed's ratio interval-censored.

    Seed by seed the ratio lies in (reference low / arm high, reference high / arm low); a seed
    where both runs never reached the target says nothing. The interval is `censored_finding`'s
    over those seeds' ends; the estimate is the geometric mean at the hitting steps.
    """
    ends = {}
    for seed in sorted(arm.keys() & reference.keys()):
        if arm[seed].censored and reference[seed].censored:
            continue
        (r_low, r_high), (a_low, a_high) = _ends(reference[seed]), _ends(arm[seed])
        low = r_low / a_high if a_high > 0 else math.inf
        high = r_high / a_low if a_low > 0 else math.inf
        ends[seed] = (_log(low), _log(high))
    at_hits = log_speedups(
        {s: h.time_to_target() for s, h in arm.items()},
        {s: h.time_to_target() for s, h in reference.items()},
    )
    return censored_finding(label, statistic, ends, at_hits, 1.0, "above", digits=2, scale="exp")


def slope_ends(points: Sequence[tuple[float, Hit]]) -> tuple[float, float]:
    """(low, high) of one seed's least-squares slope of log2(steps to target) against log2(x),
    over every time its hits allow.

    The slope is linear in the log2 times, with weight (u − ū) / Σ(u − ū)² on each (u = log2 x):
    it is lowest with each positively weighted time at its interval's lower end and each
    negatively weighted one at its upper end, and highest the other way round. A hit at the
    first evaluation (in (0, step]) opens one end, as does a run that never got there (its time
    lies in (last step, ∞)); fewer than two distinct x leave both open.
    """
    usable = [(math.log2(x), hit) for x, hit in points if x > 0]
    us = np.array([u for u, _ in usable], dtype=float)
    if len(usable) < 2 or np.ptp(us) == 0:
        return -math.inf, math.inf
    weights = [float(w) for w in (us - us.mean()) / np.sum((us - us.mean()) ** 2)]
    low = high = 0.0
    for weight, (_, hit) in zip(weights, usable, strict=True):
        if weight == 0:
            continue  # the middle of a symmetric grid: its time does not move the slope
        start, end = _ends(hit)
        y_low = math.log2(start) if start > 0 else -math.inf
        y_high = math.log2(end) if math.isfinite(end) else math.inf
        low += weight * (y_low if weight > 0 else y_high)
        high += weight * (y_high if weight > 0 else y_low)
    return low, high


def censored_finding(
    label: str,
    statistic: str,
    ends: Mapping[int, tuple[float, float]],
    at_hits: Sequence[Value],
    threshold: float,
    side: Side,
    *,
    digits: int = 2,
    scale: Scale | None = None,
) -> Finding:
    """A finding on a statistic each seed knows only within an interval, as steps to a target
    checked at evaluation points are (`speedup_finding`, depth's slopes).

    The interval's lower end is that of the seeds' lower ends (an open one enters as an upper
    bound at its upper end), its upper end that of the upper ends, and never inside the
    interval at the hitting steps (`at_hits`, which gives the estimate): it holds whichever true
    times lie inside the evaluation intervals.

    Args:
        label: Which finding of the claim this is.
        statistic: The statistic's name, on the scale shown.
        ends: Seed -> (low, high) of its value (on the log scale when `scale` is given); an
            infinite end is open; a seed with both open is left out.
        at_hits: Per-seed values at the hitting steps.
        threshold: The declared threshold on the scale shown.
        side: Where the claim puts the statistic relative to the threshold.
        digits: Decimals shown.
        scale: Show exp (ln scale values) or 10** (log10 values) of the interval.
    """
    lows, highs = [], []
    for seed, (low, high) in sorted(ends.items()):
        if math.isfinite(low):
            lows.append(Value(seed, low))
        elif math.isfinite(high):
            lows.append(Value(seed, high, "upper"))
        if math.isfinite(high):
            highs.append(Value(seed, high))
        elif math.isfinite(low):
            highs.append(Value(seed, low, "lower"))
    middle, below, above = interval(at_hits), interval(lows), interval(highs)
    bounds = tuple(dict.fromkeys([*below.bounds, *above.bounds, *middle.bounds]))
    # Never narrower than the interval at the hitting steps (one completion of the data): the
    # ends' intervals may be computed by another method (ties make a statistic grid-valued).
    low, high = min(below.low, middle.low), max(above.high, middle.high)
    found = replace(middle, low=low, high=high, bounds=bounds)
    if scale is not None:
        found = found.mapped(scale)
    verdict = decide(found, threshold, side)
    # The seeds' conservative ends are what the test, Holm and the halves read (the lower ends
    # for a claim above the threshold), so the family's p-value never flatters the finding.
    values = lows if side == "above" else highs
    return Finding(label, statistic, found, threshold, rule_text(threshold, side), verdict,
                   digits, values=tuple(values), side=side, scale=scale)  # fmt: skip
