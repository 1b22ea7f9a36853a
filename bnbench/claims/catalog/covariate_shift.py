"""covariate_shift: batch norm stabilizes layer-input distributions (Ioffe & Szegedy 2015,
Fig. 1), against: it does not reduce internal covariate shift (Santurkar et al. 2018).

Reads `diagnostics/activation_percentiles.csv`, recorded on a fixed probe batch in training
mode: the drift of the last block's percentiles over training, no BN − BN. Ioffe & Szegedy's
finding reads the nonlinearity's input (their Fig. 1: with BN, BN's output); Santurkar et al.'s
reads BN's *input* (rows labelled `<block>_norm`): BN's output is standardized per batch by
construction, so "BN does not reduce the drift" there would refute a claim nobody made, while
at its input the question is whether the layers below BN drift less when BN is present.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from bnbench.claims.claim import Assessment, Claim, Finding, Reduction
from bnbench.claims.drawing import figure
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import finding, fmt, mean_of, per_seed
from bnbench.claims.verdicts import Value, equivalence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# covariate_shift: "does not reduce" is read as a reduction within ±0.1 of the initial spread
# (15th to 85th percentile) of the layer input: an equivalence margin declared up front.
SHIFT_MARGIN = 0.1


def drifts(evidence: Evidence, arm: str, norm_input: bool = False) -> dict[int, float]:
    """Seed -> mean |percentile at the end − at step 0| over the recorded percentiles, in units
    of the initial 15th-to-85th percentile range; of the nonlinearity's input, or with
    `norm_input` of the normalization's input (rows whose layer ends in `_norm`)."""
    rows = evidence.diagnostics("activation_percentiles")
    at_norm = rows["layer"].astype(str).str.endswith("_norm")
    rows = rows[(rows["arm"] == arm) & (at_norm if norm_input else ~at_norm)]
    columns = [c for c in rows.columns if re.fullmatch(r"p[0-9.]+", str(c))]
    out = {}
    for seed, part in rows.groupby("seed"):
        part = part.sort_values("step")
        first, last = part.iloc[0][columns].astype(float), part.iloc[-1][columns].astype(float)
        spread = float(first.max() - first.min())
        if spread > 0:
            out[int(seed)] = float(np.mean(np.abs(last - first))) / spread
    return out


def _reduction(
    evidence: Evidence, norm_input: bool
) -> tuple[dict[str, dict[int, float]], list[Value]]:
    """Per-arm drifts and the per-seed reduction no BN − BN."""
    drift = {arm: drifts(evidence, arm, norm_input) for arm in ("no_bn", "bn")}
    reduction = {s: drift["no_bn"][s] - drift["bn"][s]
                 for s in drift["no_bn"].keys() & drift["bn"].keys()}  # fmt: skip
    return drift, per_seed(reduction)


def assess(evidence: Evidence) -> Assessment:
    drift, values = _reduction(evidence, norm_input=False)
    statistic = "drift of the nonlinearity's input percentiles (in initial spreads), no BN − BN"
    ioffe = finding("Ioffe & Szegedy: BN reduces the drift", statistic, values, 0.0, "above")
    before, at_input = _reduction(evidence, norm_input=True)
    test = equivalence(at_input, SHIFT_MARGIN)
    santurkar = Finding(
        f"Santurkar et al.: BN does not reduce it (TOST, margin ±{SHIFT_MARGIN:g})",
        "drift of BN's input percentiles (in initial spreads), no BN − BN (90% CI)",
        test.interval90,
        SHIFT_MARGIN,
        f"supported if the 90% CI lies within ±{SHIFT_MARGIN:g} (TOST at 5%); not supported "
        f"if the 95% CI lies outside ±{SHIFT_MARGIN:g}; otherwise inconclusive",
        test.verdict,
        p_value=test.p_value,
        values=tuple(values),
    )
    sentences = [
        f"{arm}: the 15th/50th/85th percentiles of the last block's nonlinearity input moved by "
        f"{fmt(mean_of(drift[arm]), 2)} initial spreads from step 0 to the end, its "
        f"pre-normalization input by {fmt(mean_of(before[arm]), 2)}."
        for arm in ("no_bn", "bn")
    ]
    sentences.append(
        "Ioffe & Szegedy's finding reads the nonlinearity's input (BN's output, standardized by "
        "construction); Santurkar et al.'s reads BN's input. Their gradient-based measure of "
        "internal covariate shift is not recorded."
    )
    return Assessment([ioffe, santurkar], sentences)


def draw(evidence: Evidence) -> Figure:
    from bnbench.analysis.panels import Panels

    fig, (ax,) = figure(1, "last block's pre-activation: 15th, 50th, 85th percentiles", width=6.0)
    rows = evidence.diagnostics("activation_percentiles")
    rows = rows[~rows["layer"].astype(str).str.endswith("_norm")]
    panels = Panels(evidence.tree.arms, "std", False)
    panels.percentiles(ax, rows)
    for arm in evidence.tree.arms:
        ax.plot([], [], color=panels.colours[arm], label=f"{arm} (median; 15th-85th shaded)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_xlabel("step")
    ax.set_ylabel("input of the nonlinearity")
    ax.grid(alpha=0.25)
    return fig


CLAIM = Claim(
    id="covariate_shift",
    statement=(
        "Batch norm stabilizes layer-input distributions (vs: it does not reduce internal "
        "covariate shift)."
    ),
    source="Ioffe & Szegedy 2015, Fig. 1; Santurkar et al. 2018",
    measures="drift of the last block's pre-activation percentiles over training",
    runtime="full 20 s, quick 15 s",
    effect=0.1,  # the equivalence margin, in initial spreads
    quick=Reduction(),
    arms=("no_bn", "bn"),
    assess=assess,
    draw=draw,
)
