"""regularization: batch norm regularizes, and may replace dropout (Ioffe & Szegedy 2015).

On a small training set: the test − train *loss* gap, no BN − BN, and BN's test accuracy
against dropout's with a non-inferiority margin. A diverged run scores chance.

Why a loss gap: every arm fits its 180 training digits perfectly (train accuracy 1.000 in every
run of both arms), so a train − test accuracy gap is only a test-accuracy difference. The loss
keeps moving after accuracy saturates (confidence on the training set versus the test set), so
its gap can differ between arms. Test-set error: every seed is scored on the same 360 test
digits, whose binomial error (SE ≈ 0.011 per accuracy, the size of the 0.02 margin) does not
average out over seeds, so the margin finding's interval is widened by it in quadrature
(`measures.with_test_set_error`); per-example results are not recorded, so no bootstrap over
test examples.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import colours, figure, paired_points
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import (
    accuracy,
    binomial_difference_se,
    finding,
    fmt,
    mean_of,
    minus,
    per_seed,
    with_test_set_error,
)
from bnbench.claims.verdicts import decide, interval

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# regularization: BN "may replace dropout" when its test accuracy is no more than this below
# dropout's (a non-inferiority margin, 2 points of accuracy).
REPLACE_MARGIN = 0.02
ARMS = ("no_bn", "bn", "dropout", "bn_dropout")
# The test split of digits as mlp_digits.yaml loads it (20% of 1,797); the test set's size is
# not in the results tree, so it is declared with the config it belongs to.
TEST_EXAMPLES = 360


def _probe_last(evidence: Evidence, arm: str, column: str) -> dict[int, float]:
    """Seed -> `column` of the training probe (inference mode) at the last recorded step."""
    rows = evidence.diagnostics("train_inference_gap")
    rows = rows[rows["arm"] == arm]
    out = {}
    for seed, part in rows.groupby("seed"):
        last = part.sort_values("step").iloc[-1]
        out[int(seed)] = float(last[column])
    return out


def train_accuracy(evidence: Evidence, arm: str) -> dict[int, float]:
    """Seed -> inference-mode accuracy on the training probe at the last recorded step."""
    return _probe_last(evidence, arm, "inference_mode_metric")


def generalization_gaps(evidence: Evidence, arm: str) -> dict[int, float]:
    """Seed -> final test loss − inference-mode loss on the training probe (a diverged run, with
    no test loss, is left out)."""
    test_loss = evidence.by_seed("final_test_loss", arm, completed=True)
    return minus(test_loss, _probe_last(evidence, arm, "inference_mode_loss"))


def assess(evidence: Evidence) -> Assessment:
    gaps = {arm: generalization_gaps(evidence, arm) for arm in ARMS}
    tests = {arm: accuracy(evidence, arm) for arm in ARMS}
    replace = finding(f"may replace dropout (margin {REPLACE_MARGIN:g})",
                      "test accuracy, BN − dropout (± test-set error)",
                      per_seed(minus(tests["bn"], tests["dropout"])), -REPLACE_MARGIN, "above")
    se = binomial_difference_se(mean_of(tests["bn"]), mean_of(tests["dropout"]), TEST_EXAMPLES)
    widened = with_test_set_error(interval(per_seed(minus(tests["bn"], tests["dropout"]))), se)
    replace = dataclasses.replace(replace, interval=widened,
                                  verdict=decide(widened, -REPLACE_MARGIN, "above"))
    findings = [
        finding("smaller generalization gap", "test − train loss gap, no BN − BN",
                per_seed(minus(gaps["no_bn"], gaps["bn"])), 0.0, "above"),
        replace,
    ]  # fmt: skip
    sentences = [
        f"{arm}: train accuracy {fmt(mean_of(train_accuracy(evidence, arm)))}, test accuracy "
        f"{fmt(mean_of(tests[arm]))}, test − train loss gap {fmt(mean_of(gaps[arm]))}."
        for arm in ARMS
    ]
    sentences.append(
        f"The margin finding's interval includes the test set's binomial error (SE "
        f"{fmt(se)} on {TEST_EXAMPLES} test examples), which seeds do not average out."
    )
    return Assessment(findings, sentences)


def draw(evidence: Evidence) -> Figure:
    fig, (left, right) = figure(2, "regularization on a small training set")
    paired_points(left, [(a, generalization_gaps(evidence, a)) for a in ARMS],
                  "test − train loss", colours(evidence))  # fmt: skip
    paired_points(right, [(a, accuracy(evidence, a)) for a in ARMS],
                  "test accuracy", colours(evidence))  # fmt: skip
    return fig


CLAIM = Claim(
    id="regularization",
    statement="Batch norm regularizes, and may replace dropout.",
    source="Ioffe & Szegedy 2015; common tutorial claim",
    measures=(
        "test − train loss gap on a small training set; test accuracy of BN vs dropout vs both"
    ),
    runtime="full 20 s, quick 15 s",
    quick=Reduction(),
    arms=ARMS,
    assess=assess,
    draw=draw,
)
