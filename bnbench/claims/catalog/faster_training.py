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
from bnbench.claims.measures import finding, fmt, log_speedups, reached, target_words

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def assess(evidence: Evidence) -> Assessment:
    """Paired ratio of steps to target, no BN / BN, under moving and recalibrated statistics."""
    reference = evidence.times("no_bn")
    findings, sentences = [], []
    target = target_words(evidence)
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


def draw(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "faster training: validation accuracy against steps", width=6.0)
    curves(ax, evidence, "val_accuracy", ["no_bn", "bn_moving", "bn_recalibrated"])
    value = evidence.runs["target_value"].dropna()
    if len(value):
        ax.axhline(float(value.iloc[0]), color="0.4", ls=":", lw=1, label="target")
    ax.set_ylabel("validation accuracy (seed mean)")
    ax.legend(fontsize=7, frameon=False)
    return fig


CLAIM = Claim(
    id="faster_training",
    statement="Batch norm reaches a target accuracy in fewer steps.",
    source="Ioffe & Szegedy 2015",
    measures=(
        "paired ratio of steps to 90% validation accuracy (no BN / BN), censored runs as "
        "bounds, under moving and recalibrated BN statistics"
    ),
    runtime="full 25 s, quick 15 s",
    effect=0.25,  # 1.25x fewer steps
    quick=Reduction(),
    arms=("no_bn", "bn_moving", "bn_recalibrated"),
    assess=assess,
    draw=draw,
)
