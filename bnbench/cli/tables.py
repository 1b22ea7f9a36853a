"""Print tables whole: never a dropped column, never a label cut to "…".

Rich squeezes a table that is wider than the terminal: it shrinks columns to "…" and, past
that, drops them. A reader then sees p-values as "0.0…" and rows without their arm. So every
command prints its tables through `show`:

- on a terminal, a table that fits its width is drawn as a table;
- on a terminal too narrow for it, each row is printed as a block of "header: value" lines,
  which wrap between words like any text;
- through a pipe or into a file, the table is printed as markdown (one line per row, nothing
  cut), which pastes into notes and greps by row.

Other renderables (notes, a `Group`'s texts) are printed as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text


def show(renderable: RenderableType, console: Console) -> None:
    """Print `renderable` on `console`, each `Table` in it whole (see the module docstring)."""
    parts: Iterable[RenderableType] = (
        renderable.renderables if isinstance(renderable, Group) else [renderable]
    )
    for part in parts:
        if not isinstance(part, Table):
            console.print(part)
        elif not console.is_terminal:
            console.print(markdown(part), markup=False, highlight=False, soft_wrap=True)
        elif _width(part, console) <= console.width:
            console.print(part)
        else:
            console.print(stacked(part, console.width), highlight=False)


def _width(table: Table, console: Console) -> int:
    """The width `table` needs to show every cell on one line (Rich clamps to the console's)."""
    unbounded = console.options.update(width=1_000_000, max_width=1_000_000)
    return console.measure(table, options=unbounded).maximum


def cells(table: Table) -> tuple[list[str], list[list[str]]]:
    """The table's headers and rows as plain text (markup rendered, styles dropped)."""
    headers = [_plain(column.header) for column in table.columns]
    # Rich keeps a column's cells on the column; there is no public accessor for them.
    columns = [[_plain(cell) for cell in column._cells] for column in table.columns]
    return headers, [list(row) for row in zip(*columns, strict=True)]


def markdown(table: Table) -> str:
    """The table as a markdown pipe table, its title above and its caption below."""
    headers, rows = cells(table)
    if not any(headers):  # a key-value table without a header row
        headers = ["" for _ in headers]
    lines = [f"{_plain(table.title)}", ""] if table.title else []
    lines.append("| " + " | ".join(_escape(h) for h in headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(_escape(cell) for cell in row) + " |" for row in rows]
    if table.caption:
        lines += ["", _plain(table.caption)]
    return "\n".join(lines) + "\n"


def stacked(table: Table, width: int = 80) -> Text:
    """The table with one block per row: its first cell, then "header: value" for the rest,
    as many to a line as fit `width` (a value longer than a line wraps between words)."""
    headers, rows = cells(table)
    text = Text()
    if table.title:
        text.append(_plain(table.title) + "\n\n", style="italic")
    for row in rows:
        text.append((row[0] or "-") + "\n", style="bold")
        items = [f"{h}: {c}" if h else c for h, c in zip(headers[1:], row[1:], strict=True) if c]
        line = ""
        for item in items:
            if line and len(line) + 3 + len(item) > width - 2:
                text.append(f"  {line}\n")
                line = ""
            line = f"{line}   {item}" if line else item
        if line:
            text.append(f"  {line}\n")
    if table.caption:
        text.append("\n" + _plain(table.caption) + "\n", style="dim")
    return text


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Text):
        return value.plain
    if isinstance(value, str):
        try:
            return Text.from_markup(value).plain
        except MarkupError:  # not markup after all: "[/]" in a label, say
            return value
    return str(value)


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")
