"""Labels from user files are inert: no spreadsheet formula in CSV files, no HTML in markdown."""

from __future__ import annotations

import copy
import csv

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.results.cells import from_spreadsheet, markdown_safe, spreadsheet_safe
from tests.support.grid import write_ablation

FORMULAS = ("=1+2", "@SUM(1+1)")
HTML = ("<script>alert(1)", "<img src=x onerror=alert(1)>")  # a name holds no "/"


@pytest.mark.parametrize("value", ["=1+2", "@SUM(1+1)", "+cmd", "-2+3", "\t=1", "'=1", "'x"])
def test_formula_like_text_is_quoted_and_read_back_unchanged(value):
    assert spreadsheet_safe(value).startswith("'")
    assert from_spreadsheet(spreadsheet_safe(value)) == value


@pytest.mark.parametrize("value", ["-0.5", "+1e3", "bn_before", "lr=0.1", "'", ""])
def test_numbers_and_plain_text_are_left_alone(value):
    assert from_spreadsheet(spreadsheet_safe(value)) == value
    if not value.startswith("'"):
        assert spreadsheet_safe(value) == value


def test_markdown_escapes_html_links_and_cell_boundaries():
    assert markdown_safe("<script>x</script>") == "&lt;script&gt;x&lt;/script&gt;"
    assert markdown_safe("[a](javascript:x) | b") == "[a]\\(javascript:x) \\| b"
    assert markdown_safe("[+0.1, +0.2]") == "[+0.1, +0.2]"  # an interval stays as it reads


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory):
    """A real 4-run ablation whose arms are named like formulas and HTML."""
    folder = tmp_path_factory.mktemp("hostile")
    arms = [*FORMULAS, *HTML]
    ablation = {
        "name": "<b>abl",
        "base": "spec.yaml",
        "overrides": {"training.steps": 4, "training.eval_every": 2},
        "arms": {name: {"training.learning_rate": 0.05 * (i + 1)} for i, name in enumerate(arms)},
        "seeds": [0],
    }  # fmt: skip
    path = write_ablation(folder, copy.deepcopy(ablation))
    out = folder / "out"
    result = CliRunner().invoke(app, ["ablate", str(path), "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    return out


def _cells(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["runs.csv", "summary.csv", "histories.csv"])
def test_no_csv_cell_starts_like_a_formula(hostile_tree, name):
    cells = _cells(hostile_tree / name)
    assert any(cell == "'=1+2" for cell in cells) and any(c == "'@SUM(1+1)" for c in cells)
    for cell in cells:
        assert not cell.startswith(("=", "@", "\t", "\r")), (name, cell)
        if cell.startswith(("+", "-")):
            float(cell)  # a signed number, never a formula


@pytest.mark.slow
def test_markdown_files_hold_no_html(hostile_tree):
    for path in (hostile_tree / "summary.md", hostile_tree / "plots" / "index.md"):
        text = path.read_text(encoding="utf-8")
        assert "<script" not in text and "<img" not in text and "<b>" not in text, path
    summary = (hostile_tree / "summary.md").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)" in summary and "&lt;img src=x onerror=alert(1)&gt;" in summary


@pytest.mark.slow
def test_the_tree_still_reads_back_with_its_names(hostile_tree):
    result = CliRunner().invoke(app, ["report", str(hostile_tree)])
    assert result.exit_code == 0, result.output
    for arm in FORMULAS:
        assert f"| {arm} |" in result.output  # the terminal shows the name as it is
    result = CliRunner().invoke(app, ["plot", str(hostile_tree)])
    assert result.exit_code == 0, result.output
