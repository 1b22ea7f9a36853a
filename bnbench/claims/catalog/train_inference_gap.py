"""train_inference_gap: batch norm networks score worse in inference mode than in training
mode, the more so at high momentum and small batches (Keras/TensorFlow user reports).

Validation accuracy in training mode − inference mode (moving statistics), against the BN
momentum and the batch size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import by_x, figure
from bnbench.claims.evidence import Cell, Evidence
from bnbench.claims.measures import finding, fmt, mean_of, minus, per_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BATCH = "training.batch_size"
MOMENTUM = "model.norm.momentum"


def inference_gaps(evidence: Evidence, cell: Cell) -> dict[int, float]:
    """Seed -> validation accuracy in training mode − in inference mode (moving statistics)."""
    train = evidence.by_seed("final.val_train_mode_accuracy", "bn", cell)
    return minus(train, evidence.by_seed("final_val_metric", "bn", cell))


def _averaged(evidence: Evidence, key: str, value: float, other: str) -> dict[int, float]:
    """Seed -> gap at `key` = value, averaged over the values of the `other` grid key."""
    others = evidence.values(other) or [None]
    table: dict[int, list[float]] = {}
    for o in others:
        cell = {key: value} if o is None else {key: value, other: o}
        for seed, gap in inference_gaps(evidence, cell).items():
            table.setdefault(seed, []).append(gap)
    return {s: float(np.mean(v)) for s, v in table.items() if len(v) == len(others)}


def assess(evidence: Evidence) -> Assessment:
    momenta = [float(m) for m in evidence.values(MOMENTUM)]
    high = _averaged(evidence, MOMENTUM, max(momenta), BATCH)
    low = _averaged(evidence, MOMENTUM, min(momenta), BATCH)
    findings = [finding(f"grows with momentum ({min(momenta):g} → {max(momenta):g})",
                        "val. accuracy, training − inference mode, high − low momentum",
                        per_seed(minus(high, low)), 0.0, "above")]  # fmt: skip
    sizes = [int(b) for b in evidence.values(BATCH)]
    if len(sizes) > 1:
        small = _averaged(evidence, BATCH, min(sizes), MOMENTUM)
        large = _averaged(evidence, BATCH, max(sizes), MOMENTUM)
        findings.append(finding(f"grows at small batches ({max(sizes)} → {min(sizes)})",
                                "val. accuracy, training − inference mode, small − large batch",
                                per_seed(minus(small, large)), 0.0, "above"))  # fmt: skip
    sentences = [f"momentum {m:g}: mean gap {fmt(mean_of(_averaged(evidence, MOMENTUM, m, BATCH)))}"
                 " (training-mode minus inference-mode validation accuracy)."
                 for m in momenta]  # fmt: skip
    return Assessment(findings, sentences)


def draw(evidence: Evidence) -> Figure:
    fig, (ax,) = figure(1, "train/inference gap against BN momentum", width=6.0)
    label = {"bn": "BN (mean over batch sizes)"}
    by_x(ax, evidence, lambda arm, m: _averaged(evidence, MOMENTUM, m, BATCH),
         evidence.values(MOMENTUM), ["bn"], labels=label)  # fmt: skip
    ax.set_xlabel("BN momentum")
    ax.set_ylabel("val. accuracy: training − inference mode")
    return fig


CLAIM = Claim(
    id="train_inference_gap",
    statement=(
        "Batch norm networks score worse in inference mode than in training mode, the more "
        "so at high momentum and small batches."
    ),
    source="Keras/TensorFlow user reports",
    measures=(
        "validation accuracy in training mode − inference mode, against momentum and batch size"
    ),
    runtime="full 35 s, quick 15 s",
    quick=Reduction(grid={MOMENTUM: [0.9, 0.999], BATCH: [32]}),
    arms=("bn",),
    assess=assess,
    draw=draw,
)
