"""faster_training: batch norm reaches a target accuracy in fewer steps (Ioffe & Szegedy 2015).

The verdict is the paired ratio of steps to the target, no BN / BN, once with BN evaluated
on its moving statistics and once on recalibrated ones; a run that never got there is
censored at its budget, and the ratio of a seed is then a bound.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import curves, figure
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import (
    fmt,
    hits,
    reached,
    resolution_sentence,
    speedup_finding,
    target_words,
)
from bnbench.claims.relative import absolute, relative_times

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bnbench.analysis.paired import TimeToTarget

ARMS = ("no_bn", "bn_moving", "bn_recalibrated")


def assess(evidence: Evidence) -> Assessment:
    """Paired ratio of steps to target, no BN / BN, under moving and recalibrated statistics."""
    all_times, target = _times(evidence)
    reference = all_times["no_bn"]
    reference_hits = hits(evidence, "no_bn", times=reference)
    every_hits = []
    findings, sentences = [], []
    sentences.append(f"Without BN, {reached(reference)} ({target}).")
    for arm, words in (("bn_recalibrated", "recalibrated"), ("bn_moving", "moving")):
        times = all_times[arm]
        arm_hits = hits(evidence, arm, times=times)
        every_hits.append(arm_hits)
        statistic = f"steps to target, no BN / BN ({words} BN statistics), geometric mean"
        findings.append(speedup_finding(f"{words} BN statistics", statistic, arm_hits,
                                        reference_hits))  # fmt: skip
        exact = [t.steps for t in times.values() if t.steps is not None]
        mean_steps = fmt(float(np.mean(exact)), 0) if exact else "n/a"
        sentences.append(
            f"With BN evaluated with {words} statistics, {reached(times)}, after {mean_steps} "
            f"steps on average (seeds that reached it)."
        )
    if (note := resolution_sentence(reference_hits, *every_hits)) is not None:
        sentences.append(note)
    return Assessment(findings, sentences)


def _times(evidence: Evidence) -> tuple[dict[str, dict[int, TimeToTarget]], str]:
    """Each arm's steps to the target, and the target in words: relative (FRACTION of the way
    from chance to the slower arm's plateau), unless the runs recorded an absolute one."""
    if absolute(evidence):
        return {arm: evidence.times(arm) for arm in ARMS}, target_words(evidence)
    target, times = relative_times(evidence, ARMS)
    words = target.describe() if target else "no arm learned anything, so no target"
    return times, words


def draw(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "faster training: validation accuracy against steps", width=6.0)
    curves(ax, evidence, "val_accuracy", ["no_bn", "bn_moving", "bn_recalibrated"])
    value = evidence.runs["target_value"].dropna()
    target = float(value.iloc[0]) if len(value) else None
    if target is None and (relative := relative_times(evidence, ARMS)[0]) is not None:
        target = relative.value
    if target is not None:
        ax.axhline(target, color="0.4", ls=":", lw=1, label="target")
    ax.set_ylabel("validation accuracy (seed mean)")
    ax.legend(fontsize=7, frameon=False)
    return fig


CLAIM = Claim(
    id="faster_training",
    statement="Batch norm reaches a target accuracy in fewer steps.",
    source="Ioffe & Szegedy 2015",
    measures=(
        "paired ratio of steps to a relative target (90% of the way from chance to the slower "
        "arm's plateau; no BN / BN), censored runs as bounds, under moving and recalibrated "
        "BN statistics"
    ),
    runtime="full 25 s, quick 15 s",
    effect=0.25,  # 1.25x fewer steps
    quick=Reduction(),
    arms=ARMS,
    assess=assess,
    draw=draw,
)
