"""regularization: batch norm regularizes, and may replace dropout (Ioffe & Szegedy 2015).

On a small training set: the train − test accuracy gap, no BN − BN, and BN's test accuracy
against dropout's with a non-inferiority margin. A diverged run scores chance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import colours, figure, paired_points
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import accuracy, finding, fmt, mean_of, minus, per_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# regularization: BN "may replace dropout" when its test accuracy is no more than this below
# dropout's (a non-inferiority margin, 2 points of accuracy).
REPLACE_MARGIN = 0.02
ARMS = ("no_bn", "bn", "dropout", "bn_dropout")


def train_accuracy(evidence: Evidence, arm: str) -> dict[int, float]:
    """Seed -> inference-mode accuracy on the training probe at the last recorded step."""
    rows = evidence.diagnostics("train_inference_gap")
    rows = rows[rows["arm"] == arm]
    out = {}
    for seed, part in rows.groupby("seed"):
        last = part.sort_values("step").iloc[-1]
        out[int(seed)] = float(last["inference_mode_metric"])
    return out


def generalization_gaps(evidence: Evidence, arm: str) -> dict[int, float]:
    """Seed -> train accuracy (inference mode, training probe) − test accuracy."""
    return minus(train_accuracy(evidence, arm), accuracy(evidence, arm))


def assess(evidence: Evidence) -> Assessment:
    gaps = {arm: generalization_gaps(evidence, arm) for arm in ARMS}
    tests = {arm: accuracy(evidence, arm) for arm in ARMS}
    findings = [
        finding("smaller generalization gap", "train − test accuracy gap, no BN − BN",
                per_seed(minus(gaps["no_bn"], gaps["bn"])), 0.0, "above"),
        finding(f"may replace dropout (margin {REPLACE_MARGIN:g})",
                "test accuracy, BN − dropout", per_seed(minus(tests["bn"], tests["dropout"])),
                -REPLACE_MARGIN, "above"),
    ]  # fmt: skip
    sentences = [
        f"{arm}: train accuracy {fmt(mean_of(train_accuracy(evidence, arm)))}, test accuracy "
        f"{fmt(mean_of(tests[arm]))}, gap {fmt(mean_of(gaps[arm]))}."
        for arm in ARMS
    ]
    return Assessment(findings, sentences)


def draw(evidence: Evidence) -> Figure:
    fig, (left, right) = figure(2, "regularization on a small training set")
    paired_points(left, [(a, generalization_gaps(evidence, a)) for a in ARMS],
                  "train − test accuracy", colours(evidence))  # fmt: skip
    paired_points(right, [(a, accuracy(evidence, a)) for a in ARMS],
                  "test accuracy", colours(evidence))  # fmt: skip
    return fig


CLAIM = Claim(
    id="regularization",
    statement="Batch norm regularizes, and may replace dropout.",
    source="Ioffe & Szegedy 2015; common tutorial claim",
    measures=(
        "train − test accuracy gap on a small training set; test accuracy of BN vs dropout vs both"
    ),
    runtime="full 20 s, quick 15 s",
    quick=Reduction(),
    arms=ARMS,
    assess=assess,
    draw=draw,
)
