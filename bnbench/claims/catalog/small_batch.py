"""small_batch: batch norm is weak at small batches; group (or layer) norm is the alternative
(Wu & He 2018).

BN vs group norm across batch sizes. The budget (steps or examples) is read from the runs,
so the same rule decides small_batch_examples. A diverged run scores chance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import by_x, figure
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import accuracy, differences, finding, fmt, mean_of, minus, per_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BATCH = "training.batch_size"


def assess(evidence: Evidence) -> Assessment:
    """BN vs group norm across batch sizes; the budget (steps or examples) is read from the runs,
    so the same rule decides small_batch and small_batch_examples."""
    sizes = [int(b) for b in evidence.values(BATCH)]
    small, large = {BATCH: min(sizes)}, {BATCH: max(sizes)}
    drops = {arm: minus(accuracy(evidence, arm, large), accuracy(evidence, arm, small))
             for arm in evidence.tree.arms}  # fmt: skip
    findings = [
        finding(f"BN loses more from batch {max(sizes)} to {min(sizes)}",
                "accuracy drop (large − small batch), BN − group norm",
                per_seed(minus(drops["batch"], drops["group"])), 0.0, "above"),
        finding(f"group norm better at batch {min(sizes)}",
                f"test accuracy at batch {min(sizes)}, group norm − BN",
                differences(evidence, "final_test_metric", "group", "batch", small), 0.0, "above"),
    ]  # fmt: skip
    sentences = [f"Every run has {batch_budget(evidence, sizes)}; batch sizes {sizes}."]
    for arm in evidence.tree.arms:
        means = [fmt(mean_of(accuracy(evidence, arm, {BATCH: b}))) for b in sizes]
        sentences.append(f"{arm} norm: test accuracy {' → '.join(means)} (batch {sizes}).")
    return Assessment(findings, sentences)


def batch_budget(evidence: Evidence, sizes: list[int]) -> str:
    """What the runs hold fixed across batch sizes, from their step counts: "the same number of
    steps (300)" or "the same number of examples (4,320: 2,160 steps at batch 2 … 68 at 64)"."""
    steps = {b: sorted({int(t) for t in evidence.where(None, {BATCH: b})["total_steps"].dropna()})
             for b in sizes}  # fmt: skip
    counts = sorted({n for found in steps.values() for n in found})
    if len(counts) == 1:
        return f"the same number of steps ({counts[0]:,})"
    examples = sorted({b * n for b, found in steps.items() for n in found})
    span = f"{examples[0]:,}" if len(examples) == 1 else f"{examples[0]:,}–{examples[-1]:,}"
    ends = [f"{', '.join(f'{n:,}' for n in steps[b])} steps at batch {b}"
            for b in (min(sizes), max(sizes))]  # fmt: skip
    return f"the same number of examples ({span}: {' … '.join(ends)})"


def draw(evidence: Evidence) -> Figure:
    sizes = [int(b) for b in evidence.values(BATCH)]
    budget = batch_budget(evidence, sizes).split(" (")[0].removeprefix("the same ")
    fig, (ax,) = figure(1, f"accuracy against batch size at a fixed {budget}", width=6.0)
    by_x(ax, evidence, lambda arm, b: accuracy(evidence, arm, {BATCH: b}),
         evidence.values(BATCH), list(evidence.tree.arms), log_x=True)  # fmt: skip
    ax.set_xlabel("batch size")
    ax.set_ylabel("final test accuracy")
    return fig


CLAIM = Claim(
    id="small_batch",
    statement="Batch norm is weak at small batches; group (or layer) norm is the alternative.",
    source="Wu & He 2018",
    measures="test accuracy against batch size at a fixed number of steps, BN vs GN (vs LN)",
    runtime="full 90 s, quick 20 s",
    quick=Reduction(grid={BATCH: [2, 64]}, arms=["batch", "group"]),
    arms=("batch", "group"),
    assess=assess,
    draw=draw,
)
