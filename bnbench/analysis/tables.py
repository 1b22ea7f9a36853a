"""Summary tables of an ablation, rebuilt from its run directories alone.

`build_report` reads `RESULTS_DIR/runs/*/` (each run's `ablation.json`, `config.yaml` and
`summary.json`) and `ablation.yaml` when present, and writes `runs.csv` (one row per run) and
`summary.{csv,md,json}` (one row per arm and grid cell; `summary.tex` on request). It never
trains and never imports Keras, so the tables can be rebuilt at any time, even while runs go on.
The statistics and their definitions live in `bnbench.analysis.stats`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table

from bnbench.analysis.stats import DEFINITIONS, STATUSES, SUMMARY_STATS, summarize
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.files import atomic_write_text, read_mapping, write_csv, write_json
from bnbench.results.layout import ABLATION, RUNS_CSV, RUNS_DIR, TABLES
from bnbench.results.rows import run_columns, run_row


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
        paths: File name -> path of every file written.
    """

    root: Path
    rows: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    arms: tuple[str, ...]
    grid_keys: tuple[str, ...]
    reference: str
    metric: str | None
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def score_label(self) -> str:
        """What the summary averages, in words: "test accuracy", or "test loss"."""
        return f"test {self.metric or 'loss'}"

    @property
    def run_columns(self) -> list[str]:
        return run_columns(self.grid_keys)

    @property
    def summary_columns(self) -> list[str]:
        return ["arm", "cell", *(f"grid.{key}" for key in self.grid_keys), *SUMMARY_STATS]


def build_report(results_dir: Path, *, latex: bool = False) -> Report:
    """Rebuild runs.csv and the summary tables of an ablation from its run directories.

    Args:
        results_dir: The ablation's results directory, holding `runs/<run_id>/`.
        latex: Also write `summary.tex` (a booktabs tabular). Without it, a `summary.tex` left by
            an earlier call is removed, so that no table outlives the runs it describes.

    Returns:
        The report: summary rows, run rows and the paths written.

    Raises:
        SpecError: The directory has no `runs/` folder or no run directory in it, or a file in
            it cannot be parsed; the message names the path.
    """
    root = Path(results_dir)
    spec = read_mapping(root / ABLATION)  # {} for a tree copied without its spec
    found = [(path, rundir.read_entry(path)) for path in _run_dirs(root)]
    grid_spec = _mapping(spec.get("grid"))
    keys = [str(k) for k in grid_spec]
    for _, ablation in found:
        keys += [str(k) for k in _mapping(ablation.get("grid"))]
    grid_keys = tuple(dict.fromkeys(keys))
    runs = [run_row(path, ablation, grid_keys) for path, ablation in found]
    declared = spec.get("arms")
    declared = list(declared) if isinstance(declared, dict | list) else []
    arms = tuple(dict.fromkeys([*map(str, declared), *(run["arm"] for run in runs)]))
    runs.sort(key=lambda run: _run_order(run, arms, grid_keys, grid_spec))
    reference = str(spec.get("reference") or arms[0])
    metric = next((run["metric"] for run in runs if run["metric"]), None)
    rows = summarize(runs, grid_keys, reference, metric)
    report = Report(root, rows, runs, arms, grid_keys, reference, metric)
    _write(report, str(spec.get("name") or root.name), latex)
    return report


def render_table(report: Report) -> Group:
    """The summary for the terminal: outcomes per arm, then the paired comparisons.

    Two narrow tables rather than one wide one, so that both fit an 80-column terminal.
    """
    rows = [_display(row, report) for row in report.rows]
    for cells, row in zip(rows, report.rows, strict=True):
        cells["status"] = "/".join(str(row[status]) for status in STATUSES)
        cells["steps"] += f" ({cells['reached']})" if cells["reached"] else ""
        cells["speedup"] = _fmt(row["speedup"], ".2f") + ("×" if row["speedup"] else "")
    names = {"arm": "arm", "cell": "cell"} if report.grid_keys else {"arm": "arm"}
    outcomes = _terminal_table(
        f"{report.score_label}, mean ± std over seeds",
        "runs: completed/diverged/failed/incomplete · to target: steps (runs that reached it)",
        {**names, "n": "n", "status": "runs", "score": "mean ± std", "steps": "to target"},
        rows,
    )
    comparisons = _terminal_table(
        f"paired over seeds against {report.reference} (t test)",
        "speedup: reference steps to target / arm steps, over seeds where both reached it",
        {**names, "diff": "Δ [95% CI]", "p": "p", "speedup": "speedup"},
        [
            cells
            for cells, row in zip(rows, report.rows, strict=True)
            if row["arm"] != report.reference
        ],
    )
    return Group(outcomes, comparisons)


def _terminal_table(
    title: str, caption: str, columns: dict[str, str], rows: list[dict[str, str]]
) -> Table:
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, caption_justify="left")
    for key, header in columns.items():
        left = key in ("arm", "cell")
        table.add_column(header, justify="left" if left else "right", no_wrap=True)
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


def _write(report: Report, name: str, latex: bool) -> None:
    root, paths = report.root, report.paths
    csv, js, md, tex = (TABLES[kind] for kind in ("csv", "json", "md", "tex"))
    paths.update({f: root / f for f in (RUNS_CSV, csv, js, md)})
    write_csv(paths[RUNS_CSV], report.runs, report.run_columns)
    write_csv(paths[csv], report.rows, report.summary_columns)
    rows = [{k: row[k] for k in report.summary_columns} for row in report.rows]
    head: dict[str, Any] = {"name": name, "reference": report.reference, "metric": report.metric}
    head.update(score=report.score_label, grid_keys=list(report.grid_keys))
    write_json(paths[js], {**head, "definitions": DEFINITIONS, "rows": rows})
    atomic_write_text(paths[md], _markdown(report, name))
    if latex:
        paths[tex] = root / tex
        atomic_write_text(paths[tex], _latex(report))
    else:
        (root / tex).unlink(missing_ok=True)


def _headers(report: Report) -> list[tuple[str, str]]:
    """(display key, header) of the markdown and LaTeX tables."""
    score, best = report.score_label, f"best val {report.metric or 'loss'}"
    columns = [("arm", "arm"), *((f"grid.{k}", k) for k in report.grid_keys), ("n", "n")]
    columns += [(status, status) for status in STATUSES]
    columns += [("score", f"{score} (mean ± std)"), ("best", f"{best} (mean)")]
    columns += [("steps", "steps to target (mean ± std)"), ("reached", "reached")]
    columns += [("step_time", "ms/step"), ("pairs", "pairs")]
    columns += [("diff", f"Δ {score} vs {report.reference} [95% CI]"), ("p", "p")]
    return [*columns, ("speedup", "speedup (steps)")]


def _display(row: dict[str, Any], report: Report) -> dict[str, str]:
    """Every summary value of `row` as text; blanks are ""."""
    cells = {key: _fmt(row[key], "g") for key in row}
    cells["score"] = _pm(row["final_test_mean"], row["final_test_std"], ".4g")
    cells["best"] = _fmt(row["best_val_mean"], ".4g")
    cells["steps"] = _pm(row["steps_to_target_mean"], row["steps_to_target_std"], ".0f")
    cells["reached"] = "" if row["reached"] is None else f"{row['reached']}/{row['n']}"
    cells["step_time"] = _fmt(row["step_time_ms_mean"], ".3g")
    cells["pairs"] = _fmt(row["n_pairs"], "d")
    diff, low, high = row["diff_mean"], row["diff_ci_low"], row["diff_ci_high"]
    interval = f" [{low:+.3g}, {high:+.3g}]" if low is not None and high is not None else ""
    cells["diff"] = "" if diff is None else f"{diff:+.3g}{interval}"
    cells["p"] = _fmt(row["p_value"], ".2g")
    speedup, pairs = row["speedup"], row["speedup_pairs"]
    plural = "pair" if pairs == 1 else "pairs"
    cells["speedup"] = "" if speedup is None else f"{speedup:.2f}× ({pairs} {plural})"
    # Short keys keep the terminal table narrow; the files keep the full dotted keys.
    short = [(key.rsplit(".", 1)[-1], row[f"grid.{key}"]) for key in report.grid_keys]
    cells["cell"] = ", ".join(f"{key}={_fmt(value, 'g')}" for key, value in short)
    return cells


def _markdown(report: Report, name: str) -> str:
    headers = _headers(report)
    lines = [f"# {name}", "", f"Reference arm: `{report.reference}`.", ""]
    lines.append("| " + " | ".join(header for _, header in headers) + " |")
    lines.append("|" + "|".join("---" if k == "arm" else "--:" for k, _ in headers) + "|")
    for row in report.rows:
        cells = _display(row, report)
        lines.append("| " + " | ".join(cells[k].replace("|", "\\|") for k, _ in headers) + " |")
    lines += ["", *(f"- {key}: {text}" for key, text in DEFINITIONS.items())]
    return "\n".join(lines) + "\n"


def _latex(report: Report) -> str:
    headers = _headers(report)
    lines = [r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}", r"\toprule"]
    lines.append(" & ".join(_tex(header) for _, header in headers) + r" \\")
    lines.append(r"\midrule")
    for row in report.rows:
        cells = _display(row, report)
        lines.append(" & ".join(_tex(cells[key]) for key, _ in headers) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {c: "\\" + c for c in "&%$#_{}"} | {"\\": r"\textbackslash{}", "~": r"\~{}"}
_TEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "×": r"$\times$", "−": "-", "^": r"\^{}"}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(c) or _TEX_SYMBOLS.get(c) or c for c in text)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def _pm(mean: float | None, std: float | None, spec: str) -> str:
    # Two digits for the spread: over a few seeds it is not known any better.
    spread = "" if std is None else f" ± {std:.2g}" if abs(std) < 100 else f" ± {std:.0f}"
    return "" if mean is None else _fmt(mean, spec) + spread


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """A grid value as one canonical string, for matching it against the ablation's grid."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
