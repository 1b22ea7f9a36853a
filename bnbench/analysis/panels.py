"""Panel primitives shared by the figures in `bnbench.analysis.plots`: one look for every figure.

Each arm keeps one colour everywhere (its place in the ablation's arm order picks it from a
qualitative palette); the mean over seeds is a line with a band; train is dashed, validation
solid; a diverged run is an x on a strip below the data, so a run that shot off to 1e30 neither
hides the others nor disappears.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bnbench.analysis.figures import DPI, plt
from bnbench.results.tree import seed_band

Diverged = Sequence[tuple[str, float]]  # (arm, x) of each diverged run drawn in a panel


class Panels:
    """Draws panels in the house style for a fixed list of arms.

    Args:
        arms: Arm names in ablation order; the order fixes the colours.
        band: "std" for mean ± one standard deviation over seeds, "minmax" for the range.
        log_loss: Put axes whose label mentions loss on a log scale.
    """

    def __init__(self, arms: Sequence[str], band: str, log_loss: bool) -> None:
        self.arms, self.band, self.log_loss = tuple(arms), band, log_loss
        # Qualitative palettes: calling them with an integer i gives their i-th colour.
        palette = plt.get_cmap("tab10" if len(self.arms) <= 10 else "tab20")
        self.colours = {arm: palette(i % palette.N) for i, arm in enumerate(self.arms)}

    def lines(
        self,
        ax: Axes,
        frame: pd.DataFrame,
        x: str,
        series: Sequence[tuple[str, str]],
        band: bool = True,
    ) -> Diverged:
        """Seed mean and band of each (column, line style) per arm and grid cell.

        Returns:
            Where each diverged run in `frame` last had a value, for `y_axis` to mark.
        """
        columns = [c for c, _ in series if c in frame and frame[c].notna().any()]
        for column, style in series:
            if column not in columns:
                continue
            stats = seed_band(frame, x, column, self.band)
            for arm in self.arms:
                colour = self.colours[arm]
                for _, part in stats[stats["arm"] == arm].groupby("cell"):
                    ax.plot(part["x"], part["mean"], ls=style, color=colour, lw=1.5)
                    if band:
                        alpha = 0.2 if style == "-" else 0.08
                        ax.fill_between(
                            part["x"], part["low"], part["high"], color=colour, alpha=alpha, lw=0
                        )
        if not columns:
            no_data(ax)
            return []
        diverged = frame[(frame["status"] == "diverged") & frame[columns].notna().any(axis=1)]
        ends = diverged.groupby("run_id").agg(arm=("arm", "first"), x=(x, "max"))
        return list(zip(ends["arm"], ends["x"], strict=True))

    def percentiles(self, ax: Axes, frame: pd.DataFrame) -> Diverged:
        """Median (solid) and 15th/85th percentiles (dotted, shaded between) per arm."""
        for arm in self.arms:
            mine = frame[frame["arm"] == arm]
            if mine.empty:
                continue
            colour = self.colours[arm]
            mean = {
                p: seed_band(mine, "step", p).set_index("x")["mean"] for p in ("p15", "p50", "p85")
            }
            steps = mean["p50"].index
            ax.fill_between(steps, mean["p15"], mean["p85"], color=colour, alpha=0.15, lw=0)
            ax.plot(steps, mean["p50"], "-", color=colour, lw=1.6)
            for p in ("p15", "p85"):
                ax.plot(steps, mean[p], ":", color=colour, lw=1.2)
        if frame.empty:
            no_data(ax)
        return []

    def bars(self, ax: Axes, groups: Sequence[tuple[str, pd.DataFrame]], ylabel: str) -> Diverged:
        """Steps to target per group and arm: bar = mean over the runs that reached it.

        Dots are the seeds that reached it; "k/n" counts them; open triangles are completed runs
        that never reached it while others did, drawn at their last step (their time is at least
        that: censored); hatched (drawn up to the step budget) means none did. With one group
        the arms label the x axis.
        """
        width = 0.8 / len(self.arms)
        rng = np.random.default_rng(0)  # fixed jitter: re-rendering gives the same picture
        ticks: list[tuple[float, str]] = [(g, label) for g, (label, _) in enumerate(groups)]
        for g, (_, runs) in enumerate(groups):
            for a, arm in enumerate(self.arms):
                mine = runs[runs["arm"] == arm]
                if mine.empty:
                    continue
                pos, colour = g + (a - (len(self.arms) - 1) / 2) * width, self.colours[arm]
                reached = mine["steps_to_target"].dropna().to_numpy()
                if len(reached):
                    top = float(reached.max())
                    ax.bar(pos, reached.mean(), width * 0.9, color=colour, alpha=0.75)
                    jitter = rng.uniform(-0.2, 0.2, len(reached)) * width
                    ax.plot(pos + jitter, reached, "o", color="black", ms=3.5, alpha=0.8)
                else:
                    top = float(np.nan_to_num(mine["total_steps"].max()))
                    ax.bar(pos, top, width * 0.9, fill=False, hatch="//", edgecolor=colour)
                censored = mine.loc[
                    (mine["status"] == "completed") & mine["steps_to_target"].isna(), "total_steps"
                ].dropna()
                if len(reached) and len(censored):  # with none reached, the hatched bar says it
                    top = max(top, float(censored.max()))
                    ax.plot(
                        np.full(len(censored), pos), censored, "^", mfc="none", mec="black", ms=5
                    )
                ax.annotate(
                    f"{len(reached)}/{len(mine)}",
                    (pos, top),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
                if len(groups) == 1:
                    ticks.append((pos, arm))
        shown = ticks[1:] if len(groups) == 1 else ticks
        ax.set_xticks([t for t, _ in shown], [label for _, label in shown], fontsize=8)
        ax.set_xlabel("arm" if len(groups) == 1 else "grid cell")
        ax.set_ylabel(ylabel)
        ax.margins(y=0.12)
        ax.grid(True, axis="y", alpha=0.3)
        return []

    def strip(self, ax: Axes, runs: pd.DataFrame, column: str, label: str) -> Diverged:
        """Final value per arm: dots = seeds, bar = mean; diverged runs on the bottom strip."""
        diverged: list[tuple[str, float]] = []
        for a, arm in enumerate(self.arms):
            mine = runs[runs["arm"] == arm]
            ok = mine.loc[mine["status"] != "diverged", column].dropna()
            ax.plot(np.full(len(ok), a), ok, "o", color=self.colours[arm], alpha=0.6)
            if len(ok):
                ax.plot([a - 0.3, a + 0.3], [ok.mean()] * 2, "-", color=self.colours[arm], lw=2.5)
            diverged += [(arm, float(a))] * int((mine["status"] == "diverged").sum())
        ax.set_xticks(range(len(self.arms)), self.arms, fontsize=8)
        ax.set_xlim(-0.6, len(self.arms) - 0.4)
        ax.margins(y=0.1)
        if not ax.get_lines() and not diverged:
            no_data(ax)
        ax.set_xlabel("arm (dots = seeds, bar = mean)")
        self.y_axis(ax, label, diverged=diverged)
        return []

    def y_axis(self, ax: Axes, label: str, diverged: Diverged = ()) -> None:
        """Label, log or outlier-clipped scale, grid, then the strip of diverged-run markers."""
        drawn = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
        values = np.concatenate(drawn) if drawn else np.array([])
        if "loss" in label and self.log_loss and (values > 0).any():
            ax.set_yscale("log")
        else:
            _clip_outliers(ax, values)
        ax.set_ylabel(label + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.grid(True, alpha=0.3)
        if not diverged:
            return
        arms = list(dict.fromkeys(arm for arm, _ in diverged))
        share = 0.05 + 0.06 * len(arms)  # of the new y range
        low, high = ax.get_ylim()
        if ax.get_yscale() == "log":
            ax.set_ylim(low / (high / low) ** (share / (1 - share)), high)
        else:
            ax.set_ylim(low - (high - low) * share / (1 - share), high)
        ax.axhline(low, color="grey", lw=0.6, alpha=0.6)
        for arm, x in diverged:
            y = 0.025 + 0.06 * (arms.index(arm) + 0.5)
            ax.plot(
                x, y, "x", color=self.colours[arm], ms=7, mew=2, transform=ax.get_xaxis_transform()
            )

    def legend(
        self,
        fig: Figure,
        arms: Sequence[str] | None = None,
        styles: Sequence[tuple[str, str]] = (),
        diverged: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """One legend below all panels, so it never covers data.

        Args:
            fig: The figure.
            arms: The arms to list; all by default.
            styles: (line style, meaning) entries after the arms.
            diverged: Add the diverged-run marker.
            labels: Arm -> its legend text (e.g. "bn_before at lr=0.1"); the arm's name if absent.
        """
        shown = self.arms if arms is None else arms
        names = {a: (labels or {}).get(a, a) for a in shown}
        handles = [Line2D([], [], color=self.colours[a], lw=6, label=names[a]) for a in shown]
        handles += [Line2D([], [], color="grey", ls=s, label=label) for s, label in styles]
        if diverged:
            handles.append(Line2D([], [], color="grey", marker="x", ls="", mew=2, label="diverged"))
        # About 90 characters of 8-point text fit across the narrowest figure.
        widest = max((len(str(h.get_label())) + 6 for h in handles), default=1)
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=max(1, min(len(handles), 6, 90 // widest)),
            fontsize=8,
            frameon=False,
        )


def new_figure(
    nrows: int, ncols: int, height: float = 2.7, width: float | None = None
) -> tuple[Figure, list[list[Axes]]]:
    """A constrained-layout figure 6-10 in wide; `height` is per row of panels."""
    nrows, ncols = max(nrows, 1), max(ncols, 1)
    width = width or max(6.0, min(10.0, 0.6 + 3.3 * ncols))
    height = height if nrows <= 3 else height * 0.8
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width, 1.0 + height * nrows),
        dpi=DPI,
        layout="constrained",
        squeeze=False,
    )
    return fig, [list(row) for row in axes]


def hide_unused(axes: list[list[Axes]], used: int) -> None:
    """Hide the panels after the first `used` (row-major)."""
    for ax in [a for row in axes for a in row][used:]:
        ax.set_visible(False)


def no_data(ax: Axes) -> None:
    """Say so instead of leaving an empty frame."""
    ax.text(
        0.5, 0.5, "no data recorded", ha="center", va="center", transform=ax.transAxes, color="grey"
    )


def _clip_outliers(ax: Axes, values: np.ndarray) -> None:
    """Keep the y range on the bulk of the data when a diverging run shoots off by orders."""
    finite = values[np.isfinite(values)]
    if finite.size < 4:
        return
    cap = 10 * np.percentile(np.abs(finite), 75)
    if cap > 0 and np.abs(finite).max() > cap:
        kept = finite[np.abs(finite) <= cap]
        pad = 0.05 * (kept.max() - kept.min()) or 0.1 * abs(kept.max()) or 1.0
        ax.set_ylim(kept.min() - pad, kept.max() + pad)
