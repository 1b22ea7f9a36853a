"""depth: without batch norm, deeper networks train slower.

Per seed, the slope of log2(steps to target) against log2(depth) (censored times make it a
bound): the no-BN slope, and its difference no BN − BN. The target is checked at evaluation
points, so each time is known only within (previous evaluation, hit] (`measures.hits`): the
slope's interval spans every slope those times allow (`measures.slope_ends`), a hit at the first
evaluation leaving its end open, and the resolution is stated in a sentence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bnbench.analysis.paired import TimeToTarget
from bnbench.analysis.targets import Hit
from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import figure, times_by_x
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import (
    censored_finding,
    censored_slope,
    hits,
    reached,
    resolution_sentence,
    slope_ends,
    subtract,
    target_words,
)
from bnbench.claims.relative import absolute, derive, times_to
from bnbench.claims.verdicts import Value

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEPTH = "model.blocks.0.repeat"
ARMS = ("no_bn", "bn")


def assess(evidence: Evidence) -> Assessment:
    """Slope of log2 steps-to-target against log2 depth, per arm, and its difference."""
    depths = [float(d) for d in evidence.values(DEPTH)]
    found, target = _hits(evidence, depths)
    slopes = {arm: _slopes(evidence, found[arm], depths) for arm in ARMS}
    ends = {arm: _ends(evidence, found[arm], depths) for arm in ARMS}
    # no BN − BN is lowest with no BN's slope at its low end and BN's at its high end
    difference = {seed: (ends["no_bn"][seed][0] - ends["bn"][seed][1],
                         ends["no_bn"][seed][1] - ends["bn"][seed][0])
                  for seed in sorted(ends["no_bn"].keys() & ends["bn"].keys())}  # fmt: skip
    statistic = "slope of log2(steps to target) against log2(depth)"
    findings = [
        censored_finding("without BN", f"{statistic}, no BN", ends["no_bn"],
                         list(slopes["no_bn"].values()), 0.0, "above"),
        censored_finding("BN removes the penalty", f"{statistic}, no BN − BN", difference,
                         subtract(slopes["no_bn"], slopes["bn"]), 0.0, "above"),
    ]  # fmt: skip
    sentences = [f"Depths (hidden blocks): {', '.join(f'{d:g}' for d in depths)}; {target}."]
    for arm in ARMS:
        parts = [_depth_summary(_times(found[arm][d]), d) for d in depths]
        sentences.append(f"{arm}: " + "; ".join(parts) + ".")
    every = [found[arm][d] for arm in ARMS for d in depths]
    if (note := resolution_sentence(*every, of="slope")) is not None:
        sentences.append(note)
    return Assessment(findings, sentences)


def _depth_summary(times: dict[int, TimeToTarget], depth: float) -> str:
    """E.g. "8 blocks: 3/3 seeds reached the target, after 560 steps on average"."""
    steps = [t.steps for t in times.values() if t.steps is not None]
    after = f", after {np.mean(steps):.0f} steps on average" if steps else ""
    return f"{depth:g} blocks: {reached(times)}{after}"


Hits = dict[str, dict[float, dict[int, Hit]]]


def _hits(evidence: Evidence, depths: list[float]) -> tuple[Hits, str]:
    """Arm -> depth -> seed -> when the run reached the target (interval-censored to its
    evaluation points), and the target in words. The target is relative
    (`bnbench.claims.relative`), one for every depth and arm: FRACTION of the way from chance to
    the slower arm's plateau at the shallowest depth (a depth every arm learns at), unless the
    runs recorded an absolute one."""
    if absolute(evidence) or not depths:
        found = {arm: {d: hits(evidence, arm, {DEPTH: d}) for d in depths} for arm in ARMS}
        return found, target_words(evidence)
    target = derive(evidence, ARMS, {DEPTH: depths[0]})
    found = {arm: {d: hits(evidence, arm, {DEPTH: d}, times_to(evidence, arm, target, {DEPTH: d}))
                   for d in depths} for arm in ARMS}  # fmt: skip
    words = (f"{target.describe()}, at depth {depths[0]:g}" if target
             else "no arm learned anything at the shallowest depth, so no target")  # fmt: skip
    return found, words


def _times(found: dict[int, Hit]) -> dict[int, TimeToTarget]:
    return {seed: hit.time_to_target() for seed, hit in found.items()}


def _points(found: dict[float, dict[int, Hit]], depths: list[float], seed: int
            ) -> list[tuple[float, Hit]]:  # fmt: skip
    return [(d, found[d][seed]) for d in depths if seed in found[d]]


def _slopes(evidence: Evidence, found: dict[float, dict[int, Hit]], depths: list[float]
            ) -> dict[int, Value]:  # fmt: skip
    """Seed -> the slope at the hitting steps (censored times as bounds; see `censored_slope`)."""
    out = {}
    for seed in evidence.seeds:
        points = [(d, hit.time_to_target()) for d, hit in _points(found, depths, seed)]
        slope = censored_slope(points)
        if slope is not None:
            out[seed] = Value(seed, slope.value, slope.bound)
    return out


def _ends(evidence: Evidence, found: dict[float, dict[int, Hit]], depths: list[float]
          ) -> dict[int, tuple[float, float]]:  # fmt: skip
    """Seed -> (low, high) of the slopes the seed's interval-censored times allow."""
    return {seed: slope_ends(_points(found, depths, seed)) for seed in evidence.seeds}


def draw(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "depth: steps to target against the number of blocks", width=6.0)
    depths = [float(d) for d in evidence.values(DEPTH)]
    found, _ = _hits(evidence, depths)  # the times the rule reads: to the relative target
    times_by_x(ax, evidence, DEPTH, depths, list(ARMS), log_x=True,
               times_at=lambda arm, depth: _times(found[arm][float(depth)]))  # fmt: skip
    ax.set_xlabel("hidden blocks")
    return fig


CLAIM = Claim(
    id="depth",
    statement="Without batch norm, deeper networks train slower.",
    source="common tutorial claim",
    measures="slope of log steps-to-target against log depth (2 to 16 blocks), BN vs no BN",
    runtime="full 80 s, quick 20 s",
    effect=0.25,  # steps growing as depth**0.25
    quick=Reduction(grid={DEPTH: [2, 8]}),
    arms=ARMS,
    family="a stack of identical ReLU dense layers, whose number it varies",
    assess=assess,
    draw=draw,
)
