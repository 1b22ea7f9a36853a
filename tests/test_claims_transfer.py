"""`bnbench claims report DIR1 DIR2 ...`: one table of each finding's verdict and effect size per
claims folder, marking where they agree; read from hand-built trees, nothing written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bnbench.claims.report import write_claims_report
from bnbench.claims.transfer import markdown, read_folders
from bnbench.cli import app
from tests.support.claims_scenarios import AGAINST, FOR, SCENARIOS
from tests.support.specs import files_under

runner = CliRunner()


def _suite(root: Path, effects: dict[str, str]) -> Path:
    for claim_id, effect in effects.items():
        SCENARIOS[claim_id](effect).write(root)
    write_claims_report(root)
    return root


def test_transfer_table_marks_agreement_and_disagreement(tmp_path: Path):
    digits = _suite(tmp_path / "digits", {"ghost_batch": FOR, "placement": FOR})
    other = _suite(tmp_path / "mnist1d", {"ghost_batch": AGAINST, "placement": FOR,
                                           "lr_range": FOR})  # fmt: skip
    names, rows = read_folders([digits, other])
    assert names == ["digits", "mnist1d"]
    by_claim = {row.claim: row for row in rows}
    assert by_claim["ghost_batch"].agreement == "no"
    assert [c.verdict for c in by_claim["ghost_batch"].cells if c] == ["supported",
                                                                       "not supported"]  # fmt: skip
    assert all(row.agreement == "yes" for row in rows if row.claim == "placement")
    assert all(row.agreement == "-" and row.cells[0] is None
               for row in rows if row.claim == "lr_range")  # fmt: skip
    table = markdown(names, rows)
    assert "| claim | finding | digits | mnist1d | agree |" in table
    assert "not run" in table


def test_transfer_cli_prints_one_table_and_writes_nothing(tmp_path: Path):
    digits = _suite(tmp_path / "digits", {"ghost_batch": FOR})
    other = _suite(tmp_path / "other", {"ghost_batch": FOR})
    before = files_under(tmp_path)
    result = runner.invoke(app, ["claims", "report", str(digits), str(other)])
    assert result.exit_code == 0, result.output
    assert "ghost_batch" in result.output and "yes" in result.output
    assert files_under(tmp_path) == before


def test_transfer_of_a_folder_without_claims_json_exits_2(tmp_path: Path):
    digits = _suite(tmp_path / "digits", {"ghost_batch": FOR})
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["claims", "report", str(digits), str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "has no claims.json" in result.output and "bnbench claims report" in result.output
    result = runner.invoke(app, ["claims", "report", str(digits), str(digits), "--html"])
    assert result.exit_code == 2 and "--html is for one claims folder" in result.output
