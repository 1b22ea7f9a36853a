"""`bnbench report DIR --html`: the whole ablation on one self-contained page, `report.html`.

The page renders files of the results tree, never the runs' numbers anew: the question and what
was compared (ablation.yaml, and the ablation file's header comment when given), the summary
table exactly as summary.md has it (one set of cell formatters, `bnbench.analysis.tables`),
the choices and definitions summary.json records, every figure of plots/index.md with its
caption (embedded as data: URIs; drawn first if missing), the runs that diverged, failed or did
not finish, the resolved configs, and the versions and machine of manifest.json. It needs no
network and no JavaScript; `check_html` (beside this module) verifies both.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path
from typing import Any

from bnbench import __version__
from bnbench.errors import SpecError
from bnbench.export.html_blocks import STYLE, details, inline, markdown_table, paragraphs, table
from bnbench.results import rundir
from bnbench.results.files import atomic_write_text, parse_file
from bnbench.results.layout import ABLATION, MANIFEST, PLOTS_DIR, TABLES, run_path
from bnbench.results.tree import ResultsTree, load_results_tree
from bnbench.results.tree_files import (
    TablesSummary,
    read_ablation,
    read_manifest,
    read_tables_summary,
)

REPORT_HTML = "report.html"
_MIME = {".png": "image/png", ".svg": "image/svg+xml"}
_FIGURE_LINE = re.compile(r"- \[(?P<name>[^\]]+)\]\((?P<file>[^)]+)\): (?P<caption>.*)")


def write_html_report(results_dir: Path, *, spec: Path | None = None) -> Path:
    """Write `results_dir/report.html` from a results tree whose tables are written.

    Call it after `bnbench.analysis.tables.build_report` (as `bnbench report --html` does): it
    reads summary.md and summary.json rather than recomputing them. Figures missing from
    plots/ are drawn first (PNG).

    Args:
        results_dir: An ablation results directory.
        spec: The ablation file the tree was run from; its header comment (the question, the
            expected result, the command) heads the page. The tree keeps only the resolved spec.

    Returns:
        The page written.

    Raises:
        SpecError: the tables are not written yet, a file cannot be parsed, or `spec` is not
            the ablation of this tree.
    """
    root = Path(results_dir)
    tree = load_results_tree(root)
    if not (root / TABLES["md"]).is_file():
        raise SpecError(f"{root}: has no {TABLES['md']}; run `bnbench report {root}` first")
    summary = read_tables_summary(root)
    name = summary.name or tree.name
    sections = [
        _question(root, name, spec),
        _summary(root, summary),
        _figures(root),
        _unfinished(tree),
        _configs(tree),
        _environment(root),
    ]
    page = _page(name, sections)
    path = root / REPORT_HTML
    atomic_write_text(path, page)
    return path


def _page(name: str, sections: list[str]) -> str:
    title = escape(name)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title} — bnbench report</title>",
        f"<style>{STYLE}</style></head>",
        "<body>",
        f"<h1>{title}</h1>",
        f'<p class="muted">bnbench {escape(__version__)} report, rendered from the results '
        "tree alone; every number below is in its files.</p>",
        *sections,
        "</body>",
        "</html>",
        "",
    ])  # fmt: skip


def _question(root: Path, name: str, spec: Path | None) -> str:
    """The question (the ablation file's header) and what was compared (ablation.yaml)."""
    parts = ['<section id="question">', "<h2>Question</h2>"]
    if spec is not None:
        parts.append(f'<pre class="question">{escape(_header(spec, name))}</pre>')
    else:
        parts.append(
            '<p class="muted">The question is the header comment of the ablation file, which '
            "the results tree does not keep; add it with <code>bnbench report DIR --html "
            "--spec ABLATION.yaml</code>.</p>"
        )
    ablation = read_ablation(root)
    arms = ablation.arms
    if arms:
        reference = ablation.reference
        rows = [
            [f"{arm} (reference)" if arm == reference else str(arm), inline(changes)]
            for arm, changes in arms.items()
        ]
        parts += ["<h3>Arms</h3>", table(["arm", "changes to the base spec"], rows)]
    grid = ablation.grid
    if grid:
        rows = [[key, ", ".join(map(str, values))] for key, values in grid.items()]
        parts += ["<h3>Grid</h3>", table(["key", "values"], rows)]
    facts = [("seeds", ablation.seeds), ("overrides", ablation.overrides)]
    shown = [f"<li>{escape(key)}: {escape(inline(value))}</li>" for key, value in facts if value]
    if shown:
        parts += ["<ul>", *shown, "</ul>"]
    return "\n".join([*parts, "</section>"])


def read_question(results_dir: Path, spec: Path) -> str:
    """The header comment of the ablation file `spec`, checked before anything is written.

    `bnbench report --html --spec` calls it before it writes the tables, so that a wrong
    `--spec` changes nothing in `results_dir`.

    Args:
        results_dir: The results tree; its ablation.yaml names the ablation (else the folder).
        spec: The ablation file the tree was run from.

    Returns:
        The header comment, without its `#` marks.

    Raises:
        SpecError: `spec` is missing, not a readable file, not this tree's ablation, or has no
            header comment; the message names it.
    """
    root, spec = Path(results_dir), Path(spec)
    if not spec.is_file():
        missing = "is a folder, not an ablation file" if spec.is_dir() else "no such file"
        raise SpecError(f"--spec {spec}: {missing}")
    return _header(spec, read_ablation(root).name or root.name)


def _header(spec: Path, name: str) -> str:
    """The leading comment of the ablation file `spec`, checked to be this tree's ablation."""
    data = parse_file(spec)
    if not isinstance(data, dict) or data.get("name") != name:
        found = data.get("name") if isinstance(data, dict) else None
        raise SpecError(f"--spec {spec}: is the ablation {found!r}, not this tree's {name!r}")
    lines = []
    for line in spec.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    if not lines:
        raise SpecError(f"--spec {spec}: has no header comment to show")
    return "\n".join(lines)


def _summary(root: Path, summary: TablesSummary) -> str:
    """The summary table as summary.md has it, with the choices and every definition."""
    headers, aligns, rows = markdown_table(root / TABLES["md"])
    choices, definitions = summary.choices, summary.definitions
    parts = ['<section id="summary">', "<h2>Summary</h2>"]
    reference = summary.reference
    if reference:
        parts.append(f"<p>Reference arm: <code>{escape(str(reference))}</code>.</p>")
    parts += ["<ul>", *(f"<li>{escape(_sentence(k, v))}</li>" for k, v in choices.items()), "</ul>"]
    # Two tables, as in the terminal: what each arm reached, then how it compares with the
    # reference; both start with the arm and its grid cell (the columns before "n").
    split = headers.index("pairs") if "pairs" in headers else len(headers)
    keys = headers.index("n") if "n" in headers[:split] else 1
    for columns in (range(split), [*range(keys), *range(split, len(headers))]):
        if len(columns) > keys:
            chosen = [headers[i] for i in columns], [aligns[i] for i in columns]
            body = [[row[i] for i in columns] for row in rows]
            parts.append(f'<div class="wide">{table(chosen[0], body, chosen[1])}</div>')
    parts += ["<h3>What each statistic means</h3>", "<dl>"]
    for key, text in definitions.items():
        parts.append(f"<dt>{escape(str(key))}</dt><dd>{escape(str(text))}</dd>")
    return "\n".join([*parts, "</dl>", "</section>"])


def _figures(root: Path) -> str:
    """Every figure of plots/index.md, embedded, with its caption; drawn first if missing."""
    notes, figures = _read_index(root)
    if not figures or any(not _embeddable(root / PLOTS_DIR / file) for file, _ in figures):
        from bnbench.analysis.plots import render_plots

        render_plots(root, fmt="png")
        notes, figures = _read_index(root)
    parts = ['<section id="figures">', "<h2>Figures</h2>", *paragraphs(notes)]
    for file, caption in figures:
        path = root / PLOTS_DIR / file
        if not _embeddable(path):
            parts.append(f'<p class="muted">{escape(file)}: not found in plots/.</p>')
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts += [
            "<figure>",
            f'<img src="data:{_MIME[path.suffix]};base64,{data}" alt="{escape(caption)}">',
            f"<figcaption><b>{escape(file)}</b>: {escape(caption)}</figcaption>",
            "</figure>",
        ]
    return "\n".join([*parts, "</section>"])


def _read_index(root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """(note lines, [(file, caption)]) of plots/index.md; empty when it is missing."""
    path = root / PLOTS_DIR / "index.md"
    if not path.is_file():
        return [], []
    notes, figures = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _FIGURE_LINE.fullmatch(line)
        if match:
            figures.append((match["file"], match["caption"]))
        elif line.strip() and not line.startswith("# "):
            notes.append(line)
    return notes, figures


def _embeddable(path: Path) -> bool:
    return path.suffix in _MIME and path.is_file()


def _unfinished(tree: ResultsTree) -> str:
    """The runs that diverged, failed or did not finish, with what their summaries say."""
    runs = tree.runs[tree.runs["status"] != "completed"]
    parts = ['<section id="runs">', "<h2>Runs that did not complete</h2>"]
    if runs.empty:
        return "\n".join([*parts, f"<p>All {len(tree.runs)} runs completed.</p>", "</section>"])
    rows = []
    for run in runs.to_dict("records"):
        run_dir = run_path(tree.root, str(run["run_id"]))
        rows.append([
            str(run["run_id"]), str(run["arm"]), str(run["cell"]), _seed(run["seed"]),
            str(run["status"]), _why(run_dir, str(run["status"])),
        ])  # fmt: skip
    headers = ["run", "arm", "grid cell", "seed", "status", "what happened"]
    if not tree.grid_keys:
        headers.pop(2)
        rows = [row[:2] + row[3:] for row in rows]
    summary = f"<p>{len(runs)} of {len(tree.runs)} runs did not complete.</p>"
    return "\n".join([*parts, summary, table(headers, rows), "</section>"])


def _why(run_dir: Path, status: str) -> str:
    summary = rundir.read_summary(run_dir)
    if summary is None:
        return "not finished: no summary yet (interrupted, killed or still running)"
    if status == "diverged":
        reason = f" ({summary.diverged_reason})" if summary.diverged_reason else ""
        return f"diverged at step {summary.diverged_step}{reason}"
    if summary.error:
        return f"{summary.error} (see {rundir.TRACEBACK})"
    return status


def _configs(tree: ResultsTree) -> str:
    """The resolved ablation and, per arm, the resolved config of its first run (collapsed)."""
    parts = ['<section id="config">', "<h2>Configuration</h2>"]
    ablation = tree.root / ABLATION
    if ablation.is_file():
        parts.append(details("the resolved ablation (ablation.yaml)", ablation.read_text("utf-8")))
    for arm in tree.arms:
        mine = tree.runs[tree.runs["arm"] == arm]
        if mine.empty:
            continue
        run_id = str(mine["run_id"].iloc[0])
        config = run_path(tree.root, run_id) / rundir.CONFIG
        if config.is_file():
            label = f"arm {arm}: resolved run config of {run_id} ({rundir.CONFIG})"
            parts.append(details(label, config.read_text("utf-8")))
    return "\n".join([*parts, "</section>"])


def _environment(root: Path) -> str:
    """Library versions and the machine, from manifest.json."""
    manifest = read_manifest(root)
    parts = ['<section id="environment">', "<h2>Environment</h2>"]
    if manifest is None:
        return "\n".join([*parts, f"<p>No {MANIFEST} in this tree.</p>", "</section>"])
    facts = [
        [key, inline(getattr(manifest, key))]
        for key in ("started_at", "finished_at", "backends", "runs")
        if key in manifest.model_fields_set  # as recorded: an older manifest has fewer
    ]
    parts.append(table(["ablation", "value"], facts))
    for key, title in (("versions", "library"), ("machine", "machine")):
        values = getattr(manifest, key)
        if values:
            rows = [[str(k), inline(v)] for k, v in values.items()]
            parts += [f"<h3>{escape(key.capitalize())}</h3>", table([title, "value"], rows)]
    return "\n".join([*parts, "</section>"])


def _sentence(key: str, text: Any) -> str:
    return f"{key[:1].upper()}{key[1:]}: {text}."


def _seed(value: Any) -> str:
    return "" if value != value or value is None else str(int(value))
