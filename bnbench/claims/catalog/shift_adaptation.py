"""shift_adaptation: re-estimating the BN statistics on shifted test data helps (Schneider et al.
2020).

Each run of the claim evaluates its trained network
on the test split with shifted inputs (`evaluation.shift`): once with the statistics of training
(BN's moving averages), and once per N with every BN layer's statistics re-estimated on N
shifted test examples. The numbers come from each run's `summary.json` (`RunSummary.shifted`);
the clean test accuracy is the run's final test accuracy. A diverged run has no shifted numbers
and its seed is left out of the cell.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bnbench.claims.claim import Assessment, Claim, Reduction
from bnbench.claims.drawing import figure
from bnbench.claims.evidence import Cell, Evidence
from bnbench.claims.measures import finding, fmt, mean_of, per_seed
from bnbench.results import rundir

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

ARM = "bn"
# The number of shifted test examples the verdict reads: few enough to be an honest "adapt on
# a handful of test data", many enough that a dense layer's variance is not degenerate. Declared
# before any run; the figure shows every N.
VERDICT_EXAMPLES = 32
METRIC = "accuracy"


def shifted_scores(evidence: Evidence, cell: Cell, examples: int | None) -> dict[int, float]:
    """Seed -> test accuracy on the shifted inputs in `cell`.

    Args:
        evidence: The claim's runs.
        cell: The grid cell.
        examples: N, the shifted examples BN was re-estimated on; None for the training
            (moving) statistics.
    """
    key = rundir.shifted_key(METRIC, examples)
    rows = evidence.where(ARM, cell)
    out = {}
    for run_id, seed in zip(rows["run_id"], rows["seed"], strict=True):
        summary = evidence.summaries.get(str(run_id))
        value = summary.shifted.get(key) if summary is not None else None
        out[int(seed)] = math.nan if value is None else float(value)
    return out


def clean_scores(evidence: Evidence, cell: Cell) -> dict[int, float]:
    """Seed -> test accuracy on the unshifted test split (NaN for a diverged run)."""
    return evidence.by_seed("final_test_metric", ARM, cell, completed=True)


def adapt_counts(evidence: Evidence) -> list[int]:
    """Every N some run of the claim re-estimated BN on, in increasing order."""
    counts: set[int] = set()
    for summary in evidence.summaries.values():
        for key in summary.shifted:
            count = rundir.shifted_count(key, METRIC)
            if count is not None:
                counts.add(count)
    return sorted(counts)


def cells(evidence: Evidence) -> list[tuple[str, Cell]]:
    """The claim's grid cells in grid order, each with a label such as "noise 0.5"."""
    out: list[tuple[str, Cell]] = []
    for label in evidence.tree.cells:
        rows = evidence.runs[evidence.runs["cell"] == label]
        if rows.empty:
            continue
        first = rows.iloc[0]
        cell = {key: first[f"grid.{key}"] for key in evidence.tree.grid_keys}
        kind, severity = first.get("shift_kind"), first.get("shift_severity")
        if isinstance(kind, str) and kind and pd.notna(severity):
            label = f"{kind} {float(severity):g}"
        out.append((label or "all runs", cell))
    return out


def _minus(first: dict[int, float], second: dict[int, float]) -> dict[int, float]:
    return {seed: first[seed] - second[seed] for seed in first.keys() & second.keys()}


def assess(evidence: Evidence) -> Assessment:
    """Per cell: paired shifted test accuracy, BN re-estimated on N examples − moving statistics."""
    findings, sentences = [], [_protocol(evidence)]
    counts = adapt_counts(evidence)
    for label, cell in cells(evidence):
        moving = shifted_scores(evidence, cell, None)
        adapted = shifted_scores(evidence, cell, VERDICT_EXAMPLES)
        statistic = (f"shifted test accuracy, BN re-estimated on {VERDICT_EXAMPLES} shifted "
                     "examples − training statistics")  # fmt: skip
        findings.append(finding(label, statistic, per_seed(_minus(adapted, moving)), 0.0, "above"))
        by_count = ", ".join(
            f"N={n}: {fmt(mean_of(shifted_scores(evidence, cell, n)))}" for n in counts
        )
        sentences.append(
            f"{label}: test accuracy {fmt(mean_of(clean_scores(evidence, cell)))} on clean "
            f"inputs, {fmt(mean_of(moving))} on shifted inputs with the training statistics; "
            f"with BN re-estimated on N shifted examples {by_count or 'n/a'}."
        )
    return Assessment(findings, sentences)


def _protocol(evidence: Evidence) -> str:
    """How BN was re-estimated, from the runs' configs (runs.csv's shift columns)."""
    runs = evidence.runs
    shifted = runs[runs["shift_kind"].notna()] if "shift_kind" in runs else runs.iloc[0:0]
    priors = sorted({"none" if pd.isna(p) else f"{float(p):g}"
                     for p in shifted["shift_prior_strength"]})  # fmt: skip
    if not priors:
        prior = "with a prior the runs do not record"
    elif priors == ["none"]:
        prior = "from the N examples alone (no prior: evaluation.shift.prior_strength null)"
    else:
        prior = (f"with the training statistics as a prior worth {' / '.join(priors)} examples "
                 "(none: from the N examples alone)")  # fmt: skip
    return (
        f"BN statistics re-estimated {prior}; every N scores the whole shifted test split; "
        f"the verdict reads N = {VERDICT_EXAMPLES}."
    )


def draw(evidence: Evidence) -> Figure:
    found = cells(evidence)
    counts = adapt_counts(evidence)
    fig, axes = figure(max(1, len(found)), "BN statistics re-estimated on shifted test data",
                       width=3.8)  # fmt: skip
    for ax, (label, cell) in zip(axes, found, strict=False):
        _panel(ax, evidence, cell, counts)
        ax.set_title(label, fontsize=9)
    axes[0].set_ylabel("test accuracy (mean ± 1 s.d. over seeds)")
    if found:
        axes[0].legend(fontsize=7, frameon=False, loc="best")
    return fig


def _panel(ax: Axes, evidence: Evidence, cell: Cell, counts: list[int]) -> None:
    """Shifted accuracy against N, the training-statistics level, and the clean accuracy."""
    if counts:
        per_count = [shifted_scores(evidence, cell, n) for n in counts]
        for n, scores in zip(counts, per_count, strict=True):
            seeds = [v for v in scores.values() if math.isfinite(v)]
            ax.plot([n] * len(seeds), seeds, ".", color="C0", alpha=0.45, ms=5)
        mean, spread = _mean_spread(per_count)
        ax.plot(counts, mean, "-o", color="C0", lw=1.6, ms=4, label="re-estimated on N")
        ax.fill_between(counts, mean - spread, mean + spread, color="C0", alpha=0.15, lw=0)
        ax.set_xscale("log", base=2)
        ax.set_xticks(counts, [str(n) for n in counts])
        ax.minorticks_off()
        ax.axvline(VERDICT_EXAMPLES, color="0.6", lw=0.8, ls=":")
    for scores, colour, style, words in (
        (shifted_scores(evidence, cell, None), "C3", "--", "training statistics"),
        (clean_scores(evidence, cell), "0.3", ":", "clean inputs"),
    ):
        level, spread = _mean_spread([scores])
        if math.isfinite(level[0]):
            ax.axhline(level[0], color=colour, ls=style, lw=1.3, label=words)
            ax.axhspan(level[0] - spread[0], level[0] + spread[0], color=colour, alpha=0.1, lw=0)
    ax.set_xlabel(f"N shifted examples (verdict at N={VERDICT_EXAMPLES})")
    ax.grid(alpha=0.25)


def _mean_spread(groups: list[dict[int, float]]) -> tuple[Any, Any]:
    """Mean and standard deviation over seeds of each group (NaN where no seed has a value)."""
    means, spreads = [], []
    for scores in groups:
        seeds = np.array([v for v in scores.values() if math.isfinite(v)], dtype=float)
        means.append(float(seeds.mean()) if seeds.size else math.nan)
        spreads.append(float(seeds.std(ddof=1)) if seeds.size > 1 else 0.0)
    return np.array(means), np.array(spreads)


CLAIM = Claim(
    id="shift_adaptation",
    statement="Re-estimating the BN statistics on shifted test data helps.",
    source="Schneider et al. 2020",
    measures=(
        "shifted test accuracy (Gaussian noise, lower contrast) with BN re-estimated on 32 "
        "shifted test examples − with the training statistics"
    ),
    runtime="full 35 s, quick 15 s",
    quick=Reduction(grid={"evaluation.shift.severity": [0.5]}),
    arms=(ARM,),
    assess=assess,
    draw=draw,
)
