"""`claims run --until-decided`: rounds of seeds for open findings, each stopped by the
group-sequential boundary, looks recorded and resumed; on hand-built findings, then one tiny
real claims run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.claims.adaptive import Looks, load_looks, look, save_looks, sequential_decisions
from bnbench.claims.measures import finding
from bnbench.claims.verdicts import Value
from bnbench.cli import app
from bnbench.errors import SpecError
from bnbench.results import rundir
from tests.support.specs import TINY_SPEC

runner = CliRunner()


def _finding(values: list[float]):
    return finding("gain", "accuracy, BN − no BN", [Value(s, v) for s, v in enumerate(values)],
                   0.0, "above")  # fmt: skip


def test_a_clear_effect_continues_past_an_early_look_then_stops_supported():
    looks = Looks(max_seeds=12, step=6)
    look(looks, "c", list(range(6)), [_finding([0.1] * 6)], family=1)
    state = looks.claims["c"]["findings"]["gain"]
    # O'Brien-Fleming spends almost nothing at half the information: 6 of 6 cannot stop.
    assert state["decision"] == "continue" and state["looks"] == [6]
    assert looks.open("c") and looks.seeds("c") == list(range(12))
    look(looks, "c", list(range(12)), [_finding([0.1] * 12)], family=1)
    assert state["decision"] == "supported" and state["looks"] == [6, 12]
    assert not looks.open("c")


def test_no_effect_is_inconclusive_at_max_seeds_and_a_decision_is_kept():
    looks = Looks(max_seeds=8, step=4)
    noise = [0.1, -0.1, 0.05, -0.02, 0.03, -0.04, 0.02, -0.01]
    look(looks, "c", list(range(4)), [_finding(noise[:4])], family=1)
    look(looks, "c", list(range(8)), [_finding(noise)], family=1)
    assert looks.claims["c"]["findings"]["gain"]["decision"] == "inconclusive"
    assert not looks.open("c") and looks.seeds("c") == list(range(8))


def test_the_level_holds_for_the_family_of_the_first_look():
    looks = Looks(max_seeds=12, step=6)
    look(looks, "c", list(range(6)), [_finding([0.1] * 6)], family=25)
    assert looks.level == pytest.approx(1 - 0.05 / 25)


def test_looks_resume_from_the_file_and_refuse_another_max_seeds(tmp_path: Path):
    looks = Looks(max_seeds=12, step=6)
    look(looks, "c", list(range(6)), [_finding([0.1] * 6)], family=1)
    save_looks(tmp_path, looks)
    again = load_looks(tmp_path, 12, 6)
    assert again.claims == looks.claims and again.seeds("c") == list(range(12))
    assert sequential_decisions(tmp_path)[("c", "gain")]["looks"] == [6]
    with pytest.raises(SpecError, match="started with --max-seeds 12, not 20"):
        load_looks(tmp_path, 20, 6)


def test_bad_max_seeds_exits_2_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "claims"
    result = runner.invoke(app, ["claims", "run", "--out", str(out), "--only", "ghost_batch",
                                 "--quick", "--seeds", "6", "--until-decided",
                                 "--max-seeds", "3"])  # fmt: skip
    assert result.exit_code == 2 and "--max-seeds must be at least the" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_until_decided_adds_seeds_in_rounds_records_looks_and_resumes(tmp_path: Path):
    configs, out = tmp_path / "configs", tmp_path / "claims"
    configs.mkdir()
    spec = {**TINY_SPEC, "training": {**TINY_SPEC["training"], "steps": 4, "eval_every": 4}}
    (configs / "tiny.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    ablation = {"name": "ghost_batch", "base": "tiny.yaml",
                "arms": {"bn": {"model.norm.kind": "batch"},
                         "ghost_bn": {"model.norm.kind": "batch",
                                      "model.norm.virtual_batch_size": 4}},
                "seeds": [0, 1]}  # fmt: skip
    (configs / "ghost_batch.yaml").write_text(yaml.safe_dump(ablation), encoding="utf-8")
    command = ["claims", "run", "--out", str(out), "--only", "ghost_batch", "--configs",
               str(configs), "--jobs", "1", "--quiet", "--seeds", "2", "--until-decided",
               "--max-seeds", "4"]  # fmt: skip

    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    # Round 1 on seeds 0-1 cannot decide (2 seeds), round 2 adds 2-3 and reaches M = 4.
    folder = out / "ghost_batch"
    assert yaml.safe_load((folder / "ablation.yaml").read_text())["seeds"] == [0, 1, 2, 3]
    runs = sorted((folder / "runs").iterdir())
    assert len(runs) == 8 and all(rundir.run_state(r) == "completed" for r in runs)
    recorded = json.loads((out / "looks.json").read_text(encoding="utf-8"))
    state = recorded["claims"]["ghost_batch"]["findings"][""]
    assert state["looks"] == [2, 4] and state["decision"] in ("supported", "not supported",
                                                              "inconclusive")  # fmt: skip
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    found = data["claims"][0]["findings"][0]
    assert found["looks"]["looks"] == [2, 4] and data["seeds"] == [0, 1, 2, 3]
    kept = {r.name: (r / rundir.SUMMARY).stat().st_mtime_ns for r in runs}

    second = runner.invoke(app, command)  # decided: nothing to run, the report again
    assert second.exit_code == 0, second.output
    assert {r.name: (r / rundir.SUMMARY).stat().st_mtime_ns for r in runs} == kept
