"""Findings of a new-user trial of `report --latex --columns` and of the analysis commands' help.

The caption of summary.tex explains only the columns and marks the table shows; the row labels
(arm, and cell with a grid) are kept whatever `--columns` picks; the `--help` of the analysis and
export commands loses no `<placeholder>` to the markdown renderer.
"""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.analysis.tables import build_report
from bnbench.cli import analysis, app, export
from tests.support.claims_tree import Tree
from tests.support.latex import tex_table
from tests.support.tables_tree import write_tree

runner = CliRunner()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An ablation with a learning-rate grid (hand-built, no training)."""
    root = tmp_path / "ablation"
    write_tree(root)
    return root


def _caption(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(r"\caption{"))


def test_the_caption_explains_p_and_never_a_missing_difference(root):
    result = runner.invoke(app, ["report", str(root), "--latex", "--columns", "arm,score,p"])
    assert result.exit_code == 0, result.output
    text = (root / "summary.tex").read_text()
    header, _ = tex_table(text)
    assert header == ["arm", "cell", "test accuracy", "p"]  # the grid's cell is kept
    caption = _caption(text)
    assert "p: two-sided paired t test (scipy.stats.ttest\\_rel)" in caption
    assert "Paired over seeds against no\\_norm" in caption
    assert "$\\Delta$" not in caption and "Speedup" not in caption


def test_the_caption_explains_the_difference_and_speedup_only_when_shown(root):
    report = build_report(root, latex=True, latex_columns=["arm", "cell", "diff", "speedup"])
    caption = _caption(report.paths["summary.tex"].read_text())
    assert "$\\Delta$: the mean difference with its 95\\% t interval" in caption
    assert "Speedup: reference / arm steps to target" in caption and "p: two-sided" not in caption
    report = build_report(root, latex=True, latex_columns=["score"])
    caption = _caption(report.paths["summary.tex"].read_text())
    assert "Paired over seeds" not in caption and "$\\Delta$" not in caption


def test_row_labels_are_kept_first_when_the_columns_leave_them_out(root):
    report = build_report(root, latex=True, latex_columns=["score"])
    assert report.latex_columns == ("arm", "cell", "score")
    header, body = tex_table(report.paths["summary.tex"].read_text())
    assert header == ["arm", "cell", "test accuracy"]
    assert all(row[0] and row[1] for row in body)
    columns = ["score", "grid.training.learning_rate"]  # a grid column labels the cell already
    assert build_report(root, latex=True, latex_columns=columns).latex_columns == (
        "arm", "score", "grid.training.learning_rate"
    )  # fmt: skip


def test_without_a_grid_only_the_arm_is_added(tmp_path):
    tree = Tree("plain", ["base", "bn"])
    for seed in (0, 1):
        tree.add("base", seed, test=0.8 + 0.01 * seed)
        tree.add("bn", seed, test=0.85 + 0.02 * seed)
    report = build_report(tree.write(tmp_path), latex=True, latex_columns=["score"])
    assert report.latex_columns == ("arm", "score")
    assert "best cell" not in report.paths["summary.md"].read_text()  # no grid: none is marked


def _help_texts() -> list[str]:
    """Every docstring and option/argument help of the analysis and export commands."""
    texts = []
    for module in (analysis, export):
        for _, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__:
                continue
            texts.append(inspect.getdoc(function) or "")
            hints = typing.get_type_hints(inspect.unwrap(function), include_extras=True)
            for hint in hints.values():
                for meta in getattr(hint, "__metadata__", ()):
                    texts.append(getattr(meta, "help", None) or "")
    return texts


def test_no_help_text_holds_an_angle_bracket_placeholder():
    texts = _help_texts()
    assert len(texts) > 10  # the commands' docstrings and options were found
    for text in texts:
        assert not re.search(r"<[A-Za-z_][^>]*>", text), text


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (["report"], "row labels are always kept"),
        (["plot"], "a `bnbench compare` folder is refused"),
        (["compare"], "diagnostics.* keys never group"),
        (["export", "tensorboard"], "RESULTS_DIR/tensorboard"),
    ],
)
def test_help_shows_every_placeholder_and_note(command, words):
    result = runner.invoke(app, [*command, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert words.replace("`", "") in text.replace("`", ""), text
