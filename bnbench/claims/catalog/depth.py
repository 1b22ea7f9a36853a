"""depth: without batch norm, deeper networks train slower.

Per seed, the slope of log2(steps to target) against log2(depth) (censored times make it a
bound): the no-BN slope, and its difference no BN − BN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bnbench.analysis.paired import TimeToTarget
from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import figure, times_by_x
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import censored_slope, finding, reached, subtract, target_words
from bnbench.claims.relative import absolute, derive, times_to
from bnbench.claims.verdicts import Value

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEPTH = "model.blocks.0.repeat"


def assess(evidence: Evidence) -> Assessment:
    """Slope of log2 steps-to-target against log2 depth, per arm, and its difference."""
    depths = [float(d) for d in evidence.values(DEPTH)]
    times, target = _times(evidence, depths)
    slopes = {arm: _slopes(evidence, times[arm], depths) for arm in ("no_bn", "bn")}
    statistic = "slope of log2(steps to target) against log2(depth)"
    findings = [
        finding("without BN", f"{statistic}, no BN", list(slopes["no_bn"].values()), 0.0,
                "above", digits=2),
        finding("BN removes the penalty", f"{statistic}, no BN − BN",
                subtract(slopes["no_bn"], slopes["bn"]), 0.0, "above", digits=2),
    ]  # fmt: skip
    sentences = [f"Depths (hidden blocks): {', '.join(f'{d:g}' for d in depths)}; {target}."]
    for arm in ("no_bn", "bn"):
        parts = [_depth_summary(times[arm][d], d) for d in depths]
        sentences.append(f"{arm}: " + "; ".join(parts) + ".")
    return Assessment(findings, sentences)


def _depth_summary(times: dict[int, TimeToTarget], depth: float) -> str:
    """E.g. "8 blocks: 3/3 seeds reached the target, after 560 steps on average"."""
    steps = [t.steps for t in times.values() if t.steps is not None]
    after = f", after {np.mean(steps):.0f} steps on average" if steps else ""
    return f"{depth:g} blocks: {reached(times)}{after}"


Times = dict[str, dict[float, dict[int, TimeToTarget]]]


def _times(evidence: Evidence, depths: list[float]) -> tuple[Times, str]:
    """Arm -> depth -> seed -> steps to the target, and the target in words. The target is
    relative (`bnbench.claims.relative`), one for every depth and arm: FRACTION of the way from
    chance to the slower arm's plateau at the shallowest depth (a depth every arm learns at),
    unless the runs recorded an absolute one."""
    arms = ("no_bn", "bn")
    if absolute(evidence) or not depths:
        found = {arm: {d: evidence.times(arm, {DEPTH: d}) for d in depths} for arm in arms}
        return found, target_words(evidence)
    target = derive(evidence, arms, {DEPTH: depths[0]})
    found = {arm: {d: times_to(evidence, arm, target, {DEPTH: d}) for d in depths}
             for arm in arms}  # fmt: skip
    words = (f"{target.describe()}, at depth {depths[0]:g}" if target
             else "no arm learned anything at the shallowest depth, so no target")  # fmt: skip
    return found, words


def _slopes(evidence: Evidence, times: dict[float, dict[int, TimeToTarget]], depths: list[float]
            ) -> dict[int, Value]:  # fmt: skip
    out = {}
    for seed in evidence.seeds:
        points = [(d, t) for d in depths for s, t in times[d].items() if s == seed]
        slope = censored_slope(points)
        if slope is not None:
            out[seed] = Value(seed, slope.value, slope.bound)
    return out


def draw(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "depth: steps to target against the number of blocks", width=6.0)
    times_by_x(ax, evidence, DEPTH, evidence.values(DEPTH), ["no_bn", "bn"], log_x=True)
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
    arms=("no_bn", "bn"),
    family="a stack of identical ReLU dense layers, whose number it varies",
    assess=assess,
    draw=draw,
)
