"""HTML building blocks of the report page: its style sheet, tables, collapsed text, notes.

Everything passes through `html.escape`; the only markup added is the block's own. A markdown
table written by `bnbench.analysis.tables` is read back cell by cell (`markdown_table`), so that
the page shows the very cells of summary.md rather than formatting the numbers a second time.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

import yaml

from bnbench.errors import SpecError

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.82em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.wide { overflow-x: auto; }
pre { background: #f7f7f7; padding: 0.8em; white-space: pre-wrap; font-size: 0.85em; }
pre.question { background: #eef4fb; font-size: 0.95em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
dt { font-weight: 600; } dd { margin: 0 0 0.5em 1.5em; }
.muted { color: #666; font-size: 0.9em; }
"""


def table(headers: list[str], rows: list[list[str]], aligns: list[str] | None = None) -> str:
    """An HTML table with one header row; cells are escaped, `aligns` "num" right-aligns."""
    aligns = aligns or [""] * len(headers)
    # A break opportunity after each dot, so that a dotted grid key does not widen its column.
    head = "".join(f"<th>{escape(h).replace('.', '.<wbr>')}</th>" for h in headers)
    body = [
        "<tr>"
        + "".join(
            f'<td class="{a}">{escape(c)}</td>' if a else f"<td>{escape(c)}</td>"
            for c, a in zip(row, aligns, strict=False)
        )
        + "</tr>"
        for row in rows
    ]
    return "\n".join(["<table>", f"<thead><tr>{head}</tr></thead>", "<tbody>", *body, "</tbody>",
                      "</table>"])  # fmt: skip


def details(summary: str, text: str) -> str:
    """`text` as preformatted lines, collapsed under the line `summary` (no script needed)."""
    return f"<details><summary>{escape(summary)}</summary><pre>{escape(text)}</pre></details>"


def inline(value: Any) -> str:
    """A spec value on one line: {a: 1, b: x}, [0, 1, 2]."""
    if isinstance(value, dict | list):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6).strip()
    return str(value)


def markdown_table(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    """(headers, alignments, rows) of the table in a markdown file written by the tables."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    if len(lines) < 2:
        raise SpecError(f"{path}: holds no table")
    cells = [
        [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        for line in lines
    ]
    aligns = ["num" if cell.endswith(":") else "" for cell in cells[1]]
    return cells[0], aligns, cells[2:]


def paragraphs(lines: list[str]) -> list[str]:
    """Lines of markdown text as paragraphs, with runs of "- " lines as lists."""
    html, items = [], []
    for line in [*lines, ""]:
        if line.startswith("- "):
            items.append(f"<li>{escape(line[2:])}</li>")
            continue
        if items:
            html += ["<ul>", *items, "</ul>"]
            items = []
        if line:
            html.append(f"<p>{escape(line)}</p>")
    return html
