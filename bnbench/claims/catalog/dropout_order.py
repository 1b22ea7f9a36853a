"""dropout_order: dropout that feeds batch norm hurts, through a variance shift (Li et al. 2019).

Paired test accuracy, dropout after every BN − dropout feeding the next BN; and, from
`diagnostics/variance_shift.csv`, the variance shift (dropout on / off) of the BN input that
dropout feeds. A diverged run scores chance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import colours, figure, paired_points
from bnbench.claims.evidence import Evidence
from bnbench.claims.measures import accuracy, differences, finding, fmt, mean_of, minus, per_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ARMS = ("dropout_before_bn", "dropout_after_bn")


def fed_layers(evidence: Evidence) -> list[str]:
    """The BN layers that dropout feeds in the dropout_before_bn arm (its variance_shift rows)."""
    rows = evidence.diagnostics("variance_shift")
    if rows.empty:
        return []
    fed = rows[(rows["arm"] == ARMS[0]) & (rows["fed_by_dropout"].astype(str) == "True")]
    return sorted({str(name) for name in fed["layer"]})


def variance_shifts(evidence: Evidence, arm: str, layers: list[str]) -> dict[int, float]:
    """Seed -> ln Var(dropout on) / Var(dropout off) of the `layers`' inputs at the last
    recorded step, averaged over the layers (the recorder's ratio is already a geometric mean
    over units)."""
    rows = evidence.diagnostics("variance_shift")
    if rows.empty or not layers:
        return {}
    rows = rows[(rows["arm"] == arm) & rows["layer"].isin(layers)]
    out = {}
    for seed, part in rows.groupby("seed"):
        last = part[part["step"] == part["step"].max()]
        ratios = last["variance_ratio"].astype(float)
        if len(last) == len(layers) and bool((ratios > 0).all()):
            out[int(seed)] = float(np.mean(np.log(ratios)))
    return out


def assess(evidence: Evidence) -> Assessment:
    values = differences(evidence, "final_test_metric", "dropout_after_bn", "dropout_before_bn")
    layers = fed_layers(evidence)
    shifts = {arm: variance_shifts(evidence, arm, layers) for arm in ARMS}
    sizes = {arm: {s: abs(v) for s, v in shifts[arm].items()} for arm in ARMS}
    where = ", ".join(layers) or "the BN fed by dropout"
    findings = [
        finding("", "test accuracy, dropout after every BN − dropout feeding BN",
                values, 0.0, "above"),
        finding("variance shift (Li et al.'s mechanism)",
                f"|ln Var(dropout on) / Var(dropout off)| of the input of {where} at the end, "
                "dropout feeding BN − dropout after every BN",
                per_seed(minus(sizes[ARMS[0]], sizes[ARMS[1]])), 0.0, "above"),
    ]  # fmt: skip
    sentences = []
    for arm in ARMS:
        train_mode = mean_of(evidence.by_seed("final.val_train_mode_accuracy", arm))
        inference = mean_of(evidence.by_seed("final_val_metric", arm))
        sentences.append(f"{arm}: test accuracy {fmt(mean_of(accuracy(evidence, arm)))}; "
                         f"validation accuracy {fmt(train_mode)} in training mode vs "
                         f"{fmt(inference)} in inference mode.")  # fmt: skip
    if layers:
        ratios = {arm: fmt(float(np.exp(mean_of(shifts[arm]))), 3) for arm in ARMS}
        sentences.append(
            f"Variance shift of {where} at the end (Var of its input with dropout on / off, "
            "every BN on its moving statistics; geometric mean over units and seeds): "
            f"{ratios[ARMS[0]]} when dropout feeds it, {ratios[ARMS[1]]} with "
            "dropout after every BN."
        )
    else:
        sentences.append("No variance_shift diagnostic names a BN layer fed by dropout.")
    return Assessment(findings, sentences)


def draw(evidence: Evidence) -> Figure:
    fig, (left, right) = figure(2, "dropout before vs after batch norm")
    palette = colours(evidence)
    paired_points(left, [(a, accuracy(evidence, a)) for a in ARMS], "test accuracy",
                  palette)  # fmt: skip
    layers, rows = fed_layers(evidence), evidence.diagnostics("variance_shift")
    for arm in ARMS:
        mine = rows[(rows["arm"] == arm) & rows["layer"].isin(layers)] if layers else rows[:0]
        if mine.empty:
            continue
        wide = mine.pivot_table(index="step", columns="seed", values="variance_ratio")
        right.plot(wide.index, wide.to_numpy(), color=palette[arm], alpha=0.35, lw=0.8)
        mean = np.exp(np.log(wide).mean(axis=1))
        right.plot(mean.index, mean.to_numpy(), color=palette[arm], lw=2, label=arm)
    right.axhline(1.0, color="0.4", ls=":", lw=1)
    where = ", ".join(layers) or "BN"
    right.set(yscale="log", xlabel="step", ylabel="Var(dropout on) / Var(dropout off)")
    right.set_title(f"variance shift of the {where} input\n(thin: seeds; thick: geometric mean)",
                    fontsize=9)  # fmt: skip
    right.legend(fontsize=7, frameon=False)
    right.grid(alpha=0.25)
    return fig


CLAIM = Claim(
    id="dropout_order",
    statement="Dropout that feeds batch norm hurts (variance shift).",
    source="Li et al. 2019",
    measures=(
        "test accuracy with dropout after every BN vs dropout feeding the next BN; the "
        "variance shift (dropout on / off) of the BN input it feeds"
    ),
    runtime="full 15 s, quick 15 s",
    effects={"variance shift (Li et al.'s mechanism)": 0.1},  # |ln ratio|: 10% variance
    quick=Reduction(),
    arms=ARMS,
    assess=assess,
    draw=draw,
)
