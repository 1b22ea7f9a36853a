"""summary.tex writes a number's minus sign as a minus, never as a hyphen."""

from __future__ import annotations

import pytest

from bnbench.analysis.latex import tex
from bnbench.analysis.tables import build_report
from tests.support.tables_tree import write_tree


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-0.0139", "$-$0.0139"),
        ("+0.1 [-0.08, +0.05]", "+0.1 {[}$-$0.08, +0.05{]}"),
        ("-.5", "$-$.5"),
        ("bn-2", "bn-2"),  # a hyphen inside a name stays one
        ("no-bn", "no-bn"),
        ("lr=-1", "lr=$-$1"),
    ],
)
def test_minus_signs(text, expected):
    assert tex(text) == expected


def test_summary_tex_has_no_hyphen_before_a_digit(tmp_path):
    root = tmp_path / "tree"
    write_tree(root)
    tex_text = build_report(root, latex=True, latex_columns=["arm", "cell", "diff"]).paths[
        "summary.tex"
    ].read_text()
    body = tex_text.split(r"\midrule")[1].split(r"\bottomrule")[0]
    assert "$-$" in body or "-" not in body
    for index, char in enumerate(body[:-1]):
        if char == "-":
            assert not body[index + 1].isdigit(), body[max(0, index - 20) : index + 20]
