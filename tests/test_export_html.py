"""`bnbench report --html`: one self-contained page, checked structurally with html.parser."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from bnbench.analysis.stats import DEFINITIONS
from bnbench.cli import app
from bnbench.export.html_report import REPORT_HTML, write_html_report
from tests.support.export_tree import DIVERGED, FAILED, HEADER, NAME, UNFINISHED, run_id, write_tree
from tests.support.html_check import check_html
from tests.support.specs import files_under

runner = CliRunner()


class _Page(HTMLParser):
    """The page's images, table header rows and text, for the tests."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.tables = 0
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self.tables += tag == "table"

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A tree reported with --html (its figures drawn on the way), and the page's text."""
    root = write_tree(tmp_path_factory.mktemp("html") / "tiny", report=False)
    spec = root.parent / "tiny_bn.yaml"
    spec.write_text(HEADER + f"name: {NAME}\narms: {{}}\n")
    result = runner.invoke(app, ["report", str(root), "--html", "--spec", str(spec)])
    assert result.exit_code == 0, result.output
    return root, (root / REPORT_HTML).read_text(encoding="utf-8")


def test_the_page_parses_loads_nothing_and_every_table_has_a_header_row(page):
    _, html = page
    assert check_html(html) == []
    parsed = _Page(html)
    assert parsed.images and all(img["src"].startswith("data:image/") for img in parsed.images)
    assert parsed.tables >= 4
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_every_figure_is_embedded_with_its_caption(page):
    root, html = page
    index = (root / "plots" / "index.md").read_text(encoding="utf-8")
    figures = re.findall(r"^- \[([^\]]+)\]\([^)]+\): (.*)$", index, flags=re.M)
    assert figures and len(_Page(html).images) == len(figures)
    text = " ".join(_Page(html).text)
    for name, caption in figures:
        assert name in text and caption in text


def test_the_summary_notes_and_the_question_are_on_the_page(page):
    root, html = page
    text = " ".join(_Page(html).text)
    assert "tiny_bn: does BN help at a small and a large learning rate?" in text
    for key, definition in DEFINITIONS.items():
        assert key in text and definition in text
    assert "Best cell: chosen by" in text and "Reference arm" in text
    summary = (root / "summary.md").read_text(encoding="utf-8")
    first_row = next(line for line in summary.splitlines() if line.startswith("| bn"))
    for cell in (c.strip() for c in first_row.strip("|").split("|")):
        assert cell in text


def test_runs_that_did_not_complete_are_listed_with_why(page):
    _, html = page
    text = " ".join(_Page(html).text)
    assert "3 of 8 runs did not complete" in text
    assert run_id(*DIVERGED) in text and "diverged at step 20 (loss is not finite)" in text
    assert run_id(*FAILED) in text and "RuntimeError: out of memory" in text
    assert run_id(*UNFINISHED) in text and "not finished" in text


def test_configs_versions_and_machine_are_on_the_page(page):
    _, html = page
    assert "<details><summary>the resolved ablation (ablation.yaml)</summary>" in html
    assert "arm bn: resolved run config of" in html
    text = " ".join(_Page(html).text)
    assert "3.99.0" in text and "Linux-test" in text


def test_the_page_says_how_to_add_the_question_when_no_spec_is_given(tmp_path):
    root = write_tree(tmp_path / "tiny")
    path = write_html_report(root)
    html = path.read_text(encoding="utf-8")
    assert "--spec ABLATION.yaml" in html and check_html(html) == []
    assert (root / "plots" / "index.md").is_file()  # drawn because they were missing


def _snapshot(root):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files_under(root)}


def test_a_spec_of_another_ablation_is_refused(tmp_path):
    root = write_tree(tmp_path / "tiny")
    other = tmp_path / "other.yaml"
    other.write_text("# another question\nname: other\n")
    before = _snapshot(root)
    result = runner.invoke(app, ["report", str(root), "--html", "--spec", str(other)])
    assert result.exit_code == 2, result.output
    assert "is the ablation 'other', not this tree's 'tiny_bn'" in result.output
    assert _snapshot(root) == before  # checked before the tables are rewritten
    result = runner.invoke(app, ["report", str(root), "--spec", str(other)])
    assert result.exit_code == 2 and "only with --html" in result.output


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ('<img src="https://example.org/a.png" alt="a">', "not a data: URI"),
        ('<img src="data:image/png;base64,AA==">', "no alt text"),
        ("<table><tr><td>1</td></tr></table>", "first row has no <th>"),
        ('<script src="x.js"></script>', "<script> loads or runs"),
        ("<div><p>unclosed</div>", "</div> where </p> was expected"),
    ],
)
def test_the_checker_finds_each_kind_of_problem(html, problem):
    page = f"<!DOCTYPE html><html><head><title>t</title></head><body>{html}</body></html>"
    problems = check_html(page)
    assert any(problem in p for p in problems), problems


def test_the_checker_passes_a_minimal_page():
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title></head><body>"
        "<table><thead><tr><th>a</th></tr></thead><tr><td>1</td></tr></table></body></html>"
    )
    assert check_html(page) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("nonexist.yaml", "nonexist.yaml: no such file"),
        ("folder", "folder: is a folder, not an ablation file"),
        ("bare.yaml", "bare.yaml: has no header comment to show"),
        ("broken.yaml", "cannot read"),
    ],
)
def test_a_bad_spec_is_refused_before_anything_is_written(tmp_path, name, fragment):
    root = write_tree(tmp_path / "tiny", report=False)  # no tables yet: any write would show
    (tmp_path / "folder").mkdir()
    (tmp_path / "bare.yaml").write_text(f"name: {NAME}\narms: {{}}\n")
    (tmp_path / "broken.yaml").write_text("# q\nname: [unclosed\n")
    before = _snapshot(root)
    result = runner.invoke(app, ["report", str(root), "--html", "--spec", str(tmp_path / name)])
    assert result.exit_code == 2, result.output
    assert fragment in " ".join(result.output.split()) and "Traceback" not in result.output
    assert _snapshot(root) == before
