"""covariate_shift: batch norm stabilizes layer-input distributions (Ioffe & Szegedy 2015,
Fig. 1), against: it does not reduce internal covariate shift (Santurkar et al. 2018).

Reads `diagnostics/activation_percentiles.csv`, recorded on a fixed probe batch in training
mode: the drift of the last block's pre-activation percentiles over training, no BN − BN.
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


def drifts(evidence: Evidence, arm: str) -> dict[int, float]:
    """Seed -> mean |percentile at the end − at step 0| over the recorded percentiles, in units
    of the layer input's initial 15th-to-85th percentile range."""
    rows = evidence.diagnostics("activation_percentiles")
    rows = rows[rows["arm"] == arm]
    columns = [c for c in rows.columns if re.fullmatch(r"p[0-9.]+", str(c))]
    out = {}
    for seed, part in rows.groupby("seed"):
        part = part.sort_values("step")
        first, last = part.iloc[0][columns].astype(float), part.iloc[-1][columns].astype(float)
        spread = float(first.max() - first.min())
        if spread > 0:
            out[int(seed)] = float(np.mean(np.abs(last - first))) / spread
    return out


def assess(evidence: Evidence) -> Assessment:
    drift = {arm: drifts(evidence, arm) for arm in ("no_bn", "bn")}
    reduction = {s: drift["no_bn"][s] - drift["bn"][s]
                 for s in drift["no_bn"].keys() & drift["bn"].keys()}  # fmt: skip
    values: list[Value] = per_seed(reduction)
    statistic = "drift of the layer input's percentiles (in initial spreads), no BN − BN"
    ioffe = finding("Ioffe & Szegedy: BN reduces the drift", statistic, values, 0.0, "above")
    test = equivalence(values, SHIFT_MARGIN)
    santurkar = Finding(
        f"Santurkar et al.: BN does not reduce it (TOST, margin ±{SHIFT_MARGIN:g})",
        f"{statistic} (90% CI)",
        test.interval90,
        SHIFT_MARGIN,
        f"supported if the 90% CI lies within ±{SHIFT_MARGIN:g} (TOST at 5%); not supported "
        f"if the 95% CI lies outside ±{SHIFT_MARGIN:g}; otherwise inconclusive",
        test.verdict,
        p_value=test.p_value,
        values=tuple(values),
    )
    sentences = [
        f"{arm}: the 15th/50th/85th percentiles of the last block's pre-activation moved by "
        f"{fmt(mean_of(drift[arm]), 2)} initial spreads from step 0 to the end."
        for arm in ("no_bn", "bn")
    ]
    sentences.append(
        "Drift is of the input distribution (the phrasing of Ioffe & Szegedy, "
        "Fig. 1); Santurkar et al.'s gradient-based measure is not recorded."
    )
    return Assessment([ioffe, santurkar], sentences)


def draw(evidence: Evidence) -> Figure:
    from bnbench.analysis.panels import Panels

    fig, (ax,) = figure(1, "last block's pre-activation: 15th, 50th, 85th percentiles", width=6.0)
    rows = evidence.diagnostics("activation_percentiles")
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
