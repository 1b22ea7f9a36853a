"""init_scale: batch norm makes training less sensitive to the weight initialization.

Per seed, the range of final test accuracy across initial weights N(0, σ²) over two decades
of σ (a diverged run scores chance), no BN − BN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import by_x, figure
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import differences_of, finding, fmt, mean_of

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STDDEV = "model.initializer.stddev"


def assess(evidence: Evidence) -> Assessment:
    """Per seed, the range of final test accuracy across init scales; no BN − BN."""
    spreads = {arm: _spread(evidence, arm) for arm in ("no_bn", "bn")}
    values = differences_of(spreads["no_bn"], spreads["bn"])
    scales = ", ".join(f"{s:g}" for s in evidence.values(STDDEV))
    statistic = "range (max − min) of final test accuracy across init scales, no BN − BN"
    sentences = [f"Initial weights N(0, σ²) with σ in {scales}; a diverged run scores chance."]
    for arm in ("no_bn", "bn"):
        sentences.append(f"{arm}: mean range {fmt(mean_of(spreads[arm]))} across scales.")
    return Assessment([finding("", statistic, values, 0.0, "above")], sentences)


def _accuracy_or_chance(evidence: Evidence, arm: str, cell: dict[str, float]) -> dict[int, float]:
    rows = evidence.where(arm, cell)
    out = {}
    for seed, status, score, chance in zip(rows["seed"], rows["status"],
                                           rows["final_test_metric"], rows["chance_accuracy"],
                                           strict=True):  # fmt: skip
        value = float(chance) if status == "diverged" and chance is not None else float(score)
        out[int(seed)] = value
    return out


def _spread(evidence: Evidence, arm: str) -> dict[int, float]:
    scales = [float(s) for s in evidence.values(STDDEV)]
    table: dict[int, list[float]] = {}
    for scale in scales:
        for seed, value in _accuracy_or_chance(evidence, arm, {STDDEV: scale}).items():
            table.setdefault(seed, []).append(value)
    return {seed: float(np.ptp(v)) for seed, v in table.items()
            if len(v) == len(scales) and np.all(np.isfinite(v))}  # fmt: skip


def draw(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "initialization scale: final test accuracy", width=6.0)
    scales = evidence.values(STDDEV)
    by_x(ax, evidence, lambda arm, s: _accuracy_or_chance(evidence, arm, {STDDEV: s}), scales,
         ["no_bn", "bn"], log_x=True)  # fmt: skip
    ax.set_xlabel("σ of the initial weights N(0, σ²)")
    ax.set_ylabel("final test accuracy (diverged: chance)")
    return fig


CLAIM = Claim(
    id="init_scale",
    statement="Batch norm makes training less sensitive to the weight initialization.",
    source="common tutorial claim",
    measures="range of final test accuracy across initial weights N(0, σ²), σ over two decades",
    runtime="full 45 s, quick 15 s",
    quick=Reduction(grid={STDDEV: [0.01, 0.1, 1.0]}),
    arms=("no_bn", "bn"),
    keeps=("model.initializer",),  # the initial scale is the question
    assess=assess,
    draw=draw,
)
