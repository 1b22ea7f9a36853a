"""placement: BN before the activation is better for sigmoid; for ReLU the placement is
negligible (Ioffe & Szegedy 2015; a long-running practitioner debate).

Paired test accuracy, BN before − after the activation; for ReLU an equivalence test (TOST)
with the margin `PLACEMENT_MARGIN`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnbench.claims.claim import Assessment, Claim, Finding, Reduction
from bnbench.claims.drawing import colours, figure, paired_points
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import accuracy, differences, finding, fmt, mean_of
from bnbench.claims.verdicts import equivalence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# placement: with ReLU the two placements are "negligibly" different within ±2 points (TOST).
PLACEMENT_MARGIN = 0.02
ACTIVATION = "model.activation"


def assess(evidence: Evidence) -> Assessment:
    sigmoid, relu = {ACTIVATION: "sigmoid"}, {ACTIVATION: "relu"}
    before_better = finding("sigmoid: before is better",
                            "test accuracy, BN before − after the sigmoid",
                            differences(evidence, "final_test_metric", "before", "after", sigmoid),
                            0.0, "above")  # fmt: skip
    relu_values = differences(evidence, "final_test_metric", "before", "after", relu)
    test = equivalence(relu_values, PLACEMENT_MARGIN)
    negligible = Finding(
        f"ReLU: negligible (TOST, margin ±{PLACEMENT_MARGIN:g})",
        "test accuracy, BN before − after the ReLU (90% CI)",
        test.interval90,
        PLACEMENT_MARGIN,
        f"supported if the 90% CI lies within ±{PLACEMENT_MARGIN:g} (TOST at 5%); not "
        f"supported if the 95% CI lies outside ±{PLACEMENT_MARGIN:g}; otherwise inconclusive",
        test.verdict,
        p_value=test.p_value,
        values=tuple(relu_values),
    )
    sentences = []
    for words, cell in (("sigmoid", sigmoid), ("ReLU", relu)):
        means = {arm: fmt(mean_of(accuracy(evidence, arm, cell))) for arm in ("before", "after")}
        sentences.append(f"{words}: test accuracy {means['before']} before vs "
                         f"{means['after']} after the activation.")  # fmt: skip
    if test.p_value is not None:
        sentences.append(f"TOST p-value (ReLU): {test.p_value:.3f}.")
    return Assessment([before_better, negligible], sentences)


def draw(evidence: Evidence) -> Figure:
    fig, axes = figure(2, "BN before vs after the activation: test accuracy")
    for ax, activation in zip(axes, ("sigmoid", "relu"), strict=True):
        cell = {ACTIVATION: activation}
        paired_points(ax, [(arm, accuracy(evidence, arm, cell)) for arm in ("before", "after")],
                      f"test accuracy ({activation})", colours(evidence))  # fmt: skip
    return fig


CLAIM = Claim(
    id="placement",
    statement="Before the activation is better for sigmoid; for ReLU the placement is negligible.",
    source="Ioffe & Szegedy 2015; long-running practitioner debate",
    measures="paired test accuracy, BN before − after the activation; TOST for ReLU",
    runtime="full 40 s, quick 20 s",
    quick=Reduction(),
    arms=("before", "after"),
    assess=assess,
    draw=draw,
)
