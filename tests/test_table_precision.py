"""One number of decimals per column in the summary tables: the terminal (`bnbench report`),
summary.md and summary.tex never show 0.815 in one row and 0.7193 in the next."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.analysis.precision import column_decimals, decimals_for, fixed, p_decimals, p_text
from bnbench.cli import app
from tests.support.latex import tex_table
from tests.support.tables_tree import write_tree

runner = CliRunner()
# A number as the tables print it; "2/3" (counts) and "(n=2/3)", "(3 pairs)" notes are not.
_NUMBER = re.compile(r"(?<![\d/.=])[+-]?\d+(?:\.(\d+))?(?![\d/])")
_NOTE = re.compile(r"\([^)]*\)")
# Columns of labels and counts, not measurements.
_TEXT = {"arm", "cell", "training.learning_rate", "n", "runs", "pairs", "reached"}


def _decimals_by_column(header: list[str], rows: list[list[str]]) -> dict[tuple[str, int], set]:
    """{(column, k-th number in its cells): the decimals that number shows, over the rows}."""
    found: dict[tuple[str, int], set] = {}
    for row in rows:
        for column, cell in zip(header, row, strict=True):
            cell = _NOTE.sub("", cell)
            if column in _TEXT or re.fullmatch(r"\s*\d+/\d+\s*", cell):
                continue
            for k, number in enumerate(_NUMBER.finditer(cell)):
                found.setdefault((column, k), set()).add(len(number.group(1) or ""))
    return found


def _markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table of `text`: its header and its body rows, as cells."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|--"):
            body = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                body.append([cell.strip() for cell in row.strip("|").split(" | ")])
            tables.append(([cell.strip() for cell in line.strip("|").split(" | ")], body))
    return tables


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """3 arms × 2 rates × 3 seeds, whose means, stds, intervals and p-values have different
    numbers of significant decimals from row to row (0.815 and 0.7193, ± 0.02 and ± 0.0092)."""
    root = tmp_path / "bn_placement"
    write_tree(root)
    return root


def test_every_column_of_every_summary_table_keeps_one_number_of_decimals(root):
    result = runner.invoke(app, ["report", str(root), "--latex"])  # not a terminal: markdown
    assert result.exit_code == 0, result.output
    tables = _markdown_tables(result.output)
    tables += _markdown_tables((root / "summary.md").read_text(encoding="utf-8"))
    tables.append(tex_table((root / "summary.tex").read_text(encoding="utf-8")))
    assert len(tables) == 4
    checked = 0
    for header, rows in tables:
        assert len(rows) >= 4
        for (column, k), decimals in _decimals_by_column(header, rows).items():
            assert len(decimals) == 1, (column, k, decimals, rows)
            checked += 1
    assert checked >= 15  # means, stds, intervals, p-values, ms/step, speedups
    markdown = (root / "summary.md").read_text(encoding="utf-8")
    # The std of this column has two significant digits in its smallest row (0.0092), so every
    # row shows four decimals; the intervals' smallest half-width is 0.032: three.
    assert "| 0.8150 ± 0.0184 (n=2/3) |" in markdown and "| 0.7265 ± 0.0092 (n=2/3) |" in markdown
    assert "| +0.087 [+0.055, +0.119] |" in markdown and "| +0.100 † |" in markdown


def test_a_column_takes_its_decimals_from_its_smallest_spread_or_value():
    assert decimals_for([0.91, 0.9133, None, float("nan")], 4) == 4
    assert decimals_for([12.5, 0.0123], 3) == 4  # the smallest value keeps its digits
    assert decimals_for([1234.5, 250.0], 3) == 0 and decimals_for([0.0, None], 3) == 0
    assert decimals_for([1e-12], 3) == 6  # at most six
    assert column_decimals([0.02, 0.0092, None], [0.7, 0.81], 4) == 4
    assert column_decimals([None, 0.0], [0.7, 0.81], 4) == 4  # no spread: from the values
    assert column_decimals([7.07, 14.1], [135.0, 210.0], 3) == 1
    assert [fixed(v, 4) for v in (0.91, 0.9133, None)] == ["0.9100", "0.9133", ""]
    assert fixed(0.1, 3, sign=True) == "+0.100" and fixed(-0.1, 3, sign=True) == "-0.100"


def test_p_values_share_their_column_decimals_and_tiny_ones_read_as_a_bound():
    decimals = p_decimals([0.044, 0.0074, None])
    assert decimals == 4 and [p_text(p, decimals) for p in (0.044, 0.0074)] == ["0.0440", "0.0074"]
    decimals = p_decimals([0.5, 2e-9])
    assert decimals == 4 and p_text(2e-9, decimals) == "< 0.0001" and p_text(0.5, 4) == "0.5000"
    assert p_decimals([0.5, 0.8]) == 2 and p_text(None, 2) == ""
