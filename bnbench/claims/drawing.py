"""Panel helpers for the claims' figures, in the house style of `bnbench.analysis.panels`.

Each arm keeps its colour (its place in the claim's arm order); every seed is a small dot, the
mean over seeds a line; a run censored at its budget (it never reached the target) is an open
triangle pointing up, because its true time is larger. Nothing here computes a verdict: the
figures show the same numbers the rules read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bnbench.claims.evidence import Cell, Evidence

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bnbench.analysis.paired import TimeToTarget


def figure(columns: int, title: str, width: float = 4.6) -> tuple[Figure, list[Axes]]:
    """A row of `columns` panels under a title."""
    from bnbench.analysis.figures import plt

    fig, axes = plt.subplots(
        1, columns, figsize=(width * columns, 3.8), squeeze=False, layout="constrained"
    )
    fig.suptitle(title, fontsize=10)
    return fig, list(axes[0])


def colours(evidence: Evidence) -> dict[str, Any]:
    """Each arm's colour, as every other bnbench figure gives it."""
    from bnbench.analysis.panels import Panels

    return Panels(evidence.tree.arms, "std", False).colours


def by_x(
    ax: Axes,
    evidence: Evidence,
    values: Callable[[str, Any], dict[int, float]],
    xs: Sequence[Any],
    arms: Sequence[str],
    *,
    log_x: bool = False,
    labels: dict[str, str] | None = None,
) -> None:
    """Per arm, each seed's value at each x (dots) and their mean (a line).

    Args:
        ax: The panel.
        evidence: The claim's runs (for the colours).
        values: (arm, x) -> seed -> value.
        xs: The x values, in order.
        arms: The arms drawn.
        log_x: A log x axis.
        labels: Legend label per arm (default: the arm's name).
    """
    palette = colours(evidence)
    for offset, arm in enumerate(arms):
        means = []
        for x in xs:
            seeds = [v for v in values(arm, x).values() if np.isfinite(v)]
            shift = (1.0 + 0.03 * (offset - len(arms) / 2)) if log_x else 0.0
            px = float(x) * shift if log_x else float(x)
            ax.plot([px] * len(seeds), seeds, ".", color=palette[arm], alpha=0.45, ms=5)
            means.append(float(np.mean(seeds)) if seeds else np.nan)
        label = (labels or {}).get(arm, arm)
        ax.plot([float(x) for x in xs], means, "-o", color=palette[arm], lw=1.6, ms=4,
                label=label)  # fmt: skip
    if log_x:
        _log_ticks(ax, xs, 10)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.25)


def _log_ticks(ax: Axes, xs: Sequence[Any], base: int) -> None:
    """A log x axis labelled at the grid's own values."""
    ax.set_xscale("log", base=base)
    ax.set_xticks([float(x) for x in xs], [f"{float(x):g}" for x in xs])
    ax.minorticks_off()


def times_by_x(
    ax: Axes,
    evidence: Evidence,
    key: str,
    xs: Sequence[Any],
    arms: Sequence[str],
    log_x: bool,
    times_at: Callable[[str, Any], Mapping[int, TimeToTarget]] | None = None,
) -> None:
    """Steps to target per seed against the grid `key`; censored runs as open up-triangles.

    `times_at(arm, x)` gives the steps to the target the rule timed (a relative one); default:
    the runs' own recorded target."""
    palette = colours(evidence)
    for arm in arms:
        means = []
        for x in xs:
            times = evidence.times(arm, {key: x}) if times_at is None else times_at(arm, x)
            exact = [t.time for t in times.values() if not t.censored and t.time is not None]
            bounds = [t.time for t in times.values() if t.censored and t.time is not None]
            ax.plot([float(x)] * len(exact), exact, ".", color=palette[arm], alpha=0.5)
            ax.plot([float(x)] * len(bounds), bounds, "^", mfc="none", color=palette[arm])
            all_times = exact + bounds
            means.append(float(np.mean(all_times)) if all_times else np.nan)
        ax.plot([float(x) for x in xs], means, "-o", color=palette[arm], lw=1.6, ms=4, label=arm)
    if log_x:
        _log_ticks(ax, xs, 2)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_ylabel("steps to target (△: never reached)")
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.25)


def curves(
    ax: Axes,
    evidence: Evidence,
    column: str,
    arms: Sequence[str],
    cell: Cell | None = None,
    style: str = "-",
    label_suffix: str = "",
) -> None:
    """The seed-mean of a history column against the step, per arm (within `cell`)."""
    palette = colours(evidence)
    history = evidence.histories
    if column not in history:
        return
    for arm in arms:
        ids = set(evidence.where(arm, cell)["run_id"])
        rows = history[history["run_id"].isin(ids)]
        mean = rows.groupby("step")[column].mean()
        if mean.notna().any():
            ax.plot(mean.index, mean.to_numpy(), style, color=palette[arm], lw=1.5,
                    label=f"{arm}{label_suffix}")  # fmt: skip
    ax.set_xlabel("step")
    ax.grid(alpha=0.25)


def paired_points(
    ax: Axes,
    groups: Sequence[tuple[str, pd.Series | dict[int, float]]],
    ylabel: str,
    palette: dict[str, Any] | None = None,
) -> None:
    """One column of per-seed values per group, seeds joined by grey lines (the pairing);
    a group named after an arm takes the arm's colour from `palette`."""
    series = [(name, pd.Series(values, dtype=float)) for name, values in groups]
    seeds = sorted(set().union(*(set(s.index) for _, s in series))) if series else []
    for seed in seeds:
        ys = [s.get(seed, np.nan) for _, s in series]
        ax.plot(range(len(series)), ys, "-", color="0.75", lw=0.8, zorder=1)
    for i, (name, s) in enumerate(series):
        colour = (palette or {}).get(name, f"C{i}")
        ax.plot([i] * len(s), s.to_numpy(), "o", ms=5, zorder=2, color=colour)
        if s.notna().any():
            ax.plot([i - 0.2, i + 0.2], [s.mean()] * 2, "k-", lw=2, zorder=3)
    ax.set_xticks(range(len(series)), [name for name, _ in series], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.25, axis="y")
