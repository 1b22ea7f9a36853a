"""Summary tables of an ablation, rebuilt from its run directories alone.

`build_report` reads `RESULTS_DIR/runs/*/` (each run's `ablation.json`, `config.yaml` and
`summary.json`) and `ablation.yaml` when present, and writes `runs.csv` (one row per run) and
`summary.{csv,md,json}` (one row per arm and grid cell; `summary.tex` on request, its columns
picked from `latex_catalogue`, rendered by `bnbench.analysis.latex`). It never
trains and never imports Keras, so the tables can be rebuilt at any time, even while runs go on.
The statistics and their definitions live in `bnbench.analysis.stats`.

It runs past 300 lines because it holds one idea in all its renderings: the same summary rows
as CSV, JSON, Markdown, LaTeX and the terminal share one set of cell formatters (`_display`),
so that the four tables can never disagree about a number or a mark.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from bnbench.analysis.latex import DEFAULT_COLUMNS, check_columns, label_for, latex_table
from bnbench.analysis.multiplicity import CORRECTIONS
from bnbench.analysis.precision import (
    column_decimals,
    decimals_for,
    fixed,
    p_decimals,
    p_text,
)
from bnbench.analysis.stats import (
    CORRECTION,
    DEFINITIONS,
    FEWER_PAIRS,
    STATUSES,
    SUMMARY_STATS,
    summarize,
)
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.cells import markdown_safe
from bnbench.results.files import atomic_write_text, write_csv
from bnbench.results.layout import RUNS_CSV, RUNS_DIR, TABLES
from bnbench.results.rows import (
    DEFAULT_BN_STATISTICS,
    Selection,
    run_columns,
    run_row,
    validation_score,
)
from bnbench.results.tree_files import TablesSummary, read_ablation, write_tables_summary

STALLED = (
    "completed runs of a classifier whose validation accuracy never left chance, or ended "
    "back at it (within half a class share); they are counted in the means"
)
BEST = "★"  # marks each arm's best cell (by validation) in the markdown, LaTeX and terminal


@dataclass(frozen=True)
class Report:
    """The summary of one results tree and the files it was written to.

    Attributes:
        root: The results directory.
        rows: One dict per arm and grid cell, keyed by `summary_columns`; None for a blank.
        runs: One dict per run directory, holding at least `run_columns`.
        arms: Arm names in ablation order.
        grid_keys: Dotted keys the grid varies.
        reference: The arm every other arm is compared with.
        metric: The runs' metric, e.g. "accuracy", or None for runs that only record a loss.
        select_by: Which validation score ("final" or "best") picked each arm's best cell.
        paths: File name -> path of every file written.
        latex_columns: The columns of summary.tex (keys of `latex_catalogue`); () for none.
        notes: Choices made before the summary (how runs were grouped, say), printed first
            among `choices`.
        unit: What a row's `arm` is called in headers: "arm", or "group" for `bnbench compare`.
    """

    root: Path
    rows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    arms: tuple[str, ...]
    grid_keys: tuple[str, ...]
    reference: str
    metric: str | None
    select_by: Selection = "final"
    paths: dict[str, Path] = field(default_factory=dict)
    latex_columns: tuple[str, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)
    unit: str = "arm"
    on_test: bool = False  # some run validated on the test split: its best cell was chosen on test

    @property
    def score_label(self) -> str:
        """What the summary averages, in words: "test accuracy", or "test loss"."""
        return f"test {self.metric or 'loss'}"

    @property
    def choices(self) -> dict[str, str]:
        """Each choice that shapes the numbers, in words: printed above every summary."""
        quantity = validation_score(self.metric, self.select_by)[1]
        made = dict(self.notes)
        if self.grid_keys:
            made["best cell"] = f"chosen by {quantity} over completed runs ({BEST}), {_by(self)}"
        made["means"] = "over completed runs; (n=k/m) when a mean has fewer than the cell's m runs"
        made["time to target"] = (
            "a run that never reached the target is censored at its last step "
            "(≥: a lower bound, ≤: an upper bound)"
        )
        made["BN statistics at evaluation"] = _bn_statistics(self.runs)
        return made

    @property
    def definitions(self) -> dict[str, str]:
        """What every column means (`DEFINITIONS`); without a grid, no best cell is marked."""
        stalled = {"stalled": STALLED}
        if self.grid_keys:
            return {**DEFINITIONS, **stalled}
        return {key: text for key, text in DEFINITIONS.items() if key != "best cell"} | stalled

    @property
    def run_columns(self) -> list[str]:
        return run_columns(self.grid_keys)

    @property
    def summary_columns(self) -> list[str]:
        stats = list(SUMMARY_STATS)
        stats.insert(stats.index(STATUSES[-1]) + 1, "stalled")
        return ["arm", "cell", *(f"grid.{key}" for key in self.grid_keys), *stats]


def build_report(
    results_dir: Path,
    *,
    latex: bool = False,
    latex_columns: Sequence[str] | None = None,
    select_by: Selection = "final",
) -> Report:
    """Rebuild runs.csv and the summary tables of an ablation from its run directories.

    Args:
        results_dir: The ablation's results directory, holding `runs/<run_id>/`.
        latex: Also write `summary.tex` (a booktabs table with caption and label). Without it, a
            `summary.tex` left by an earlier call is removed, so that no table outlives the runs
            it describes.
        latex_columns: The table's columns, keys of `latex_catalogue`; None: `DEFAULT_COLUMNS`
            (arm, cell with a grid, score, to_target, reached, diff).
        select_by: Which mean validation score marks each arm's best cell: "final" (at the end
            of training, the point the test score is read at) or "best" (over training).

    Returns:
        The report: summary rows, run rows and the paths written.

    Raises:
        SpecError: The directory has no `runs/` folder or no run directory in it, a file in it
            cannot be parsed (the message names the path), `select_by` is unknown, or
            `latex_columns` is given without `latex` or names an unknown column (then nothing
            is written).
    """
    if latex_columns is not None and not latex:
        raise SpecError("LaTeX columns are used only with the LaTeX table (--latex)")
    root = Path(results_dir)
    spec = read_ablation(root)  # empty for a tree copied without its spec
    found = [(path, rundir.read_entry(path)) for path in _run_dirs(root)]
    grid_spec = spec.grid
    keys = [str(k) for k in grid_spec]
    for _, ablation in found:
        keys += [str(k) for k in _mapping(ablation.get("grid"))]
    grid_keys = tuple(dict.fromkeys(keys))
    runs = [run_row(path, ablation, grid_keys) for path, ablation in found]
    arms = tuple(dict.fromkeys([*spec.arms, *(run["arm"] for run in runs)]))
    runs.sort(key=lambda run: _run_order(run, arms, grid_keys, grid_spec))
    reference = spec.reference or arms[0]
    metric = next((run["metric"] for run in runs if run["metric"]), None)
    rows = count_stalled(summarize(runs, grid_keys, reference, metric, by=select_by), runs,
                         grid_keys)  # fmt: skip
    report = Report(root, rows, runs, arms, grid_keys, reference, metric, select_by)
    if grid_keys and any(_validated_on_test(path) for path, _ in found):
        report = replace(report, on_test=True)
    if latex:  # checked before anything is written
        report = replace(report, latex_columns=tuple(pick_latex_columns(report, latex_columns)))
    _write(report, spec.name or root.name)
    return report


def count_stalled(
    rows: list[dict[str, Any]], runs: list[dict[str, Any]], grid_keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    """`rows` with `stalled`: how many runs of the row's arm and cell stalled (never left
    chance, or ended at it). Stalled runs are completed runs, counted in their means; this
    column says how many of them learned nothing."""
    for row in rows:
        row["stalled"] = sum(
            run["stalled"] == 1
            for run in runs
            if run["arm"] == row["arm"]
            and all(run[f"grid.{key}"] == row[f"grid.{key}"] for key in grid_keys)
        )
    return rows


def latex_catalogue(report: Report) -> dict[str, str]:
    """Every column the LaTeX table can show: key -> header, in the markdown table's order.

    The formatted columns first (`score` is "mean ± std (n=k/m)", `diff` "Δ [95% CI]", ...), then
    `cell`, then every other summary.csv column as its raw value.
    """
    score = report.score_label
    compact = {"score": score, "to_target": "steps to target", "final_val": "final val"}
    compact |= {"best_val": "best val", "diff": f"Δ vs {report.reference} [95% CI]"}
    columns = {key: compact.get(key, header) for key, header in _headers(report)}
    columns.setdefault("cell", "cell")
    for key in report.summary_columns:
        columns.setdefault(key, key)
    return columns


def pick_latex_columns(report: Report, requested: Sequence[str] | None) -> list[str]:
    """The LaTeX table's columns: `requested` when each is in `latex_catalogue`, else defaults.

    The row labels are always kept, so that no table has rows nobody can name: `arm` goes
    first when `requested` leaves it out, and with a grid `cell` right after `arm` (unless a
    `cell` or `grid.<key>` column is requested).

    Raises:
        SpecError: a requested column is unknown or given twice (the message lists them all).
    """
    if requested is None:
        return [c for c in DEFAULT_COLUMNS if c != "cell" or report.grid_keys]
    picked = check_columns(requested, list(latex_catalogue(report)))
    if "arm" not in picked:
        picked.insert(0, "arm")
    if report.grid_keys and not any(c == "cell" or c.startswith("grid.") for c in picked):
        picked.insert(picked.index("arm") + 1, "cell")
    return picked


def render_table(report: Report) -> Group:
    """The summary for the terminal: outcomes per arm, the paired comparisons, then the choices.

    Two narrow tables rather than one wide one, so that both fit an 80-column terminal. The
    budget (steps per run) gets a column only when it differs between rows; a note below states
    it otherwise, with every choice that shapes the numbers.
    """
    decimals = _decimals(report.rows)
    rows = [_display(row, report, decimals) for row in report.rows]
    for cells, row in zip(rows, report.rows, strict=True):
        cells["status"] = "/".join(str(row[status]) for status in STATUSES)
        cells["to_target"] = _to_target(row, decimals["to_target"], with_reached=True)
    names = {"arm": report.unit, "cell": "cell"} if report.grid_keys else {"arm": report.unit}
    budgets = {(cells["steps"], cells["examples"]) for cells in rows}
    budget = {"steps": "steps"} if len(budgets) > 1 else {}
    stalled = {"stalled": "stalled"} if any(row["stalled"] for row in report.rows) else {}
    columns = {**names, "n": "n", "status": "runs", **stalled, **budget}
    outcomes = _terminal_table(
        f"{report.score_label}, mean ± std over seeds",
        "runs: completed/diverged/failed/incomplete"
        + (f"\nstalled: {STALLED}" if stalled else ""),
        {**columns, "score": "mean ± std", "to_target": "to target"},
        rows,
    )
    paired = [
        cells
        for cells, row in zip(rows, report.rows, strict=True)
        if row["arm"] != report.reference
    ]
    comparisons: Table | Text = _terminal_table(
        f"paired over seeds against {report.reference} (t test; exact sign-flip when tied)",
        "speedup: reference / arm steps to target, geometric mean over paired seeds\n"
        f"p {CORRECTION}: p adjusted over all comparisons, {CORRECTIONS[CORRECTION]}\n"
        f"pairs: completed in both arms / seeds; {FEWER_PAIRS}: fewer pairs than seeds",
        {
            **names,
            "pairs": "pairs",
            "diff": "Δ [95% CI]",
            "p": "p",
            "p_adjusted": f"p {CORRECTION}",
            "speedup": "speedup",
        },
        paired,
    )
    if not paired:  # an empty table would read as a comparison that found nothing
        comparisons = Text(f"One {report.unit}: nothing to pair.\n")
    notes = _choice_lines(report)
    if len(budgets) == 1 and (steps := next(iter(budgets)))[0]:
        notes.insert(0, f"Budget: {steps[0]} steps ({steps[1] or '?'} examples) per run.")
    return Group(outcomes, comparisons, Text("\n".join(notes)))


def _choice_lines(report: Report) -> list[str]:
    return [f"{key[0].upper()}{key[1:]}: {text}." for key, text in report.choices.items()]


def _bn_statistics(runs: list[dict[str, Any]]) -> str:
    """Which BN statistics evaluation used, over the runs that trained."""
    trained = [run for run in runs if run["status"] in ("completed", "diverged")]
    counts = Counter(run["bn_statistics"] or DEFAULT_BN_STATISTICS for run in trained)
    unrecorded = sum(not run["bn_statistics"] for run in trained)
    if len(counts) > 1:
        text = ", ".join(f"{mode} in {_runs(k)}" for mode, k in counts.items())
    else:
        text = next(iter(counts), DEFAULT_BN_STATISTICS)
    if unrecorded:
        text += f" ({_runs(unrecorded)} predate the record: moving was the only mode then)"
    return text


def _validated_on_test(path: Path) -> bool:
    """Whether the run at `path` used the test split as its validation split."""
    dataset = rundir.read_config(path).get("dataset")
    return isinstance(dataset, dict) and dataset.get("validation_split") == "test"


def _by(report: Report) -> str:
    """How the best cell relates to the test split, in words."""
    if report.on_test:
        return "which here IS the test split (validation_split: test): its test score is optimistic"
    return "never by test"


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _terminal_table(
    title: str, caption: str, columns: dict[str, str], rows: list[dict[str, str]]
) -> Table:
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, caption_justify="left")
    for key, header in columns.items():
        left = key in ("arm", "cell")
        # Names may wrap on a narrow terminal (a compare group's label is long); numbers never.
        wrap = {"overflow": "fold"} if key == "arm" else {"no_wrap": True}
        table.add_column(header, justify="left" if left else "right", **wrap)
    for cells in rows:
        table.add_row(*(cells[key] for key in columns))
    return table


def _run_dirs(root: Path) -> list[Path]:
    runs = root / RUNS_DIR
    if not runs.is_dir():
        raise SpecError(f"{str(root)!r} is not an ablation results directory: it has no runs/")
    dirs = sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise SpecError(f"{str(runs)!r} holds no run directories")
    return dirs


def _run_order(
    run: dict[str, Any], arms: tuple[str, ...], grid_keys: tuple[str, ...], grid: dict[str, Any]
) -> tuple[Any, ...]:
    """Arm order, then the cell's place in the ablation's grid, then seed."""
    cell = []
    for key in grid_keys:
        value, listed = run[f"grid.{key}"], [_text(v) for v in grid.get(key) or []]
        place = listed.index(_text(value)) if _text(value) in listed else len(listed)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        cell.append((place, not number, float(value) if number else 0.0, _text(value)))
    seed = run["seed"]
    return arms.index(run["arm"]), cell, seed is None, seed or 0, run["run_id"]


def _write(report: Report, name: str) -> None:
    root, paths = report.root, report.paths
    csv, js, md, tex = (TABLES[kind] for kind in ("csv", "json", "md", "tex"))
    paths.update({f: root / f for f in (RUNS_CSV, csv, js, md)})
    write_csv(paths[RUNS_CSV], report.runs, report.run_columns)
    write_csv(paths[csv], report.rows, report.summary_columns)
    rows = [{k: row[k] for k in report.summary_columns} for row in report.rows]
    summary = TablesSummary(name=name, reference=report.reference, metric=report.metric,
                            score=report.score_label, grid_keys=list(report.grid_keys),
                            select_by=report.select_by, choices=report.choices,
                            definitions=report.definitions, rows=rows)  # fmt: skip
    write_tables_summary(root, summary)
    atomic_write_text(paths[md], markdown_summary(report, name))
    if report.latex_columns:
        paths[tex] = root / tex
        atomic_write_text(paths[tex], latex_summary(report, name))
    else:
        (root / tex).unlink(missing_ok=True)


def _headers(report: Report) -> list[tuple[str, str]]:
    """(display key, header) of the markdown and LaTeX tables."""
    score, quantity = report.score_label, report.metric or "loss"
    columns = [("arm", report.unit), *((f"grid.{k}", k) for k in report.grid_keys), ("n", "n")]
    columns += [(status, status) for status in STATUSES]
    columns += [("stalled", "stalled")]
    columns += [("steps", "steps"), ("examples", "examples")]
    columns += [("score", f"{score} (mean ± std)")]
    columns += [("final_val", f"final val {quantity} (mean)")]
    columns += [("best_val", f"best val {quantity} (mean)")]
    columns += [("to_target", "steps to target (mean ± std)"), ("reached", "reached")]
    columns += [("step_time", "ms/step"), ("pairs", "pairs")]
    columns += [("diff", f"Δ {score} vs {report.reference} [95% CI]"), ("p", "p")]
    columns += [("p_adjusted", f"p ({CORRECTION})")]
    return [*columns, ("speedup", "speedup (steps)")]


def _display_rows(report: Report) -> list[dict[str, str]]:
    """Every row's summary values as text, each numeric column at one number of decimals."""
    decimals = _decimals(report.rows)
    return [_display(row, report, decimals) for row in report.rows]


def _decimals(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The decimals of each numeric column, the same for all its rows, chosen from the column
    (`bnbench.analysis.precision`): from its spread where it has one (std, interval)."""
    halves = [(row["diff_ci_high"] - row["diff_ci_low"]) / 2 for row in rows
              if row["diff_ci_low"] is not None and row["diff_ci_high"] is not None]  # fmt: skip
    return {
        "score": column_decimals([row["final_test_std"] for row in rows],
                                 [row["final_test_mean"] for row in rows], 4),
        "to_target": 0,  # whole steps: a fraction of a step is below what seeds resolve
        "final_val": decimals_for((row["final_val_mean"] for row in rows), 4),
        "best_val": decimals_for((row["best_val_mean"] for row in rows), 4),
        "step_time": decimals_for((row["step_time_ms_mean"] for row in rows), 3),
        "diff": column_decimals(halves, (row["diff_mean"] for row in rows), 3),
        "p": p_decimals(row["p_value"] for row in rows),
        "p_adjusted": p_decimals(row["p_adjusted"] for row in rows),
    }


def _display(row: dict[str, Any], report: Report, decimals: dict[str, int]) -> dict[str, str]:
    """Every summary value of `row` as text, with the `decimals` of each numeric column;
    blanks are ""."""
    cells = {key: _fmt(row[key], "g") for key in row}
    best = row["best_cell"] and report.grid_keys
    cells["arm"] = f"{row['arm']} {BEST}" if best else row["arm"]
    cells["steps"], cells["examples"] = _fmt(row["steps"], ".0f"), _fmt(row["examples"], ".0f")
    score = _pm(row["final_test_mean"], row["final_test_std"], decimals["score"])
    cells["score"] = _with_n(score, row["final_test_n"], row["n"])
    cells["final_val"] = fixed(row["final_val_mean"], decimals["final_val"])
    cells["best_val"] = fixed(row["best_val_mean"], decimals["best_val"])
    cells["to_target"] = _to_target(row, decimals["to_target"])
    cells["reached"] = "" if row["reached"] is None else f"{row['reached']}/{row['n']}"
    cells["step_time"] = fixed(row["step_time_ms_mean"], decimals["step_time"])
    pairs, seeds = row["n_pairs"], row["n_seeds"]
    cells["pairs"] = "" if pairs is None else f"{pairs}/{seeds}"
    mark = f" {FEWER_PAIRS}" if pairs is not None and pairs < seeds else ""
    diff, low, high = row["diff_mean"], row["diff_ci_low"], row["diff_ci_high"]
    places = decimals["diff"]
    interval = (f" [{fixed(low, places, sign=True)}, {fixed(high, places, sign=True)}]"
                if low is not None and high is not None else "")  # fmt: skip
    cells["diff"] = "" if diff is None else f"{fixed(diff, places, sign=True)}{interval}{mark}"
    p_value, adjusted = row["p_value"], row["p_adjusted"]
    cells["p"] = "" if p_value is None else f"{p_text(p_value, decimals['p'])}{mark}"
    cells["p_adjusted"] = (
        "" if adjusted is None else f"{p_text(adjusted, decimals['p_adjusted'])}{mark}"
    )
    cells["speedup"] = _speedup(row)
    # Short keys keep the terminal table narrow; the files keep the full dotted keys.
    short = [(key.rsplit(".", 1)[-1], row[f"grid.{key}"]) for key in report.grid_keys]
    cells["cell"] = ", ".join(f"{key}={_fmt(value, 'g')}" for key, value in short)
    return cells


def _with_n(text: str, used: int, runs: int, *notes: str) -> str:
    """`text` with "(n=k/m)" when its mean averages fewer than all m runs, and any `notes`."""
    shown = [f"n={used}/{runs}"] if used < runs else []
    shown += notes
    return " ".join(part for part in (text, f"({', '.join(shown)})" if shown else "") if part)


def _to_target(row: dict[str, Any], decimals: int, *, with_reached: bool = False) -> str:
    """Mean steps to target; "≥ mean" when runs that never reached it count at their last step.

    Args:
        row: A summary row.
        decimals: The column's decimals.
        with_reached: Add "k/m reached" (the terminal, which has no "reached" column).
    """
    mean, n = row["steps_to_target_mean"], row["steps_to_target_n"]
    if n is None:
        return ""  # no target
    bound = "≥ " + fixed(mean, decimals) if row["steps_to_target_censored"] else ""
    reached = [f"{row['reached']}/{row['n']} reached"] if with_reached else []
    text = bound or _pm(mean, row["steps_to_target_std"], decimals)
    return _with_n(text, n, row["n"], *reached)


_BOUND_MARKS = {"exact": "", "lower": "≥ ", "upper": "≤ ", "": ""}


def _speedup(row: dict[str, Any]) -> str:
    """E.g. "≥ 1.25× (3 pairs)"; "no bound (3 pairs)" when pairs bound it from both sides."""
    speedup, pairs = row["speedup"], row["speedup_pairs"]
    if not pairs:
        return ""
    counted = f"({pairs} {'pair' if pairs == 1 else 'pairs'})"
    if speedup is None:
        return f"no bound {counted}"
    return f"{_BOUND_MARKS[row['speedup_bound']]}{speedup:.2f}× {counted}"


def markdown_summary(report: Report, name: str) -> str:
    """summary.md: the choices, one row per arm and cell with every column, the definitions."""
    headers = _headers(report)
    safe = markdown_safe  # labels come from user files: no HTML, no links, no broken rows
    reference = report.reference  # a code span shows HTML as text; a backtick would end it
    reference = f"`{reference}`" if "`" not in reference else safe(reference)
    lines = [f"# {safe(name)}", "", f"Reference {report.unit}: {reference}.", ""]
    lines += [f"- {safe(line)}" for line in _choice_lines(report)] + [""]
    lines.append("| " + " | ".join(safe(header) for _, header in headers) + " |")
    lines.append("|" + "|".join("---" if k == "arm" else "--:" for k, _ in headers) + "|")
    for cells in _display_rows(report):
        lines.append("| " + " | ".join(safe(cells[k]) for k, _ in headers) + " |")
    lines += ["", *(f"- {key}: {text}" for key, text in report.definitions.items())]
    return "\n".join(lines) + "\n"


def latex_summary(report: Report, name: str) -> str:
    """summary.tex: the `latex_columns` of every row, with a caption that explains their marks."""
    catalogue = latex_catalogue(report)
    columns = {key: catalogue[key] for key in report.latex_columns}
    rows = _display_rows(report)
    text = ["arm", "cell", *(f"grid.{key}" for key in report.grid_keys), "reference"]
    caption = _caption(report, name, columns, rows)
    return latex_table(columns, rows, caption=caption, label=label_for(name), text_columns=text)


def _caption(report: Report, name: str, columns: dict[str, str], rows: list[dict[str, str]]) -> str:
    """What the table shows and every choice and mark in it, in plain text."""
    shown = "".join(cells[key] for cells in rows for key in columns)
    parts = [f"{name}."]
    if "score" in columns:
        parts = [f"{name}: {report.score_label}, mean ± std over completed runs."]
    if "(n=" in shown:
        parts.append("n=k/m: a mean over k of the m runs.")
    if "to_target" in columns:
        parts.append("Steps to target: mean ± std; ≥: a lower bound, as runs that never "
                     "reached it count at their last step.")  # fmt: skip
    if "reached" in columns:
        parts.append("Reached: runs that reached the target, of all runs.")
    if {"diff", "p", "speedup"} & set(columns):
        parts.append(f"Paired over seeds against {report.reference}.")
    if "diff" in columns:
        parts.append(
            "Δ: the mean difference with its 95% t interval (exact sign-flip, "
            "widened by half the grid step, where the differences tie)."
        )
    if {"p", "p_value"} & set(columns):
        parts.append(
            "p: two-sided paired t test (scipy.stats.ttest_rel) of that difference, "
            "the exact sign-flip permutation test where the differences tie."
        )
    if "p_adjusted" in columns:
        parts.append(
            f"p ({CORRECTION}): p adjusted over every comparison of the table, "
            f"{CORRECTIONS[CORRECTION]}."
        )
    if "speedup" in columns:
        parts.append("Speedup: reference / arm steps to target, geometric mean over seeds "
                     "(above 1: faster); ≥, ≤: a bound "
                     "when a run never reached the target.")  # fmt: skip
    if FEWER_PAIRS in shown:
        parts.append(f"{FEWER_PAIRS}: fewer pairs than seeds.")
    if BEST in shown:
        quantity = validation_score(report.metric, report.select_by)[1]
        parts.append(f"{BEST}: each arm's best cell by {quantity}, {_by(report)}.")
    parts.append(f"BN statistics at evaluation: {_bn_statistics(report.runs)}.")
    return " ".join(parts)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def _pm(mean: float | None, std: float | None, decimals: int) -> str:
    """"mean ± std", both with the column's `decimals`; "" without a mean."""
    spread = "" if std is None else f" ± {fixed(std, decimals)}"
    return "" if mean is None else fixed(mean, decimals) + spread


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """A grid value as one canonical string, for matching it against the ablation's grid."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
