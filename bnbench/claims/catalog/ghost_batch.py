"""ghost_batch: ghost batch norm improves generalization in large-batch training (Hoffer et al.
2017).

Paired final test accuracy at batch 256, ghost BN (virtual batches of 16) − BN; a diverged
run scores chance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import colours, figure, paired_points
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import accuracy, differences, finding, fmt, mean_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def assess(evidence: Evidence) -> Assessment:
    values = differences(evidence, "final_test_metric", "ghost_bn", "bn")
    findings = [finding("", "test accuracy, ghost BN − BN", values, 0.0, "above")]
    sentences = [f"{arm}: test accuracy {fmt(mean_of(accuracy(evidence, arm)))}."
                 for arm in ("bn", "ghost_bn")]  # fmt: skip
    return Assessment(findings, sentences)


def draw(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "ghost batch norm at a large batch", width=5.0)
    paired_points(ax, [(a, accuracy(evidence, a)) for a in ("bn", "ghost_bn")], "test accuracy",
                  colours(evidence))  # fmt: skip
    return fig


CLAIM = Claim(
    id="ghost_batch",
    statement="Ghost batch norm improves generalization in large-batch training.",
    source="Hoffer et al. 2017",
    measures="test accuracy at batch 256, ghost BN (virtual batches of 16) vs BN",
    runtime="full 15 s, quick 15 s",
    quick=Reduction(),
    arms=("bn", "ghost_bn"),
    assess=assess,
    draw=draw,
)
