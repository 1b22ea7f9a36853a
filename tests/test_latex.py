"""`bnbench report --latex [--columns ...]`: a booktabs table with caption and label, on hand-built
trees (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.analysis.latex import check_columns, label_for, tex
from bnbench.analysis.tables import build_report, latex_catalogue
from bnbench.cli import app
from bnbench.errors import SpecError
from tests.support.claims_tree import Tree
from tests.support.latex import tex_table
from tests.support.specs import files_under
from tests.support.tables_tree import write_tree

runner = CliRunner()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "ablation"
    write_tree(root)
    return root


def test_default_table_has_the_columns_a_paper_needs(root):
    text = build_report(root, latex=True).paths["summary.tex"].read_text()
    lines = text.splitlines()
    order = [r"\begin{table}[htbp]", r"\toprule", r"\midrule", r"\bottomrule", r"\end{table}"]
    assert [lines.index(line) for line in order] == sorted(lines.index(line) for line in order)
    assert r"\label{tab:bn-placement}" in lines
    assert r"\begin{tabular}{llrrrr}" in lines
    header, body = tex_table(text)
    assert header == ["arm", "cell", "test accuracy", "steps to target", "reached",
                      r"$\Delta$ vs no\_norm {[}95\% CI{]}"]  # fmt: skip
    assert len(body) == 6 and all(len(row) == 6 for row in body)
    bn_after = body[2]  # bn_after at lr 0.01: one run never reached the target
    assert bn_after[:2] == [r"bn\_after", r"learning\_rate=0.01"]
    assert bn_after[3] == r"$\geq$ 323" and bn_after[4] == "2/3"
    assert bn_after[5].startswith("+0.087 {[}+0.055, +0.119{]}")
    assert body[4][5] == ""  # the reference has no difference with itself
    caption = next(line for line in lines if line.startswith(r"\caption{"))
    for words in ("bn\\_placement: test accuracy, mean $\\pm$ std over completed runs",
                  "Paired over seeds against no\\_norm", "\\dag{}: fewer pairs than seeds",
                  "$\\star$: each arm's best cell by mean final validation accuracy",
                  "$\\geq$: a lower bound", "BN statistics at evaluation: moving"):  # fmt: skip
        assert words in caption, caption
    assert not set("±Δ≥≤†★–×") & set(text)


def test_columns_pick_any_summary_column_in_the_order_given(root):
    columns = ["p", "arm", "speedup", "n_pairs", "grid.training.learning_rate", "final_test_std"]
    report = build_report(root, latex=True, latex_columns=columns)
    assert report.latex_columns == tuple(columns)
    header, body = tex_table(report.paths["summary.tex"].read_text())
    assert header == ["p", "arm", "speedup (steps)", r"n\_pairs", r"training.learning\_rate",
                      r"final\_test\_std"]  # fmt: skip
    # 1.12: the geometric mean of the ratios, as the claims report it (1.18 was arithmetic).
    assert body[2][1:4] == [r"bn\_after", r"$\leq$ 1.12$\times$ (3 pairs)", "3"]
    assert set(latex_catalogue(report)) >= set(report.summary_columns)


def test_without_a_grid_the_default_has_no_cell_column(tmp_path):
    tree = Tree("plain", ["base", "bn"])
    for seed in (0, 1):
        tree.add("base", seed, test=0.8 + 0.01 * seed)
        tree.add("bn", seed, test=0.85 + 0.02 * seed)
    folder = tree.write(tmp_path)
    header, body = tex_table(build_report(folder, latex=True).paths["summary.tex"].read_text())
    assert header[:2] == ["arm", "test accuracy"] and "cell" not in header
    assert [row[0] for row in body] == ["base", "bn"]


def test_cell_text_is_escaped(tmp_path):
    tree = Tree("odd names", ["[base]", "bn&co_50%"])
    for seed in (0, 1):
        tree.add("[base]", seed, test=0.8 + 0.01 * seed)
        tree.add("bn&co_50%", seed, test=0.85 + 0.02 * seed)
    text = build_report(tree.write(tmp_path), latex=True).paths["summary.tex"].read_text()
    _, body = tex_table(text)
    # A row opening with "[" would be read as the optional argument of the previous row's \\.
    assert [row[0] for row in body] == ["{[}base{]}", r"bn\&co\_50\%"]
    assert r"\label{tab:odd-names}" in text


def test_tex_escapes_every_special_character():
    assert tex("a&b_c%d#e$f{g}h~i^j\\k") == (
        r"a\&b\_c\%d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    )
    assert tex("<|>\n") == r"\textless{}\textbar{}\textgreater{} "
    assert tex("0.9 ± 0.01 ≥ ≤ † ★ – ×") == (
        r"0.9 $\pm$ 0.01 $\geq$ $\leq$ \dag{} $\star$ -- $\times$"
    )
    assert label_for("BN: 50% off!") == "tab:bn-50-off" and label_for("%%") == "tab:summary"


def test_unknown_columns_suggest_the_closest_and_list_all():
    available = ["arm", "cell", "score", "diff"]
    assert check_columns(["diff", "arm"], available) == ["diff", "arm"]
    with pytest.raises(SpecError, match=r"unknown column 'scor'; did you mean 'score'\?"):
        check_columns(["arm", "scor"], available)
    with pytest.raises(SpecError, match=r"available: arm, cell, score, diff"):
        check_columns(["nothing_like_it"], available)
    with pytest.raises(SpecError, match="arm given twice"):
        check_columns(["arm", "arm"], available)
    with pytest.raises(SpecError, match="give column names"):
        check_columns(["arm", ""], available)


def test_report_cli_writes_the_chosen_columns(root):
    result = runner.invoke(app, ["report", str(root), "--latex", "--columns", "arm, diff ,p"])
    assert result.exit_code == 0, result.output
    header, _ = tex_table((root / "summary.tex").read_text())
    # The row labels stay first: arm, and on a grid tree its cell.
    assert header == ["arm", "cell", r"$\Delta$ vs no\_norm {[}95\% CI{]}", "p"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--latex", "--columns", "arm,scor"], ["unknown column 'scor'", "did you mean 'score'",
                                                 "available: arm, grid.training.learning_rate"]),
        (["--columns", "arm"], ["--columns is used only with --latex"]),
        (["--latex", "--columns", "arm,p,arm"], ["arm given twice"]),
        (["--latex", "--columns", ""], ["give column names"]),
    ],
)  # fmt: skip
def test_bad_columns_exit_2_and_write_nothing(root, args, fragments):
    before = {path: path.read_bytes() for path in files_under(root)}
    result = runner.invoke(app, ["report", str(root), *args], terminal_width=400)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, text
    assert {path: path.read_bytes() for path in files_under(root)} == before
    assert not (root / "summary.tex").exists() and not (root / "runs.csv").exists()
