"""Figures drawn from a results tree, never from training: restyling a figure needs no retraining.

`render_plots` reads the tree (`bnbench.results.tree`), draws every figure it has data for with
the shared panel style (`bnbench.analysis.panels`) and writes `plots/index.md`. The options the
figures were drawn with (format, log axis, band, cell selection) are kept in `plots/figures.json`
(`FigureOptions`), so a later re-render (`ablate` after a resume) draws them the same way.

The activation, BN-statistics and overview figures show each arm at its own best grid cell, so a
learning-rate grid compares arms each at their tuned rate, as DeepOBS does. That cell is chosen by
the mean *validation* score (final by default), never by the test score the overview then shows,
and every such figure names the cell it shows and how it was chosen.

One idea, one file: every figure is a short method of `_Figures` drawing from the same tree with
the same panels; splitting the figures across files would only scatter that shared state.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from math import ceil
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from bnbench.analysis.figure_options import OPTIONS_FILE, FigureOptions, choose_options
from bnbench.analysis.figures import save_figure
from bnbench.analysis.panels import Diverged, Panels, hide_unused, new_figure
from bnbench.errors import SpecError
from bnbench.results.cells import markdown_safe
from bnbench.results.files import atomic_write_text, write_json
from bnbench.results.layout import PLOTS_DIR
from bnbench.results.rows import Selection, validation_score
from bnbench.results.tree import ResultsTree, grid_labels, load_results_tree

__all__ = ["COMPARE_MARKER", "INDEX", "draw_plots", "render_plots"]

# The file that makes a folder a `bnbench compare` output (`bnbench.analysis.compare` writes it).
# Its figures come from runs that lie elsewhere, so only `compare` can redraw them.
COMPARE_MARKER = "compare.json"

INDEX = "index.md"  # in plots/: every figure with its caption, and the choices behind them
# {where} is ", each arm at its grid cell with the best <validation score> ..." with a grid.
_CAPTIONS = {
    "curves": "{what} vs {unit}, one panel per grid cell: seed mean with {band}; train dashed, "
    "validation solid; x on the bottom strip = a run diverged there",
    "time_to_target": "training steps until the target is reached, per arm and grid cell: bar = "
    "mean over the runs that reached it, dots = seeds, k/n = runs that reached it, open "
    "triangle = a completed run that never did, at its last step (its time is at least that), "
    "hatched = none did",
    "sensitivity": "{score} vs {key} per arm (line = mean over seeds, dots = seeds); "
    "x on the bottom strip = diverged runs",
    "activation_percentiles": "15th/50th/85th percentiles of recorded activations over training, "
    "pooled over all units of a layer unless a panel names one unit, after Ioffe & Szegedy "
    "(2015) Fig. 1(b,c); one column per arm{where}",
    "train_inference_gap": "the same model evaluated in training mode (batch statistics, dashed) "
    "and inference mode (moving statistics, solid), one panel per grid cell and quantity: every "
    "cell, not only the best",
    "moving_statistics": "BN moving statistics, γ, β and batch-vs-moving gaps over "
    "training{where}; line style = layer",
    "variance_shift": "variance shift (Li et al. 2019): Var of each BN layer's input in training "
    "mode (dropout on) / in inference mode, geometric mean over units{where}; line style = layer",
    "overview": "one page: validation curves, final test score, time to target and activation "
    "percentiles{where}",
}
_UNEQUAL_BUDGETS = "; tick labels give each cell's training steps, which differ across the grid"
# moving_statistics.csv column -> (panel title, y label)
_BN_STATS = {
    "moving_mean_mean": ("moving mean, averaged over channels", "moving mean"),
    "moving_var_mean": ("moving variance, averaged over channels", "moving variance"),
    "gamma_mean": ("scale γ, averaged over channels", "γ"),
    "beta_mean": ("shift β, averaged over channels", "β"),
    "batch_mean_gap": ("gap: batch mean vs moving mean", "mean gap"),
    "batch_var_gap": ("gap: batch variance vs moving variance", "variance gap"),
}


def render_plots(
    results_dir: Path,
    fmt: str | None = None,
    log_loss: bool | None = None,
    *,
    band: str | None = None,
    select_by: Selection | None = None,
) -> list[Path]:
    """Draw every figure the results tree has data for into `results_dir/plots/`.

    Each option left None is the one the figures there were last drawn with (`figures.json`),
    else the default of `FigureOptions` (png, linear losses, ± 1 std, final validation score).
    Also writes `plots/index.md` (`draw_plots`) and records the options used in `figures.json`.

    Args:
        results_dir: An ablation directory (with runs.csv) or a single run directory.
        fmt: Figure format: png, svg or pdf.
        log_loss: Draw losses on a log axis.
        band: Band around the seed mean: "std" (± one standard deviation) or "minmax".
        select_by: Which mean validation score picks each arm's best grid cell: "final" (at the
            end of training, where the test score is read) or "best" (over training).

    Returns:
        The figure files written, in index order.

    Raises:
        SpecError: (a ValueError) If `fmt`, `band` or `select_by` is unknown, `results_dir` is
            missing, is not a results tree or is a `bnbench compare` output folder, or
            figures.json cannot be used; the message names the path. Nothing is written then.
    """
    if (Path(results_dir) / COMPARE_MARKER).is_file():
        raise SpecError(
            f"{results_dir} is a `bnbench compare` folder; re-run `bnbench compare RUN_DIR... "
            f"--out {results_dir}` to redraw it"
        )
    plots_dir = Path(results_dir) / PLOTS_DIR
    options = choose_options(
        plots_dir, format=fmt, log_loss=log_loss, band=band, select_by=select_by
    )
    return draw_plots(load_results_tree(Path(results_dir)), plots_dir, options)


def draw_plots(tree: ResultsTree, plots_dir: Path, options: FigureOptions) -> list[Path]:
    """Draw the figures of `tree` into `plots_dir`, with index.md and figures.json.

    index.md says which cell each arm is shown at and why, which options the figures were drawn
    with, then has one line per figure with its file name and caption. Every file is written
    atomically; figures.json and index.md last, so they never describe figures not yet drawn.

    Returns:
        The figure files written, in index order.

    Raises:
        SpecError: an option is unknown.
    """
    options.check()
    fmt = options.format
    plots_dir.mkdir(parents=True, exist_ok=True)
    panels = Panels(tree.arms, options.band, options.log_loss)
    figures = _Figures(tree, panels, options.select_by)
    written, lines = [], []
    for name, caption, draw in figures.found():
        path = plots_dir / f"{name}.{fmt}"
        save_figure(draw(), path, fmt)
        written.append(path)
        lines.append(f"- [{path.name}]({path.name}): {markdown_safe(caption)}")
    header = [f"# Figures for {markdown_safe(tree.name)}", "", *figures.choice_lines()]
    header += [
        f"Drawn as {options.describe()} (kept in {OPTIONS_FILE}: `bnbench plot` and `ablate` "
        "redraw with these unless given others).",
        "",
    ]
    failed = tree.runs.loc[tree.runs["status"] == "failed", "run_id"]
    if len(failed):
        named = markdown_safe(", ".join(failed))
        header += [f"Left out {len(failed)} failed run(s): {named}.", ""]
    drawn_before = _indexed(plots_dir / INDEX)
    write_json(plots_dir / OPTIONS_FILE, options.record())
    atomic_write_text(plots_dir / INDEX, "\n".join([*header, *lines, ""]))
    for name in drawn_before - {path.name for path in written}:
        (plots_dir / name).unlink(missing_ok=True)  # a figure this tree no longer has
    return written


_INDEXED = re.compile(r"^- \[([^\]/]+)\]\(\1\): ", re.MULTILINE)


def _indexed(index: Path) -> set[str]:
    """The figure files an earlier index.md listed: the ones bnbench drew, and only those, so
    that a redraw removes the ones it no longer draws and nothing a user put beside them."""
    try:
        text = index.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return {name for name in _INDEXED.findall(text) if not name.startswith(".")}


class _Figures:
    """The figures of one tree; each builder returns a Figure for `render_plots` to save."""

    def __init__(self, tree: ResultsTree, panels: Panels, select_by: Selection) -> None:
        self.tree, self.panels = tree, panels
        # A failed run is a crash, not a result: index.md lists it and no figure draws it.
        self.runs = tree.runs[tree.runs["status"] != "failed"]
        self.histories = tree.histories[tree.histories["status"] != "failed"]
        self.diagnostics = {k: v[v["status"] != "failed"] for k, v in tree.diagnostics.items()}
        self.choice = tree.best_cells(select_by)
        self.best = {arm: chosen.cell for arm, chosen in self.choice.items()}
        self.quantity = tree.metric or "loss"
        self.any_diverged = bool((self.runs["status"] == "diverged").any())
        words = validation_score(tree.metric, select_by)[1]
        gridded = len(tree.cells) > 1
        # How the best-cell figures chose their cells, in words for titles and captions.
        self.chosen_by = f"each arm at its grid cell with the best {words}" if gridded else ""
        self.where = f", {self.chosen_by} (chosen on validation, never on test)" if gridded else ""

    def choice_lines(self) -> list[str]:
        """For index.md: the cell each arm is shown at in the best-cell figures, and why."""
        if not self.chosen_by:
            return []
        head = f"Best-cell figures show {self.chosen_by}, never chosen on the test score:"
        labels = (markdown_safe(chosen.label) for chosen in self.choice.values())
        return [head, *(f"- {label}" for label in labels), ""]

    def labels(self) -> dict[str, str]:
        """Legend label of each arm in a best-cell figure: the arm and the cell it is shown at."""
        return {arm: chosen.label for arm, chosen in self.choice.items()}

    def found(self) -> list[tuple[str, str, Callable[[], Figure]]]:
        """(file stem, caption, builder) of every figure the tree has data for."""
        tree = self.tree
        found: list[tuple[str, str, Callable[[], Figure]]] = []
        band = "± 1 std band" if self.panels.band == "std" else "min–max band"
        what = f"loss and {tree.metric}" if tree.metric else "loss"
        for x, unit in (("step", "training step"), ("epoch", "epoch")):
            if x in self.histories and self.histories[x].notna().any():
                caption = _CAPTIONS["curves"].format(what=what, unit=unit, band=band)
                found.append((f"learning_curves_{x}", caption, partial(self.curves, x)))
        if self.runs["target_value"].notna().any():
            found.append(("time_to_target", _CAPTIONS["time_to_target"], self.time_to_target))
        for key, name, base in (("learning_rate", "lr", 10), ("batch_size", "batch_size", 2)):
            if tree.varies(f"training.{key}") and not self.runs.empty:
                caption = _CAPTIONS["sensitivity"].format(score=tree.score[1], key=_words(key))
                caption += _UNEQUAL_BUDGETS if self._unequal_budgets() else ""
                found.append((f"{name}_sensitivity", caption, partial(self.sensitivity, key, base)))
        diagnostics: list[tuple[str, set[str], Callable[[], Figure]]] = [
            ("activation_percentiles", {"layer", "p15", "p50", "p85"}, self.percentiles),
            ("train_inference_gap", {"train_mode_loss", "inference_mode_loss"}, self.gap),
            ("moving_statistics", {"layer"}, self.moving_statistics),
            ("variance_shift", {"layer", "variance_ratio"}, self.variance_shift),
        ]
        for name, columns, builder in diagnostics:
            frame = self.diagnostics[name]
            if not frame.empty and columns <= set(frame.columns):
                found.append((name, _CAPTIONS[name].format(where=self.where), builder))
        found.append(("overview", _CAPTIONS["overview"].format(where=self.where), self.overview))
        return found

    def curves(self, x: str) -> Figure:
        cells = [c for c in self.tree.cells if c in set(self.runs["cell"])] or [""]
        quantities = ["loss"] + ([self.tree.metric] if self.tree.metric else [])
        fig, facets = _facets(cells, quantities)
        for ax, cell, quantity in facets:
            frame = self.histories[self.histories["cell"] == cell]
            series = [(f"train_{quantity}", "--"), (f"val_{quantity}", "-")]
            diverged = self.panels.lines(ax, frame, x, series)
            ax.set_xlabel("training step" if x == "step" else "epoch")
            self.panels.y_axis(ax, quantity, diverged)
            ax.set_title(cell, fontsize=9)
        band = "± 1 std" if self.panels.band == "std" else "min–max over seeds"
        fig.suptitle(f"Learning curves (line: mean over seeds, band: {band})", fontsize=11)
        self.panels.legend(
            fig, styles=[("--", "train"), ("-", "validation")], diverged=self.any_diverged
        )
        return fig

    def time_to_target(self) -> Figure:
        width = max(6.0, min(10.0, 1.5 + 0.45 * len(self.tree.cells) * len(self.tree.arms)))
        fig, axes = new_figure(1, 1, height=3.6, width=width)
        groups = [(c, self.runs[self.runs["cell"] == c]) for c in self.tree.cells]
        self.panels.bars(axes[0][0], groups, self._target_label())
        axes[0][0].set_title(
            "bar: mean over the runs that reached the target · dots: seeds\n"
            "k/n: runs that reached it · hatched: none did (drawn up to the step budget)\n"
            "open triangle: a run that never reached it, at its last step (time ≥ that)",
            fontsize=8,
        )
        fig.suptitle("Time to target", fontsize=11)
        self.panels.legend(fig)
        return fig

    def sensitivity(self, key: str, base: int) -> Figure:
        column, score, _ = self.tree.score
        grid_key = f"grid.training.{key}"
        others = [k for k in self.tree.grid_keys if k != f"training.{key}"]
        facets = grid_labels(self.runs, others)
        labels = list(dict.fromkeys(facets))
        ncols = _columns(len(labels))
        fig, axes = new_figure(ceil(len(labels) / ncols), ncols, height=3.4)
        for i, label in enumerate(labels):
            ax, runs = axes[i // ncols][i % ncols], self.runs[facets == label]
            diverged: list[tuple[str, float]] = []
            for arm in self.tree.arms:
                mine, colour = runs[runs["arm"] == arm], self.panels.colours[arm]
                ok = mine[mine["status"] != "diverged"]
                ax.plot(ok[grid_key], ok[column], ".", color=colour, alpha=0.5)
                means = ok.groupby(grid_key)[column].mean().dropna()
                ax.plot(means.index, means.to_numpy(), "o-", color=colour, ms=5)
                diverged += [(arm, x) for x in mine.loc[mine["status"] == "diverged", grid_key]]
            ax.set_xscale("log", base=base)
            ticks = sorted(runs[grid_key].dropna().unique())
            steps = [_steps(runs[runs[grid_key] == t]) for t in ticks]
            budgets = self._unequal_budgets()
            names = [
                f"{t:g}\n{n} steps" if budgets and n else f"{t:g}"
                for t, n in zip(ticks, steps, strict=True)
            ]
            ax.set_xticks(ticks, names, fontsize=8 if budgets else None)
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel(
                f"{_words(key)} (log{base} scale)" + (", steps per run" if budgets else "")
            )
            self.panels.y_axis(ax, score, diverged)
            ax.set_title(label, fontsize=9)
        hide_unused(axes, len(labels))
        fig.suptitle(f"Sensitivity to the {_words(key)}", fontsize=11)
        self.panels.legend(fig, styles=[("-", "mean over seeds")], diverged=self.any_diverged)
        return fig

    def percentiles(self) -> Figure:
        data = self._at_best(self.diagnostics["activation_percentiles"])
        arms = self._arms_in(data)
        layers = list(dict.fromkeys(data["layer"]))[:3]
        fig, axes = new_figure(len(layers), len(arms), height=2.4)
        for r, layer in enumerate(layers):
            for c, arm in enumerate(arms):
                ax, mine = axes[r][c], data[(data["layer"] == layer) & (data["arm"] == arm)]
                self.panels.percentiles(ax, mine)
                cell = f" ({self.best[arm]})" if self.best.get(arm) else ""
                ax.set_title(f"{arm}{cell}\nlayer {layer}, {_units(mine)}", fontsize=9)
                ax.set_xlabel("training step")
                self.panels.y_axis(ax, "pre-activation value")
        pooled = "pooled over all units of a layer" if _units(data) == _POOLED else "per unit shown"
        fig.suptitle(
            f"Inputs to the nonlinearity over training (mean over seeds)\npercentiles {pooled}"
            + self._chosen_line(),
            fontsize=11,
        )
        styles = [("-", "50th percentile"), (":", "15th / 85th percentile")]
        self.panels.legend(fig, arms, styles=styles, labels=self.labels())
        return fig

    def gap(self) -> Figure:
        """Every grid cell, not only the best: whether the gap opens depends on the cell."""
        data = self.diagnostics["train_inference_gap"]
        has_metric = "train_mode_metric" in data and data["train_mode_metric"].notna().any()
        quantities = ["loss", "metric"] if has_metric else ["loss"]
        cells = [c for c in self.tree.cells if c in set(data["cell"])] or [""]
        fig, facets = _facets(cells, quantities, height=3.0)
        for ax, cell, quantity in facets:
            series = [(f"train_mode_{quantity}", "--"), (f"inference_mode_{quantity}", "-")]
            diverged = self.panels.lines(ax, data[data["cell"] == cell], "step", series)
            ax.set_xlabel("training step")
            self.panels.y_axis(ax, self.quantity if quantity == "metric" else "loss", diverged)
            ax.set_title(cell, fontsize=9)
        fig.suptitle("Training-mode vs inference-mode evaluation of the same model", fontsize=11)
        styles = [("--", "training mode"), ("-", "inference mode")]
        self.panels.legend(fig, self._arms_in(data), styles=styles)
        return fig

    def moving_statistics(self) -> Figure:
        data = self._at_best(self.diagnostics["moving_statistics"])
        stats = [s for s in _BN_STATS if s in data and data[s].notna().any()]
        layers = list(dict.fromkeys(data["layer"]))[:3]
        styles = ["-", "--", ":"][: len(layers)]
        ncols = max(min(len(stats), 3), 1)
        fig, axes = new_figure(ceil(len(stats) / ncols), ncols, height=2.5)
        for i, stat in enumerate(stats):
            ax = axes[i // ncols][i % ncols]
            for layer, style in zip(layers, styles, strict=True):
                mine = data[data["layer"] == layer]
                self.panels.lines(ax, mine, "step", [(stat, style)], band=False)
            ax.set_xlabel("training step")
            self.panels.y_axis(ax, _BN_STATS[stat][1])
            ax.set_title(_BN_STATS[stat][0], fontsize=9)
        hide_unused(axes, len(stats))
        title = "Batch-normalization statistics (mean over seeds)" + self._chosen_line()
        fig.suptitle(title, fontsize=11)
        layer_styles = [(s, f"layer {layer}") for s, layer in zip(styles, layers, strict=True)]
        self.panels.legend(fig, self._arms_in(data), styles=layer_styles, labels=self.labels())
        return fig

    def variance_shift(self) -> Figure:
        data = self._at_best(self.diagnostics["variance_shift"])
        fed = data["fed_by_dropout"].astype(str) == "True"  # layers dropout feeds come first
        layers = list(dict.fromkeys([*data.loc[fed, "layer"], *data["layer"]]))[:3]
        styles = ["-", "--", ":"][: len(layers)]
        fig, axes = new_figure(1, 1, height=3.2)
        ax = axes[0][0]
        for layer, style in zip(layers, styles, strict=True):
            mine = data[data["layer"] == layer]
            self.panels.lines(ax, mine, "step", [("variance_ratio", style)], band=False)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set(xlabel="training step", yscale="log",
               ylabel="Var(dropout on) / Var(dropout off) (log)")  # fmt: skip
        ax.grid(True, alpha=0.3)
        title = "Variance shift of the BN inputs (mean over seeds)" + self._chosen_line()
        fig.suptitle(title, fontsize=11)
        layer_styles = [(s, f"layer {layer}") for s, layer in zip(styles, layers, strict=True)]
        self.panels.legend(fig, self._arms_in(data), styles=layer_styles, labels=self.labels())
        return fig

    def overview(self) -> Figure:
        histories, quantity, panels = self._at_best(self.histories), self.quantity, self.panels
        column, score, _ = self.tree.score
        drawers: list[tuple[str, str, Callable[[Axes], Diverged]]] = [
            (
                f"validation {quantity}",
                quantity,
                lambda ax: panels.lines(ax, histories, "step", [(f"val_{quantity}", "-")]),
            ),
            (score, "", lambda ax: panels.strip(ax, self._at_best(self.runs), column, score)),
        ]
        if self.runs["target_value"].notna().any():
            groups = [("", self._at_best(self.runs))]
            drawers.append(
                (
                    "steps to target (k/n = runs that reached it)",
                    "",
                    lambda ax: panels.bars(ax, groups, self._target_label()),
                )
            )
        percentiles = self._at_best(self.diagnostics["activation_percentiles"])
        if not percentiles.empty and "p50" in percentiles:
            layer = percentiles["layer"].iloc[0]
            first = percentiles[percentiles["layer"] == layer]
            drawers.append(
                (
                    f"activation percentiles 15/50/85\nlayer {layer}, {_units(first)}",
                    "pre-activation value",
                    lambda ax: panels.percentiles(ax, first),
                )
            )
        if len(drawers) < 4:
            drawers.append(
                (
                    "training loss",
                    "loss",
                    lambda ax: panels.lines(ax, histories, "step", [("train_loss", "--")]),
                )
            )
        nrows, ncols = (2, 2) if len(drawers) == 4 else (1, len(drawers))
        fig, axes = new_figure(nrows, ncols, height=3.0 if nrows == 2 else 3.6)
        for ax, (title, ylabel, draw) in zip([a for r in axes for a in r], drawers, strict=True):
            diverged = draw(ax)
            if ylabel:  # the strip and bar panels label their own axes
                ax.set_xlabel("training step")
                panels.y_axis(ax, ylabel, diverged)
            ax.set_title(title, fontsize=10)
        fig.suptitle(f"{self.tree.name}: overview" + self._chosen_line(), fontsize=11)
        panels.legend(fig, diverged=self.any_diverged, labels=self.labels())
        return fig

    def _chosen_line(self) -> str:
        """A second title line naming how the best-cell figure chose its cells."""
        return f"\n{self.chosen_by}" if self.chosen_by else ""

    def _unequal_budgets(self) -> bool:
        """Whether cells train for different numbers of steps (say, over a batch-size grid)."""
        return self.tree.varies("training.batch_size") or self.runs["total_steps"].nunique() > 1

    def _at_best(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["cell"] == frame["arm"].map(self.best)] if len(frame) else frame

    def _arms_in(self, frame: pd.DataFrame) -> list[str]:
        return [arm for arm in self.tree.arms if arm in set(frame["arm"])]

    def _target_label(self) -> str:
        target = self.runs.dropna(subset=["target_value"]).iloc[0]
        name = target.get("target_metric")
        name = name if isinstance(name, str) and name else "target"
        return f"training steps to reach\n{name} {target['target_value']:g}"


def _facets(
    cells: list[str], quantities: list[str], height: float = 2.7
) -> tuple[Figure, list[tuple[Axes, str, str]]]:
    """One panel per grid cell and quantity: a block of up to three columns per quantity.

    Returns:
        The figure and (axes, cell, quantity) of each panel in use; the rest are hidden.
    """
    ncols = _columns(len(cells))
    block = ceil(len(cells) / ncols)  # rows per quantity
    fig, axes = new_figure(len(quantities) * block, ncols, height=height)
    facets = []
    for q, quantity in enumerate(quantities):
        for i in range(block * ncols):
            ax = axes[q * block + i // ncols][i % ncols]
            if i < len(cells):
                facets.append((ax, cells[i], quantity))
            else:
                ax.set_visible(False)
    return fig, facets


_POOLED = "pooled over all units"


def _units(frame: pd.DataFrame) -> str:
    """Which units the percentiles in `frame` cover; a file without `units` pooled them all."""
    units = sorted(set(frame["units"])) if "units" in frame and len(frame) else ["pooled"]
    if units == ["pooled"]:
        return _POOLED
    return ", ".join("pooled" if u == "pooled" else f"unit {u}" for u in units)


def _steps(runs: pd.DataFrame) -> str:
    """Steps per run of `runs`: "500", or "400–500" when they differ; "" when unknown."""
    steps = runs["total_steps"].dropna()
    if steps.empty:
        return ""
    low, high = steps.min(), steps.max()
    return f"{low:.0f}" if low == high else f"{low:.0f}–{high:.0f}"


def _columns(panels: int) -> int:
    """Up to three panels per row; four make a square."""
    return 2 if panels == 4 else max(min(panels, 3), 1)


def _words(key: str) -> str:
    return key.replace("_", " ")
