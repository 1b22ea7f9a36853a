"""Reading a LaTeX booktabs table back: header and body cells."""

from __future__ import annotations

import re


def tex_cells(line: str) -> list[str]:
    """The cells of one tabular row: split at `&` that is not escaped."""
    return [cell.strip() for cell in re.split(r"(?<!\\)&", line.removesuffix(r"\\").strip())]


def tex_table(tex_text: str) -> tuple[list[str], list[list[str]]]:
    """(header cells, body rows) between \\toprule, \\midrule and \\bottomrule."""
    lines = tex_text.splitlines()
    top, mid, bottom = (lines.index(rule) for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert top + 2 == mid < bottom
    return tex_cells(lines[top + 1]), [tex_cells(line) for line in lines[mid + 1 : bottom]]
