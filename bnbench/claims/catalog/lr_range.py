"""lr_range: batch norm allows higher learning rates (Ioffe & Szegedy 2015; Bjorck et al. 2018).

Two findings per seed over a grid of learning rates: how many decades of rates train within
`WITHIN_BEST` of the best one, and the largest rate that works (`WORKS`), BN − no BN.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import by_x, figure
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import differences_of, finding, fmt, mean_of, subtract
from bnbench.claims.verdicts import Bound, Value

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# higher_learning_rates: a rate is "good" when its final validation accuracy is within this of the
# arm's best rate for the same seed (5 points of accuracy: clearly trained, not just not broken).
WITHIN_BEST = 0.05
# A rate "works" when its run did not diverge and ended at least this fraction of the way from
# chance to the seed's best accuracy: a run that did not blow up but sits at chance (the loss
# rule lets such runs finish) does not count as training at that rate.
WORKS = 0.5
LEARNING_RATE = "training.learning_rate"


def assess(evidence: Evidence) -> Assessment:
    """Decades of rates within WITHIN_BEST of the best, and the largest working rate."""
    rates = [float(r) for r in evidence.values(LEARNING_RATE)]
    widths = {arm: _widths(evidence, arm, rates) for arm in ("no_bn", "bn")}
    largest = {arm: _largest_stable(evidence, arm, rates) for arm in ("no_bn", "bn")}
    width_values = differences_of(widths["bn"], widths["no_bn"])
    largest_values = subtract(largest["bn"], largest["no_bn"])
    findings = [
        finding("range of good rates",
                f"decades of learning rates within {WITHIN_BEST:g} of the best val. accuracy, "
                "BN − no BN", width_values, 0.0, "above", digits=2),
        finding("largest working rate",
                "log10 of the largest rate that neither diverges nor stays near chance, "
                "BN − no BN (decades)", largest_values, 0.0, "above", digits=2),
    ]  # fmt: skip
    sentences = [
        f"Rates tried: {', '.join(f'{r:g}' for r in rates)}.",
        *(
            f"{arm}: on average {fmt(mean_of(widths[arm]), 2)} decades of rates within "
            f"{WITHIN_BEST:g} of its best; {_diverged(evidence, arm)}."
            for arm in ("no_bn", "bn")
        ),
    ]
    return Assessment(findings, sentences)


def _widths(evidence: Evidence, arm: str, rates: list[float]) -> dict[int, float]:
    """Seed -> decades spanned by the rates whose final val. accuracy is within WITHIN_BEST."""
    scores: dict[int, dict[float, float]] = {}
    for rate in rates:
        rows = evidence.where(arm, {LEARNING_RATE: rate})
        for seed, status, score in zip(rows["seed"], rows["status"], rows["final_val_metric"],
                                       strict=True):  # fmt: skip
            value = float(score) if status == "completed" else math.nan
            scores.setdefault(int(seed), {})[rate] = value
    out = {}
    for seed, by_rate in scores.items():
        finite = {r: v for r, v in by_rate.items() if math.isfinite(v)}
        if not finite:
            continue
        best = max(finite.values())
        good = [r for r, v in finite.items() if v >= best - WITHIN_BEST]
        out[seed] = math.log10(max(good)) - math.log10(min(good))
    return out


def _largest_stable(evidence: Evidence, arm: str, rates: list[float]) -> dict[int, Value]:
    """Seed -> log10 of the largest rate that works (`WORKS`), a bound at the grid's ends."""
    out: dict[int, Value] = {}
    chances = evidence.by_seed("chance_accuracy", arm)
    for seed in sorted(chances):
        scores = {r: evidence.by_seed("final_val_metric", arm, {LEARNING_RATE: r}, True)
                  .get(seed, math.nan) for r in rates}  # fmt: skip
        finite = [v for v in scores.values() if math.isfinite(v)]
        stable: list[float] = []
        if finite and math.isfinite(chances[seed]):
            floor = chances[seed] + WORKS * (max(finite) - chances[seed])
            stable = [r for r, v in scores.items() if math.isfinite(v) and v >= floor]
        bound: Bound
        if not stable:  # every rate diverged: the largest working one is below the grid
            value, bound = math.log10(min(rates)), "upper"
        else:
            value = math.log10(max(stable))
            bound = "lower" if max(stable) == max(rates) else "exact"
        out[seed] = Value(seed, value, bound)
    return out


def _diverged(evidence: Evidence, arm: str) -> str:
    rows = evidence.where(arm)
    bad = rows[rows["status"] == "diverged"]
    rates = sorted({float(r) for r in bad[f"grid.{LEARNING_RATE}"]})
    shown = ", ".join(f"{r:g}" for r in rates) or "none"
    return f"{len(bad)} of {len(rows)} runs diverged (rates: {shown})"


def draw(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "learning-rate range: final validation accuracy", width=6.0)
    rates = evidence.values(LEARNING_RATE)
    by_x(ax, evidence,
         lambda arm, r: evidence.by_seed("final_val_metric", arm, {LEARNING_RATE: r}, True),
         rates, ["no_bn", "bn"], log_x=True)  # fmt: skip
    ax.set_xlabel("learning rate (diverged runs: no dot)")
    ax.set_ylabel("final validation accuracy")
    return fig


CLAIM = Claim(
    id="lr_range",
    statement="Batch norm allows higher learning rates.",
    source="Ioffe & Szegedy 2015; Bjorck et al. 2018",
    measures=(
        "decades of learning rates within 0.05 of the best validation accuracy; largest "
        "non-diverging rate (BN vs no BN)"
    ),
    runtime="full 70 s, quick 20 s",
    effect=0.5,  # half a decade of rates: the full grid's step
    quick=Reduction(grid={LEARNING_RATE: [0.01, 0.1, 1.0, 10.0]}),
    arms=("no_bn", "bn"),
    assess=assess,
    draw=draw,
)
