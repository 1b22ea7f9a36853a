"""What a new-user trial found in `plan`, `ablate`, `status` and `claims`: a destination ablate
would refuse is said so by plan and refused before ablate's banner; a file as --out; claims and
ablation trees kept apart; help text that keeps its placeholders; run ids whole at 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.claims.registry import CLAIMS
from bnbench.cli import app
from bnbench.config.ablation import load_ablation
from tests.support.specs import GRID_ABLATION, TINY_SPEC, files_under

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]

ABLATION = GRID_ABLATION


@pytest.fixture
def ablation_path(tmp_path: Path) -> Path:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(TINY_SPEC), encoding="utf-8")
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(ABLATION), encoding="utf-8")
    return path


def _tree(out: Path, resolved: dict) -> Path:
    """A results tree as `ablate` starts one: its ablation.yaml."""
    out.mkdir(parents=True)
    (out / "ablation.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False), "utf-8")
    return out


def _text(result) -> str:
    return " ".join(result.output.split())


# --- plan --out: the check ablate makes --------------------------------------------------------


def test_plan_warns_when_out_holds_a_different_ablation(ablation_path, tmp_path):
    other = load_ablation(ablation_path).resolved | {"seeds": [0, 1, 2]}
    out = _tree(tmp_path / "r", other)
    before = files_under(tmp_path)
    result = runner.invoke(app, ["plan", str(ablation_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert "warning: ablate would refuse this folder:" in text
    assert "holds a different version of this ablation (it differs in: seeds)" in text
    assert "already finished in" not in text
    assert files_under(tmp_path) == before


def test_plan_warns_when_out_holds_this_ablation_with_another_set(ablation_path, tmp_path):
    out = _tree(tmp_path / "r", load_ablation(ablation_path).resolved)
    before = files_under(tmp_path)
    result = runner.invoke(app, ["plan", str(ablation_path), "--out", str(out),
                                 "--set", "training.steps=9"])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert "ablate would refuse this folder:" in text
    assert (
        "holds this ablation run with no --set, and this command gives --set training.steps=9"
        in text
    )
    assert "already finished in" not in text
    assert files_under(tmp_path) == before


def test_plan_warns_when_out_holds_something_else(ablation_path, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    result = runner.invoke(app, ["plan", str(ablation_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert "ablate would refuse this folder:" in text and "holds no ablation" in text
    assert "already finished in" not in text
    assert "(ablate would refuse it)" in text  # the estimate does not learn from it either
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_plan_counts_finished_runs_of_a_tree_ablate_accepts(ablation_path, tmp_path):
    out = _tree(tmp_path / "r", load_ablation(ablation_path).resolved)
    result = runner.invoke(app, ["plan", str(ablation_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"0 of 4 runs already finished in {out}" in _text(result)
    assert "would refuse" not in _text(result)


@pytest.mark.parametrize("below", [False, True])
def test_plan_and_ablate_refuse_a_file_as_out(ablation_path, tmp_path, below):
    log = tmp_path / "t1.log"
    log.write_text("a log\n", encoding="utf-8")
    out = log / "sub" if below else log
    before = files_under(tmp_path)
    for command in (["plan"], ["ablate", "-q", "--no-plots"]):
        result = runner.invoke(app, [*command, str(ablation_path), "--out", str(out)])
        assert result.exit_code == 2, result.output
        text = _text(result)
        expected = f"{log} is a file, not a folder"
        assert expected in text and (f"--out {out}" in text)
        assert "File exists" not in text and "runs selected" not in text
        assert files_under(tmp_path) == before


# --- ablate: refused before its banner ---------------------------------------------------------


@pytest.mark.parametrize("case", ["different", "set", "other files"])
def test_ablate_refuses_before_saying_what_it_would_run(ablation_path, tmp_path, case):
    resolved = load_ablation(ablation_path).resolved
    out = tmp_path / "r"
    extra: list[str] = []
    if case == "different":
        _tree(out, resolved | {"seeds": [5]})
    elif case == "set":
        _tree(out, resolved)
        extra = ["--set", "training.steps=9"]
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    before = files_under(tmp_path)
    result = runner.invoke(app, ["ablate", str(ablation_path), "--out", str(out), "-q", *extra])
    assert result.exit_code == 2, result.output
    assert "runs selected" not in result.output
    assert _text(result).count("error:") == 1
    assert files_under(tmp_path) == before


# --- claims: trees kept apart, precise report errors ------------------------------------------


def test_claims_run_refuses_an_ablation_tree(ablation_path, tmp_path):
    out = _tree(tmp_path / "r", load_ablation(ablation_path).resolved)
    before = files_under(tmp_path)
    result = runner.invoke(app, ["claims", "run", "--out", str(out), "--only", "ghost_batch",
                                 "--quick", "-q"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{out} holds an ablation (ablation.yaml); choose another --out for claims" in _text(
        result
    )
    assert files_under(tmp_path) == before


def test_claims_run_refuses_one_claims_folder_and_names_its_parent(tmp_path):
    out = tmp_path / "claims" / "ghost_batch"
    out.mkdir(parents=True)
    (out / "manifest.json").write_text("{}\n", encoding="utf-8")
    before = files_under(tmp_path)
    result = runner.invoke(app, ["claims", "run", "--out", str(out), "--only", "ghost_batch",
                                 "--quick", "-q"])  # fmt: skip
    assert result.exit_code == 2, result.output
    text = _text(result)
    assert "holds an ablation (manifest.json)" in text
    assert f"the folder of claim 'ghost_batch': give its parent, {out.parent}" in text
    assert files_under(tmp_path) == before


def test_claims_run_refuses_a_file_as_out(tmp_path):
    log = tmp_path / "t1.log"
    log.write_text("a log\n", encoding="utf-8")
    result = runner.invoke(app, ["claims", "run", "--out", str(log), "--only", "ghost_batch"])
    assert result.exit_code == 2, result.output
    assert f"--out {log} is a file, not a folder" in _text(result)
    assert files_under(tmp_path) == [log]


def test_claims_report_says_precisely_why_there_is_nothing_to_report(ablation_path, tmp_path):
    missing = tmp_path / "nope"
    log = tmp_path / "t1.log"
    log.write_text("a log\n", encoding="utf-8")
    tree = _tree(tmp_path / "r", load_ablation(ablation_path).resolved)
    claim = _tree(tmp_path / "claims" / "dropout_order", {"name": "dropout_order"})
    cases = {
        missing: f"{missing}: does not exist",
        log: f"{log}: is a file, not a claims results folder",
        tree: "is an ablation results tree, not a claims one; read it with "
        f"`bnbench report {tree}`",
        claim: f"is the folder of the single claim 'dropout_order'; give its parent: "
        f"`bnbench claims report {claim.parent}`",
    }
    before = files_under(tmp_path)
    for folder, message in cases.items():
        result = runner.invoke(app, ["claims", "report", str(folder)])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.stderr.split())
        assert "holds no claim results" not in result.stderr
    assert files_under(tmp_path) == before and not missing.exists()


# --- help text and narrow tables ---------------------------------------------------------------


def _cli(*args: str, columns: int) -> str:
    env = {**os.environ, "COLUMNS": str(columns), "TERMINAL_WIDTH": str(columns)}
    done = subprocess.run([sys.executable, "-m", "bnbench", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, check=True)  # fmt: skip
    return done.stdout


def _help(*command: str) -> str:
    """A command's --help as one line of words, without the boxes' borders."""
    return " ".join(_cli(*command, "--help", columns=300).replace("│", " ").split())


def test_help_keeps_its_placeholders_and_plan_set_says_it_writes_nothing():
    claims_help = _help("claims", "run")
    assert "each claim goes to OUT/CLAIM_ID/." in claims_help
    assert "into OUT/CLAIM_ID/ (resumable" in claims_help and "OUT//" not in claims_help
    plan_help = _help("plan")
    assert "plan writes nothing" in plan_help and "Recorded in the results tree" not in plan_help
    ablate_help = _help("ablate")
    assert "Recorded in the results tree's ablation.yaml" in ablate_help


def test_run_ids_stay_whole_at_80_columns():
    path = REPO / "configs" / "ablations" / "lr_sensitivity.yaml"
    shown = _cli("plan", str(path), columns=80)
    for run in load_ablation(path).runs:
        assert run.run_id in shown, run.run_id
    tree = REPO / "results" / "quickstart"
    manifest = json.loads((tree / "manifest.json").read_text(encoding="utf-8"))
    shown = _cli("status", str(tree), columns=80)
    for entry in manifest["plan"]:
        assert entry["run_id"] in shown, entry["run_id"]


def test_claim_ids_stay_whole_at_80_columns():
    shown = _cli("claims", "list", columns=80)
    for claim_id in CLAIMS:
        assert claim_id in shown, claim_id
