"""Verdict rules and figures of the claims about what happens inside the network.

vanishing_gradients (from `diagnostics/gradient_norms.csv`) and covariate_shift (from
`diagnostics/activation_percentiles.csv`). Both diagnostics are recorded on a fixed probe batch
in training mode, so the arms are measured on the same examples.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bnbench.claims.claim import Assessment, Finding
from bnbench.claims.drawing import colours, figure
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import finding, fmt, mean_of, per_seed
from bnbench.claims.verdicts import Value, equivalence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_DENSE = re.compile(r"^block(\d+)_dense$")
# covariate_shift: "does not reduce" is read as a reduction within ±0.1 of the initial spread
# (15th to 85th percentile) of the layer input: an equivalence margin declared up front.
SHIFT_MARGIN = 0.1


# --- 5. vanishing gradients ---------------------------------------------------------------------


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


def assess_vanishing_gradients(evidence: Evidence) -> Assessment:
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


def draw_vanishing_gradients(evidence: Evidence) -> Figure:
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


# --- 9. internal covariate shift ----------------------------------------------------------------


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


def assess_covariate_shift(evidence: Evidence) -> Assessment:
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


def draw_covariate_shift(evidence: Evidence) -> Figure:
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
