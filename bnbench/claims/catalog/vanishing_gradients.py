"""vanishing_gradients: batch norm fights vanishing gradients in deep sigmoid nets.

Reads `diagnostics/gradient_norms.csv`, recorded on a fixed probe batch in training mode, so
the arms are measured on the same examples: per seed, log10 of the first / last dense
layer's gradient norm over training, BN − no BN.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import colours, figure
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import finding, mean_of, per_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_DENSE = re.compile(r"^block(\d+)_dense$")


def _dense_norms(evidence: Evidence) -> pd.DataFrame:
    """Gradient-norm rows of the dense layers, with their block number as `depth`."""
    rows = evidence.diagnostics("gradient_norms")
    depth = rows["layer"].map(lambda name: _block(str(name)))
    dense: pd.DataFrame = rows.assign(depth=depth).dropna(subset=["depth"])
    return dense


def _block(name: str) -> float:
    match = _DENSE.match(name)
    return float(match.group(1)) if match else math.nan


def gradient_ratios(evidence: Evidence, arm: str) -> dict[int, float]:
    """Seed -> log10(first / last dense layer's gradient norm), averaged over the recordings."""
    rows = _dense_norms(evidence)
    rows = rows[rows["arm"] == arm]
    out = {}
    for seed, part in rows.groupby("seed"):
        first, last = part["depth"].min(), part["depth"].max()
        wide = part.pivot_table(index="step", columns="depth", values="grad_norm")
        ratio = np.log10(wide[first] / wide[last]).replace([np.inf, -np.inf], np.nan).dropna()
        if len(ratio):
            out[int(seed)] = float(ratio.mean())
    return out


def assess(evidence: Evidence) -> Assessment:
    ratios = {arm: gradient_ratios(evidence, arm) for arm in ("no_bn", "bn")}
    values = per_seed({s: ratios["bn"][s] - ratios["no_bn"][s]
                       for s in ratios["bn"].keys() & ratios["no_bn"].keys()})  # fmt: skip
    statistic = "log10(first / last layer gradient norm) over training, BN − no BN"
    depth = _dense_norms(evidence)["depth"].max()
    sentences = [f"{_count(depth)} dense blocks; gradient norms recorded at every evaluation."]
    for arm in ("no_bn", "bn"):
        mean = mean_of(ratios[arm])
        shown = "n/a" if not math.isfinite(mean) else f"{10**mean:.3g}"
        sentences.append(f"{arm}: the first layer's gradient norm is {shown}× the last one's "
                         f"(geometric mean over training and seeds).")  # fmt: skip
    return Assessment([finding("", statistic, values, 0.0, "above", digits=2)], sentences)


def _count(depth: float) -> str:
    return "?" if not math.isfinite(float(depth)) else f"{int(depth)}"


def draw(evidence: Evidence) -> Figure:
    fig, (left, right) = figure(2, "gradient norms of the dense layers (seed means)")
    rows, palette = _dense_norms(evidence), colours(evidence)
    for arm in ("no_bn", "bn"):
        mine = rows[rows["arm"] == arm]
        if mine.empty:
            continue
        steps = sorted(mine["step"].unique())
        for step, style in ((steps[0], ":"), (steps[-1], "-")):
            at = mine[mine["step"] == step].groupby("depth")["grad_norm"].mean()
            left.plot(at.index, at.to_numpy(), style, marker="o", ms=3, color=palette[arm],
                      label=f"{arm}, step {int(step)}")  # fmt: skip
        for _, part in mine.groupby("seed"):
            wide = part.pivot_table(index="step", columns="depth", values="grad_norm")
            ratio = wide[wide.columns.min()] / wide[wide.columns.max()]
            right.plot(ratio.index, ratio.to_numpy(), color=palette[arm], alpha=0.6, lw=1)
        right.plot([], [], color=palette[arm], label=arm)
    left.set(yscale="log", xlabel="dense block (input → output)", ylabel="gradient norm")
    right.set(yscale="log", xlabel="step", ylabel="first / last layer gradient norm")
    for ax in (left, right):
        ax.legend(fontsize=7, frameon=False)
        ax.grid(alpha=0.25)
    return fig


CLAIM = Claim(
    id="vanishing_gradients",
    statement="Batch norm fights vanishing gradients in deep sigmoid nets.",
    source="common tutorial claim",
    measures="first- to last-layer gradient-norm ratio over training, BN vs no BN",
    runtime="full 20 s, quick 15 s",
    effect=0.5,  # a factor of about 3 in the gradient-norm ratio
    quick=Reduction(),
    arms=("no_bn", "bn"),
    family="a deep sigmoid MLP (8 dense layers of 32 units)",
    assess=assess,
    draw=draw,
)
