"""Figures drawn from a results tree, never from training: restyling a figure needs no retraining.

Every figure gives each arm the same colour (its position in the ablation's arm order picks it
from a qualitative palette), draws train dashed and validation solid, and shows the seed mean
as a line with a band. Diagnostic figures show each arm at its best grid cell (best mean final
test score), so a learning-rate grid compares arms each at their own tuned rate, as DeepOBS does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import ceil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from bnbench.errors import SpecError  # noqa: E402
from bnbench.results_tree import ResultsTree, grid_labels, load_results_tree, seed_band  # noqa: E402

FORMATS = ("png", "svg", "pdf")
BANDS = ("std", "minmax")
DPI = 130
_FAILED = ("failed",)
_BN_STATS = {
    "moving_mean_mean": "moving mean (mean over channels)",
    "moving_var_mean": "moving variance (mean over channels)",
    "gamma_mean": "γ (mean over channels)",
    "beta_mean": "β (mean over channels)",
    "batch_mean_gap": "batch mean − moving mean",
    "batch_var_gap": "batch variance − moving variance",
}
Drawer = Callable[[Axes], None]


def render_plots(
    results_dir: Path, fmt: str = "png", log_loss: bool = False, *, band: str = "std"
) -> list[Path]:
    """Draw every figure the results tree has data for into `results_dir/plots/`.

    Also writes `plots/index.md`, one line per figure with its caption.

    Args:
        results_dir: An ablation directory (with runs.csv) or a single run directory.
        fmt: Figure format: png, svg or pdf.
        log_loss: Draw losses on a log axis.
        band: Band around the seed mean: "std" (± one standard deviation) or "minmax".

    Returns:
        The figure files written, in index order.

    Raises:
        SpecError: (a ValueError) If `fmt` or `band` is unknown, or `results_dir` is not a
            results tree; the message names the path.
    """
    if fmt not in FORMATS:
        raise SpecError(f"unknown figure format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if band not in BANDS:
        raise SpecError(f"unknown band {band!r}: expected one of {', '.join(BANDS)}")
    tree = load_results_tree(Path(results_dir))
    plots = _Plots(tree, log_loss, band)
    out_dir = tree.root / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written, lines = [], []
    for name, caption, draw in plots.figures():
        path = out_dir / f"{name}.{fmt}"
        fig = draw()
        fig.savefig(path, format=fmt, dpi=DPI)
        plt.close(fig)
        written.append(path)
        lines.append(f"- [{path.name}]({path.name}): {caption}")
    failed = tree.runs.loc[tree.runs["status"].isin(_FAILED), "run_id"]
    header = [f"# Figures for `{tree.root.name}`", ""]
    if len(failed):
        header += [f"Left out {len(failed)} failed run(s): {', '.join(failed)}.", ""]
    (out_dir / "index.md").write_text("\n".join([*header, *lines, ""]))
    return written


class _Plots:
    """The figure builders for one tree; each returns a Figure for `render_plots` to save."""

    def __init__(self, tree: ResultsTree, log_loss: bool, band: str) -> None:
        self.tree, self.log_loss, self.band = tree, log_loss, band
        palette = plt.get_cmap("tab10" if len(tree.arms) <= 10 else "tab20").colors  # type: ignore[attr-defined]
        self.colours = {arm: palette[i % len(palette)] for i, arm in enumerate(tree.arms)}
        self.runs = tree.runs[~tree.runs["status"].isin(_FAILED)]
        self.best = tree.best_cells()
        self.metric_label = tree.metric or "loss"

    def figures(self) -> list[tuple[str, str, Callable[[], Figure]]]:
        tree, found = self.tree, []
        what = f"loss and {tree.metric}" if tree.metric else "loss"
        for x, unit in (("step", "training step"), ("epoch", "epoch")):
            if x in tree.histories and tree.histories[x].notna().any():
                caption = f"{what} vs {unit}: seed mean and {self._band_words()}, train dashed, validation solid; x = diverged"  # noqa: E501
                found.append((f"learning_curves_{x}", caption, lambda x=x: self.curves(x)))
        if self.runs["target_value"].notna().any():
            found.append(("time_to_target", "training steps until the target is reached, per arm and grid cell; dots are seeds, k/n counts runs that reached it", self.time_to_target))  # noqa: E501
        for key, name, base in (("learning_rate", "lr", 10), ("batch_size", "batch_size", 2)):
            if tree.varies(f"training.{key}"):
                caption = f"{tree.score[1]} vs {key.replace('_', ' ')} per arm; x at the bottom = diverged"  # noqa: E501
                found.append((f"{name}_sensitivity", caption, lambda k=key, b=base: self.sensitivity(k, b)))  # noqa: E501
        if not tree.diagnostics["activation_percentiles"].empty:
            found.append(("activation_percentiles", "15th/50th/85th percentiles of recorded activations over training (Ioffe & Szegedy 2015, Fig. 1b,c), each arm at its best grid cell", self.percentiles))  # noqa: E501
        if not tree.diagnostics["train_inference_gap"].empty:
            found.append(("train_inference_gap", "the same model evaluated in training mode (batch statistics, dashed) and inference mode (moving statistics, solid)", self.gap))  # noqa: E501
        if not tree.diagnostics["bn_statistics"].empty:
            found.append(("bn_statistics", "BN moving statistics, γ, β and the gap between batch and moving statistics over training, first layers", self.bn_statistics))  # noqa: E501
        found.append(("overview", "one-page summary: validation curves, final test score, time to target and activation percentiles, each arm at its best grid cell", self.overview))  # noqa: E501
        return found

    # ---- figures -------------------------------------------------------------------------
    def curves(self, x: str) -> Figure:
        cells = [c for c in self.tree.cells if c in set(self.runs["cell"])] or [""]
        quantities = ["loss"] + ([self.tree.metric] if self.tree.metric else [])
        ncols = min(len(cells), 3)
        block = ceil(len(cells) / ncols)
        fig, axes = _figure(len(quantities) * block, ncols)
        for q, quantity in enumerate(quantities):
            for i, cell in enumerate(cells):
                ax = axes[q * block + i // ncols][i % ncols]
                frame = self.tree.histories[self.tree.histories["cell"] == cell]
                self._lines(ax, frame, x, [(f"train_{quantity}", "--"), (f"val_{quantity}", "-")])
                self._y_axis(ax, quantity)
                ax.set_xlabel("training step" if x == "step" else "epoch")
                ax.set_title(cell, fontsize=9)
            for i in range(len(cells), block * ncols):
                axes[q * block + i // ncols][i % ncols].set_visible(False)
        self._legend(fig, styles=[("--", "train"), ("-", "validation")])
        return fig

    def time_to_target(self) -> Figure:
        fig, axes = _figure(1, 1, width=max(6.0, min(10.0, 1.2 + 0.5 * len(self.runs))))
        groups = [(c, self.runs[self.runs["cell"] == c]) for c in self.tree.cells]
        self._bars(axes[0][0], groups)
        self._legend(fig)
        return fig

    def sensitivity(self, key: str, base: int) -> Figure:
        others = [k for k in self.tree.grid_keys if k != f"training.{key}"]
        facets = grid_labels(self.runs, others)
        labels = list(dict.fromkeys(facets[facets.index.isin(self.runs.index)]))
        fig, axes = _figure(ceil(len(labels) / 3), min(len(labels), 3))
        column, ylabel, _ = self.tree.score
        for i, label in enumerate(labels):
            ax = axes[i // 3][i % 3]
            runs = self.runs[facets == label]
            x_values = runs[f"grid.training.{key}"]
            for a, arm in enumerate(self.tree.arms):
                mine = runs[runs["arm"] == arm]
                ok = mine[mine["status"] != "diverged"]
                colour = self.colours[arm]
                ax.plot(x_values[ok.index], ok[column], ".", color=colour, alpha=0.45)
                means = ok.groupby(x_values[ok.index])[column].mean().dropna()
                ax.plot(means.index, means.to_numpy(), "o-", color=colour, ms=5)
                bad = x_values[mine.index[mine["status"] == "diverged"]]
                ax.plot(bad, np.full(len(bad), 0.03 + 0.05 * a), "x", color=colour, ms=8, mew=2,
                        transform=ax.get_xaxis_transform())  # fmt: skip
            ax.set_xscale("log", base=base)
            ticks = sorted(x_values.dropna().unique())
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel(f"{key.replace('_', ' ')} (log{base} scale)")
            self._y_axis(ax, self.metric_label, label=ylabel)
            ax.set_title(label, fontsize=9)
        for i in range(len(labels), len(axes) * len(axes[0])):
            axes[i // 3][i % 3].set_visible(False)
        self._legend(fig, diverged=True)
        return fig

    def percentiles(self) -> Figure:
        data = self._at_best(self.tree.diagnostics["activation_percentiles"])
        arms = [a for a in self.tree.arms if a in set(data["arm"])]
        layers = list(dict.fromkeys(data["layer"]))[:3]
        fig, axes = _figure(len(layers), len(arms), height=2.4)
        for r, layer in enumerate(layers):
            for c, arm in enumerate(arms):
                ax = axes[r][c]
                self._percentile_band(ax, data[(data["layer"] == layer) & (data["arm"] == arm)], arm)
                ax.set_title(f"{arm} ({self.best[arm]})\n{layer}" if self.best[arm] else f"{arm}\n{layer}", fontsize=9)  # noqa: E501
                ax.set_xlabel("training step")
                ax.set_ylabel("activation value")
        self._legend(fig, styles=[("-", "50th percentile"), (":", "15th / 85th percentile")])
        return fig

    def gap(self) -> Figure:
        data = self._at_best(self.tree.diagnostics["train_inference_gap"])
        quantities = ["loss"] + (["metric"] if data.get("train_mode_metric", pd.Series()).notna().any() else [])  # noqa: E501
        fig, axes = _figure(1, len(quantities))
        for ax, quantity in zip(axes[0], quantities, strict=True):
            series = [(f"train_mode_{quantity}", "--"), (f"inference_mode_{quantity}", "-")]
            self._lines(ax, data, "step", series)
            self._y_axis(ax, self.metric_label if quantity == "metric" else "loss")
            ax.set_xlabel("training step")
        self._legend(fig, styles=[("--", "training mode"), ("-", "inference mode")])
        return fig

    def bn_statistics(self) -> Figure:
        data = self._at_best(self.tree.diagnostics["bn_statistics"])
        stats = [s for s in _BN_STATS if s in data and data[s].notna().any()]
        layers = list(dict.fromkeys(data["layer"]))[:3]
        styles = ["-", "--", ":"]
        fig, axes = _figure(ceil(len(stats) / 3), min(len(stats), 3), height=2.5)
        for i, stat in enumerate(stats):
            ax = axes[i // 3][i % 3]
            for layer, style in zip(layers, styles, strict=False):
                self._lines(ax, data[data["layer"] == layer], "step", [(stat, style)], band=False)
            ax.set_title(_BN_STATS[stat], fontsize=9)
            ax.set_xlabel("training step")
        for i in range(len(stats), len(axes) * len(axes[0])):
            axes[i // 3][i % 3].set_visible(False)
        self._legend(fig, styles=list(zip(styles, layers, strict=False)))
        return fig

    def overview(self) -> Figure:
        histories = self._at_best(self.tree.histories)
        quantity = self.metric_label
        panels: list[Drawer] = [
            lambda ax: self._lines(ax, histories, "step", [(f"val_{quantity}", "-")]),
            self._final_scores,
        ]
        titles = [f"validation {quantity}", self.tree.score[1]]
        if self.runs["target_value"].notna().any():
            best_runs = self._at_best(self.runs)
            panels.append(lambda ax: self._bars(ax, [("", best_runs)]))
            titles.append("steps to target")
        percentiles = self._at_best(self.tree.diagnostics["activation_percentiles"])
        if not percentiles.empty:
            first = percentiles[percentiles["layer"] == percentiles["layer"].iloc[0]]
            panels.append(lambda ax: [self._percentile_band(ax, first[first["arm"] == arm], arm)
                                      for arm in self.tree.arms])  # fmt: skip
            titles.append(f"activation 15/50/85th percentiles, {first['layer'].iloc[0]}")
        if len(panels) < 4:
            panels.append(lambda ax: self._lines(ax, histories, "step", [("train_loss", "--")]))
            titles.append("training loss")
        nrows, ncols = (2, 2) if len(panels) == 4 else (1, len(panels))
        fig, axes = _figure(nrows, ncols, height=3.0 if nrows == 2 else 3.4)
        for ax, draw, title in zip([a for row in axes for a in row], panels, titles, strict=True):
            draw(ax)
            ax.set_title(title, fontsize=10)
            if not ax.get_xlabel():
                ax.set_xlabel("training step")
            if "loss" in title or "validation" in title:
                self._y_axis(ax, "loss" if "loss" in title else quantity)
        where = " (each arm at its best grid cell)" if any(self.best.values()) else ""
        fig.suptitle(f"{self.tree.root.name}: overview{where}", fontsize=11)
        self._legend(fig, diverged=True)
        return fig

    # ---- panels --------------------------------------------------------------------------
    def _lines(
        self, ax: Axes, frame: pd.DataFrame, x: str, series: Sequence[tuple[str, str]],
        band: bool = True,
    ) -> None:  # fmt: skip
        """Seed mean (line) and band of each series per arm; x marks where a run diverged."""
        drawn = False
        for column, style in series:
            if column not in frame or frame[column].notna().sum() == 0:
                continue
            stats = seed_band(frame, x, column, self.band)
            for arm in self.tree.arms:
                for _, part in stats[stats["arm"] == arm].groupby("cell"):
                    colour = self.colours[arm]
                    ax.plot(part["x"], part["mean"], ls=style, color=colour, lw=1.5)
                    if band:
                        ax.fill_between(part["x"], part["low"], part["high"], color=colour,
                                        alpha=0.18 if style == "-" else 0.08, lw=0)  # fmt: skip
                    drawn = True
            diverged = frame[(frame["status"] == "diverged")].dropna(subset=[column])
            ends = diverged.sort_values(x).groupby("run_id").tail(1)
            for _, end in ends.iterrows():
                ax.plot(end[x], end[column], "x", color=self.colours[end["arm"]], ms=8, mew=2)
        if not drawn:
            _no_data(ax)

    def _percentile_band(self, ax: Axes, frame: pd.DataFrame, arm: str) -> None:
        if frame.empty:
            return
        colour = self.colours[arm]
        mean = {p: seed_band(frame, "step", p).set_index("x")["mean"] for p in ("p15", "p50", "p85")}  # noqa: E501
        ax.fill_between(mean["p50"].index, mean["p15"], mean["p85"], color=colour, alpha=0.15, lw=0)
        ax.plot(mean["p50"].index, mean["p50"], "-", color=colour, lw=1.6)
        for p in ("p15", "p85"):
            ax.plot(mean[p].index, mean[p], ":", color=colour, lw=1.2)
        _clip_outliers(ax, np.concatenate([m.to_numpy() for m in mean.values()]))

    def _bars(self, ax: Axes, groups: list[tuple[str, pd.DataFrame]]) -> None:
        """Mean steps to target of the runs that reached it; hatched = none reached."""
        arms = self.tree.arms
        width = 0.8 / len(arms)
        rng = np.random.default_rng(0)  # fixed jitter: re-rendering gives the same picture
        ticks: list[tuple[float, str]] = []
        for g, (label, runs) in enumerate(groups):
            ticks.append((g, label))
            for a, arm in enumerate(arms):
                mine = runs[runs["arm"] == arm]
                if mine.empty:
                    continue
                pos = g + (a - (len(arms) - 1) / 2) * width
                reached = mine["steps_to_target"].dropna()
                colour = self.colours[arm]
                if len(reached):
                    height = reached.mean()
                    ax.bar(pos, height, width * 0.9, color=colour, alpha=0.75)
                    jitter = rng.uniform(-0.2, 0.2, len(reached)) * width
                    ax.plot(pos + jitter, reached, "o", color="black", ms=3.5, alpha=0.8)
                else:
                    budget = mine["total_steps"].max()
                    height = 0.0 if np.isnan(budget) else budget
                    ax.bar(pos, height, width * 0.9, fill=False, hatch="//", edgecolor=colour)
                ax.annotate(f"{len(reached)}/{len(mine)}", (pos, max(height, reached.max() if len(reached) else 0)),  # noqa: E501
                            xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                            fontsize=8)  # fmt: skip
                if len(groups) == 1:
                    ticks.append((pos, arm))
        shown = ticks[1:] if len(groups) == 1 else ticks
        ax.set_xticks([t for t, _ in shown], [label for _, label in shown], fontsize=8)
        ax.margins(y=0.12)
        target = self.runs.dropna(subset=["target_value"]).iloc[0]
        ax.set_ylabel(f"steps until {target.get('target_metric', 'target')} = {target['target_value']:g}\n(training steps)")  # noqa: E501
        ax.set_xlabel("k/n = runs that reached the target; hatched = none did, drawn at the budget")  # noqa: E501

    def _final_scores(self, ax: Axes) -> None:
        column, label, _ = self.tree.score
        runs = self._at_best(self.runs)
        for a, arm in enumerate(self.tree.arms):
            mine = runs[runs["arm"] == arm]
            ok = mine.loc[mine["status"] != "diverged", column].dropna()
            colour = self.colours[arm]
            ax.plot(np.full(len(ok), a), ok, "o", color=colour, alpha=0.6)
            if len(ok):
                ax.plot([a - 0.3, a + 0.3], [ok.mean()] * 2, "-", color=colour, lw=2.5)
            bad = int((mine["status"] == "diverged").sum())
            ax.plot([a] * bad, [0.04] * bad, "x", color=colour, ms=8, mew=2,
                    transform=ax.get_xaxis_transform())  # fmt: skip
        ax.set_xticks(range(len(self.tree.arms)), self.tree.arms, fontsize=8)
        ax.set_xlim(-0.6, len(self.tree.arms) - 0.4)
        ax.set_xlabel("arm (dots = seeds, bar = mean)")
        self._y_axis(ax, self.metric_label, label=label)

    # ---- helpers -------------------------------------------------------------------------
    def _at_best(self, frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        return frame[frame["cell"] == frame["arm"].map(self.best)]

    def _y_axis(self, ax: Axes, quantity: str, label: str | None = None) -> None:
        is_loss = quantity == "loss" or (label or "").endswith("loss")
        if is_loss and self.log_loss and ax.has_data():
            ax.set_yscale("log")
        elif is_loss:
            _clip_outliers(ax, np.concatenate([ln.get_ydata() for ln in ax.get_lines()] or [[]]))
        scale = " (log scale)" if ax.get_yscale() == "log" else ""
        ax.set_ylabel((label or quantity) + scale)
        ax.grid(True, alpha=0.3)

    def _band_words(self) -> str:
        return "± 1 std band" if self.band == "std" else "min–max band over seeds"

    def _legend(
        self, fig: Figure, styles: Sequence[tuple[str, str]] = (), diverged: bool = False
    ) -> None:
        handles = [Line2D([], [], color=self.colours[a], lw=6, label=a) for a in self.tree.arms]
        handles += [Line2D([], [], color="grey", ls=s, label=label) for s, label in styles]
        if diverged or styles:
            handles.append(Line2D([], [], color="grey", marker="x", ls="", mew=2, label="diverged"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
                   fontsize=8, frameon=False)  # fmt: skip


def _figure(
    nrows: int, ncols: int, height: float = 2.7, width: float | None = None
) -> tuple[Figure, list[list[Axes]]]:
    nrows, ncols = max(nrows, 1), max(ncols, 1)
    width = width or max(6.0, min(10.0, 0.6 + 3.3 * ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 0.9 + height * nrows), dpi=DPI,
                             layout="constrained", squeeze=False)  # fmt: skip
    return fig, [list(row) for row in axes]


def _clip_outliers(ax: Axes, values: np.ndarray) -> None:
    """Keep the y range on the bulk of the data when a diverging run shoots off by orders."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size < 4:
        return
    low, q95 = finite.min(), np.percentile(finite, 95)
    if q95 > low and finite.max() - low > 4 * (q95 - low):
        ax.set_ylim(low - 0.05 * (q95 - low), q95 + 0.5 * (q95 - low))


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data recorded", ha="center", va="center", transform=ax.transAxes,
            color="grey")  # fmt: skip
