"""The claims report: it re-reads the results tree alone, writes only its outputs, and
editing the runs to contradict a claim flips its verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner

from bnbench.claims.report import write_claims_report
from bnbench.cli import app
from bnbench.config.schema import DatasetSpec
from bnbench.demos.landscape import conditioning, training_split
from bnbench.results import rundir
from bnbench.results.diagnostics import VARIANCE_SHIFT
from bnbench.results.files import write_csv, write_yaml
from tests.support.claims_scenarios import (
    FOR,
    SCENARIOS,
    after_rows,
    dropout_order,
    input_scaling,
    small_batch_examples,
)
from tests.support.specs import files_under

runner = CliRunner()


def test_flip_hand_edited_results(tmp_path: Path):
    """A claim supported by its runs is not supported once the runs are edited to contradict it."""
    out = tmp_path / "claims"
    folder = SCENARIOS["ghost_batch"](FOR).write(out)
    write_claims_report(out)
    verdicts = [f["verdict"] for f in _claim(out, "ghost_batch")["findings"]]
    assert verdicts == ["supported"]
    for summary_path in sorted((folder / "runs").glob("ghost_bn-*/" + rundir.SUMMARY)):
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summary["final"]["test_accuracy"] -= 0.25  # the ghost runs now score far lower
        summary_path.write_text(json.dumps(summary), encoding="utf-8")
    write_claims_report(out)
    assert [f["verdict"] for f in _claim(out, "ghost_batch")["findings"]] == ["not supported"]
    assert (out / "figures" / "ghost_batch.png").is_file()


def _fail_the_ghost_runs(folder: Path) -> None:
    for summary_path in sorted((folder / "runs").glob("ghost_bn-*/" + rundir.SUMMARY)):
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summary["final"]["test_accuracy"] -= 0.25  # the ghost runs now score far lower
        summary_path.write_text(json.dumps(summary), encoding="utf-8")


def test_a_claims_html_written_before_is_rerendered_with_the_new_results(tmp_path: Path):
    """`claims report --html`, then the runs change, then `claims report` without --html: the
    page an earlier --html wrote shows the new verdict, as claims.md and claims.json do."""
    out = tmp_path / "claims"
    folder = SCENARIOS["ghost_batch"](FOR).write(out)
    result = runner.invoke(app, ["claims", "report", str(out), "--html"])
    assert result.exit_code == 0, result.output
    page = out / "claims.html"
    assert "<b class='supported'>supported</b>" in page.read_text(encoding="utf-8")
    _fail_the_ghost_runs(folder)
    result = runner.invoke(app, ["claims", "report", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert [f["verdict"] for f in _claim(out, "ghost_batch")["findings"]] == ["not supported"]
    text = page.read_text(encoding="utf-8")
    assert "<b class='not-supported'>not supported</b>" in text
    assert "<b class='supported'>" not in text
    assert "(claims.html re-rendered too, so that it shows these results)" in result.output


def test_a_claims_html_bnbench_did_not_write_is_left_alone(tmp_path: Path):
    out = tmp_path / "claims"
    SCENARIOS["ghost_batch"](FOR).write(out)
    (out / "claims.html").write_text("<html>my own notes</html>\n", encoding="utf-8")
    result = runner.invoke(app, ["claims", "report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "claims.html").read_text(encoding="utf-8") == "<html>my own notes</html>\n"
    assert "re-rendered" not in result.output


def test_report_lists_every_claim_in_the_folder(tmp_path: Path):
    out = tmp_path / "claims"
    for claim_id in ("placement", "depth"):
        SCENARIOS[claim_id](FOR).write(out)
    reports, _ = write_claims_report(out, html=True)
    assert [r.claim.id for r in reports] == ["depth", "placement"]  # registry order
    text = (out / "claims.md").read_text(encoding="utf-8")
    assert "| depth |" in text and "![placement](figures/placement.png)" in text
    assert "data:image/png;base64," in (out / "claims.html").read_text(encoding="utf-8")
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    assert {f["verdict"].removesuffix(" (unstable)") for c in data["claims"]
            for f in c["findings"]} <= {
        "supported", "not supported", "inconclusive"}  # fmt: skip
    assert all(c["mode"] == "changed" for c in data["claims"])  # hand-built, not a shipped budget


def _claim(out: Path, claim_id: str) -> dict:
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    return next(c for c in data["claims"] if c["id"] == claim_id)


def test_input_scaling_reads_the_condition_numbers_from_the_training_data(tmp_path: Path):
    folder = input_scaling(FOR).write(tmp_path / "claims")
    dataset = {"name": "two_scale", "normalize": "standardize", "num_samples": 400}
    for config in sorted((folder / "runs").glob(f"*/{rundir.CONFIG}")):
        write_yaml(config, {"name": "x", "seed": 0, "dataset": dataset})
    write_claims_report(tmp_path / "claims")
    x, y = training_split(DatasetSpec.model_validate(dataset))
    assert x.shape == (288, 2)  # 80% of 400 for training, 10% of that held out
    expected = conditioning(x, y)
    assert expected.raw > 100 and expected.standardized < 2
    data = json.loads((tmp_path / "claims" / "claims.json").read_text(encoding="utf-8"))
    text = " ".join(data["claims"][0]["sentences"])
    assert f"condition number {expected.raw:,.1f} on raw features" in text
    assert f"{expected.standardized:.3f} on standardized ones" in text
    assert "R²" not in text  # the hand-built target is an accuracy, not the MSE
    assert (tmp_path / "claims" / "figures" / "input_scaling.png").stat().st_size > 20_000


def _edit_summaries(folder: Path, pattern: str, edit: Callable[[dict], None]) -> None:
    for path in sorted((folder / "runs").glob(f"{pattern}/{rundir.SUMMARY}")):
        summary = json.loads(path.read_text(encoding="utf-8"))
        edit(summary)
        path.write_text(json.dumps(summary), encoding="utf-8")


def _verdicts(out: Path, claim_id: str) -> list[str]:
    write_claims_report(out)
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    claim = next(c for c in data["claims"] if c["id"] == claim_id)
    # The claim's own rule: with 6 seeds an exact test's p-value (1/32) does not survive Holm
    # over two findings, which tests/test_claims_judging.py checks on its own.
    return [f["rule_verdict"] for f in claim["findings"]]


def test_flip_input_scaling(tmp_path: Path):
    out = tmp_path / "claims"
    folder = input_scaling(FOR).write(out)
    assert _verdicts(out, "input_scaling") == ["supported", "supported"]

    def slower(summary: dict) -> None:
        if summary["target"]["step"] is not None and summary["target"]["step"] < 400:
            summary["target"]["step"] = 1200  # BN now needs three times raw's steps

    _edit_summaries(folder, "bn*", slower)
    assert _verdicts(out, "input_scaling") == ["not supported", "not supported"]


def test_flip_small_batch_examples(tmp_path: Path):
    out = tmp_path / "claims"
    folder = small_batch_examples(FOR).write(out)
    assert _verdicts(out, "small_batch_examples") == ["supported", "supported"]

    def worse(summary: dict) -> None:
        summary["final"]["test_accuracy"] -= 0.5

    _edit_summaries(folder, "group-2-*", worse)  # group norm now collapses at batch 2
    assert _verdicts(out, "small_batch_examples") == ["not supported", "not supported"]


def test_flip_the_variance_shift_finding(tmp_path: Path):
    out = tmp_path / "claims"
    folder = dropout_order(FOR).write(out)
    assert _verdicts(out, "dropout_order")[1] == "supported"
    for path in sorted((folder / "runs").glob("dropout_after_bn-*/diagnostics/*.csv")):
        columns = list(VARIANCE_SHIFT.columns)
        write_csv(path, [dict(zip(columns, row, strict=True)) for row in after_rows(4.0)], columns)
    assert _verdicts(out, "dropout_order")[1] == "not supported"
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    text = " ".join(next(c for c in data["claims"] if c["id"] == "dropout_order")["sentences"])
    assert "Variance shift of block3_norm at the end" in text and "4.000 with dropout after" in text


def test_bnbench_plot_draws_the_variance_shift(tmp_path: Path):
    folder = dropout_order(FOR).write(tmp_path / "claims")
    result = runner.invoke(app, ["plot", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "plots" / "variance_shift.png").stat().st_size > 10_000
    assert "variance shift (Li et al. 2019)" in (folder / "plots" / "index.md").read_text("utf-8")


def test_report_reads_each_summary_once_and_writes_only_its_outputs(tmp_path: Path, monkeypatch):
    """The report needs no runs.csv (it reads the run directories), rewrites nothing it read,
    and parses each run's summary.json once."""
    out = tmp_path / "claims"
    folder = SCENARIOS["ghost_batch"](FOR).write(out)
    (folder / "runs.csv").unlink()
    before = {path: path.stat().st_mtime_ns for path in files_under(out)}
    reads: list[Path] = []
    read_summary = rundir.read_summary

    def counted(run_dir: Path) -> rundir.RunSummary | None:
        reads.append(run_dir)
        return read_summary(run_dir)

    monkeypatch.setattr(rundir, "read_summary", counted)
    write_claims_report(out)
    after = {path: path.stat().st_mtime_ns for path in files_under(out)}
    written = {path.relative_to(out).as_posix() for path in set(after) - set(before)}
    assert written == {"claims.md", "claims.json", "figures/ghost_batch.png"}
    assert {path: after[path] for path in before} == before  # nothing read was rewritten
    runs = sorted((folder / "runs").iterdir())
    assert sorted(reads) == runs  # 8 runs, each summary parsed once
    assert _claim(out, "ghost_batch")["findings"][0]["verdict"] == "supported"


def test_committed_claims_json_has_no_zero_width_interval_and_its_family_columns():
    """The committed results/claims: every interval has width, every finding its raw and
    adjusted p-value (or none for both), its method and its stability column."""
    path = Path(__file__).resolve().parents[1] / "results" / "claims" / "claims.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["correction"] == "holm" and data["seeds"]
    for claim in data["claims"]:
        for found in claim["findings"]:
            low = float("-inf") if found["ci_low"] is None else found["ci_low"]
            high = float("inf") if found["ci_high"] is None else found["ci_high"]
            assert low < high, (claim["id"], found["label"])
            assert (found["p_value"] is None) == (found["p_adjusted"] is None)
            if found["p_value"] is not None:
                assert found["p_value"] <= found["p_adjusted"] <= 1
            assert found["method"] and found["stability"].startswith(("replicates", "-"))
            if found["verdict"] == "inconclusive":
                assert found["rules_out"]["text"]
            if found["verdict"] in ("supported", "not supported"):
                assert found["settled"]  # halves that disagree are marked (unstable)


def test_report_prints_its_table_on_stdout_through_a_pipe(tmp_path: Path):
    """`bnbench claims report DIR | cat`: the table is the command's output (stdout, as
    markdown through a pipe); stderr is for progress and notes, and has none here."""
    out = tmp_path / "claims"
    SCENARIOS["ghost_batch"](FOR).write(out)
    done = subprocess.run([sys.executable, "-m", "bnbench", "claims", "report", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| claim | finding | verdict |" in done.stdout and "| ghost_batch |" in done.stdout
    assert done.stderr == ""


def test_report_of_an_until_decided_run_names_its_correction(tmp_path: Path):
    """With looks.json, the table's caption, claims.md and claims.json name the step-down that
    decided the findings with looks, and the finding's verdict is the sequential decision."""
    from bnbench.claims.adaptive import Looks, look, save_looks
    from bnbench.claims.evidence import load_evidence
    from bnbench.claims.registry import CLAIMS

    out = tmp_path / "claims"
    folder = SCENARIOS["ghost_batch"](FOR).write(out)
    findings = CLAIMS["ghost_batch"].assess(load_evidence(folder)).findings
    looks = Looks(max_seeds=12, step=6)
    look(looks, "ghost_batch", list(range(6)), findings, family=len(findings))
    save_looks(out, looks)
    result = runner.invoke(app, ["claims", "report", str(out)])
    assert result.exit_code == 0, result.output
    assert "Holm's step-down over group-sequential sign tests" in " ".join(result.stdout.split())
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    assert data["sequential"]["correction"] == "holm step-down"
    assert data["sequential"]["hypotheses"] == 2 * len(findings)
    # 6 of 6 seeds at the first look of 12 cannot stop (O'Brien-Fleming): not yet decided.
    assert [f["verdict"] for f in _claim(out, "ghost_batch")["findings"]] == ["inconclusive"]
    assert "Holm's step-down" in (out / "claims.md").read_text(encoding="utf-8")


def test_correction_is_a_choice_recorded_and_kept_on_re_render(tmp_path: Path):
    out = tmp_path / "claims"
    for claim_id in ("placement", "depth"):  # 4 findings: Holm and BH adjust them differently
        SCENARIOS[claim_id](FOR).write(out)

    def report(*args: str) -> tuple[dict, str]:
        result = runner.invoke(app, ["claims", "report", str(out), *args])
        assert result.exit_code == 0, result.output
        assert "p (raw → " in result.stdout
        data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
        return data, (out / "claims.md").read_text(encoding="utf-8")

    data, text = report()  # the default
    assert data["correction"] == "holm" and "p (raw → Holm)" in text
    assert "adjusted by Holm (family-wise error)" in text and "Benjamini" not in text
    holm = [f["p_adjusted"] for c in data["claims"] for f in c["findings"]]

    for args in (["--correction", "bh"], []):  # then re-rendered without the flag: kept
        data, text = report(*args)
        assert data["correction"] == "bh"
        assert data["correction_text"] == "Benjamini-Hochberg (false discovery rate)"
        assert "p (raw → Benjamini-Hochberg)" in text and "Holm" not in text
        found = [f for c in data["claims"] for f in c["findings"]]
        expected = stats.false_discovery_control([f["p_value"] for f in found], method="bh")
        assert [f["p_adjusted"] for f in found] == pytest.approx(list(expected), rel=1e-9)
        assert [f["p_adjusted"] for f in found] != pytest.approx(holm, rel=1e-3)

    data, _ = report("--correction", "holm")  # the flag overrides the recorded choice
    assert data["correction"] == "holm"


def test_an_unknown_correction_exits_2_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "claims"
    SCENARIOS["ghost_batch"](FOR).write(out)
    before = files_under(out)
    result = runner.invoke(app, ["claims", "report", str(out), "--correction", "sidak"])
    assert result.exit_code == 2
    assert "is not one of" in " ".join(result.stderr.split())
    assert files_under(out) == before


def test_a_withdrawn_finding_names_the_correction_that_withdrew_it():
    from bnbench.analysis.power import RulesOut
    from bnbench.claims.judging import Judgement

    ruled = RulesOut(above=-0.01, below=0.05, underpowered=False)  # the interval is one-sided
    for correction, name in (("holm", "Holm"), ("bh", "Benjamini-Hochberg")):
        judged = Judgement("inconclusive", "supported", 0.01, 0.08, "t", None, ruled, 0.02,
                           correction=correction)  # fmt: skip
        assert judged.absence() == (f"its 95% interval excludes the threshold, but not after "
                                    f"{name} (adjusted p 0.080)")  # fmt: skip
