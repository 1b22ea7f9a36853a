"""`claims run --until-decided`: rounds of seeds for open findings, each stopped by the
group-sequential boundary, looks recorded and resumed; on hand-built findings, then one tiny
real claims run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bnbench.claims.adaptive import Looks, load_looks, look, save_looks, sequential_decisions
from bnbench.claims.measures import finding
from bnbench.claims.verdicts import Value
from bnbench.cli import app
from bnbench.errors import SpecError
from bnbench.results import rundir
from tests.support.specs import TINY_SPEC, files_under

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


def test_the_family_is_fixed_at_the_first_look_and_starts_at_bonferroni():
    looks = Looks(max_seeds=12, step=6)
    look(looks, "c", list(range(6)), [_finding([0.1] * 6)], family=25)
    look(looks, "d", list(range(6)), [_finding([0.1] * 6)], family=1)  # ignored: fixed
    assert looks.hypotheses == 50  # two sides of 25 findings
    # Nothing rejected: each side at 0.05 / 50, a finding at 1 - 0.05 / 25, as Bonferroni.
    assert looks.claims["c"]["findings"]["gain"]["level"] == pytest.approx(0.05 / 50)


def _named(label: str, values: list[float]):
    return finding(label, "gain", [Value(s, v) for s, v in enumerate(values)], 0.0, "above")


def test_a_rejection_raises_the_others_level_at_every_look_so_far():
    """Holm's step-down: claim b, done at M with 9 of 10 seeds above, is inconclusive at
    0.05 / 6 (which needs 10 of 10); when claim a's two findings are decided, b's own look
    is tested again at 0.05 / 4, which needs 9: b is supported without another seed."""
    looks = Looks(max_seeds=10, step=5)
    look(looks, "a", list(range(5)), [_named("x", [1.0] * 5), _named("y", [1.0] * 5)], family=3)
    look(looks, "b", list(range(10)), [_named("", [1.0] * 9 + [-1.0])], family=3)
    b = looks.claims["b"]["findings"][""]
    assert b["decision"] == "inconclusive" and b["critical"] == 10 and not looks.open("b")
    assert looks.open("a") and looks.seeds("a") == list(range(10))
    look(looks, "a", list(range(10)), [_named("x", [1.0] * 10), _named("y", [1.0] * 10)],
         family=3)  # fmt: skip
    assert [f["decision"] for f in looks.claims["a"]["findings"].values()] == ["supported"] * 2
    assert b["decision"] == "supported" and b["looks"] == [10] and b["above"] == [9]
    assert not looks.open("a") and not looks.open("b")


def test_the_decisions_of_look_are_the_step_down_on_random_findings():
    """`look` and `settle` on hand-made findings decide as `step_down` does on their counts."""
    from bnbench.analysis.sequential import ever_crossed, step_down

    rng = np.random.default_rng(0)
    for _ in range(20):
        effects = rng.choice([0.0, 0.5, 2.0], size=4)
        data = rng.normal(size=(4, 12)) + effects[:, None]
        looks = Looks(max_seeds=12, step=6)
        for n in (6, 12):
            for claim in ("p", "q"):
                rows = data[:2] if claim == "p" else data[2:]
                if looks.open(claim):
                    look(looks, claim, list(range(n)),
                         [_named(str(i), list(row[:n])) for i, row in enumerate(rows)], 4)
        levels = [0.05 / m for m in range(1, 9)]
        crossed = np.zeros((8, 8), dtype=bool)
        for i, row in enumerate(data):
            claim, label = ("p" if i < 2 else "q"), str(i % 2)
            seen = looks.claims[claim]["findings"][label]["looks"]
            for j, side in enumerate((row > 0, row < 0)):
                at = np.array([side[:n].sum() for n in seen])
                crossed[:, 2 * i + j] = ever_crossed(at, seen, 12, levels)
        expected = step_down(crossed)
        for i in range(4):
            state = looks.claims["p" if i < 2 else "q"]["findings"][str(i % 2)]
            want = ("supported" if expected[2 * i] else "not supported" if expected[2 * i + 1]
                    else "inconclusive")  # fmt: skip
            assert state["decision"] == want


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


def test_looks_of_an_earlier_bnbench_are_refused_and_reported_as_bonferroni(tmp_path: Path):
    from bnbench.claims.adaptive import sequential_record

    earlier = {"max_seeds": 12, "step": 6, "level": 1 - 0.05 / 25, "claims": {}}
    (tmp_path / "looks.json").write_text(json.dumps(earlier), encoding="utf-8")
    with pytest.raises(SpecError, match="written by an earlier bnbench"):
        load_looks(tmp_path, 12, 6)
    record = sequential_record(tmp_path)
    assert record is not None and record["correction"] == "bonferroni"
    assert record["hypotheses"] == 50


def _npz(path: Path) -> Path:
    """A few dozen samples of 8 features and 3 classes, as a user's .npz (36 to train after
    the 10% held out: whole ghost batches of 4)."""
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.random((40, 8), dtype=np.float32), y_train=np.arange(40) % 3,
             x_test=rng.random((24, 8), dtype=np.float32), y_test=np.arange(24) % 3)  # fmt: skip
    return path


def _tiny_ghost_batch(configs: Path) -> Path:
    """The ghost_batch claim on TINY_SPEC, 4 steps a run (2 on the npz, scaled by rule)."""
    configs.mkdir()
    (configs / "tiny.yaml").write_text(yaml.safe_dump(TINY_SPEC), encoding="utf-8")
    ablation = {"name": "ghost_batch", "base": "tiny.yaml",
                "overrides": {"training.steps": 4, "training.eval_every": 4},
                "arms": {"bn": {"model.norm.kind": "batch"},
                         "ghost_bn": {"model.norm.kind": "batch",
                                      "model.norm.virtual_batch_size": 4}},
                "seeds": [0, 1]}  # fmt: skip
    (configs / "ghost_batch.yaml").write_text(yaml.safe_dump(ablation), encoding="utf-8")
    return configs


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "digits", "--max-seeds", "1"], "--max-seeds must be at least the"),
    (["--dataset-path", "x.npz"], "--dataset-path goes with --dataset npz"),
    (["--dataset", "digits", "--base", "spec.yaml"], "not both"),
    (["--dataset", "npz", "--dataset-path", "missing.npz"], "no such file"),
])  # fmt: skip
def test_bad_retargeted_until_decided_exits_2_in_one_line_and_writes_nothing(
        tmp_path: Path, args: list[str], message: str):  # fmt: skip
    out = tmp_path / "claims"
    result = runner.invoke(app, ["claims", "run", "--out", str(out), "--only", "ghost_batch",
                                 "--quick", "--seeds", "2", "--until-decided", *args])  # fmt: skip
    assert result.exit_code == 2 and message in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert files_under(out) == []


@pytest.mark.slow
def test_until_decided_on_a_retargeted_dataset_adds_rounds_and_resumes_after_a_kill(
        tmp_path: Path):  # fmt: skip
    """--until-decided with --dataset npz: round 1 on seeds 0-1, then the process is killed
    (SIGKILL) just after round 2 extended the claim's folder to seeds 0-3; the same command
    resumes round 2 alone, looks.json records both looks, retarget.json keeps the skipped
    claim, and a third run retrains nothing."""
    configs, out = _tiny_ghost_batch(tmp_path / "configs"), tmp_path / "claims"
    command = ["claims", "run", "--out", str(out), "--only", "ghost_batch,input_scaling",
               "--configs", str(configs), "--dataset", "npz", "--dataset-path",
               str(_npz(tmp_path / "mine.npz")), "--jobs", "1", "--quiet", "--seeds", "2",
               "--until-decided", "--max-seeds", "4"]  # fmt: skip
    killed = subprocess.run([sys.executable, "-m", "tests.support.kill_at",
                             "bnbench.claims.plan:extend_folder", "2", *command],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    folder = out / "ghost_batch"
    assert yaml.safe_load((folder / "ablation.yaml").read_text())["seeds"] == [0, 1, 2, 3]
    first = {r.name: (r / rundir.SUMMARY).stat().st_mtime_ns
             for r in (folder / "runs").iterdir() if rundir.run_state(r) == "completed"}
    assert len(first) == 4  # round 1: 2 arms x seeds 0-1
    retargeted = json.loads((out / "retarget.json").read_text(encoding="utf-8"))

    resumed = runner.invoke(app, command)
    assert resumed.exit_code == 0, resumed.output
    assert "skipped input_scaling" in " ".join(resumed.stdout.split())
    runs = sorted((folder / "runs").iterdir())
    assert len(runs) == 8 and all(rundir.run_state(r) == "completed" for r in runs)
    assert {r.name: (r / rundir.SUMMARY).stat().st_mtime_ns
            for r in runs if r.name in first} == first  # round 1 was not retrained
    configs_seen = [yaml.safe_load((r / "config.yaml").read_text()) for r in runs]
    assert {c["dataset"]["name"] for c in configs_seen} == {"npz"}
    recorded = json.loads((out / "looks.json").read_text(encoding="utf-8"))
    state = recorded["claims"]["ghost_batch"]["findings"][""]
    assert state["looks"] == [2, 4] and len(state["above"]) == 2
    assert json.loads((out / "retarget.json").read_text(encoding="utf-8")) == retargeted
    assert "input_scaling" in retargeted["skipped"]
    report = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    assert report["retarget"]["skipped"] == retargeted["skipped"]
    assert report["sequential"]["correction"] == "holm step-down"
    assert report["claims"][0]["findings"][0]["looks"]["looks"] == [2, 4]
    assert "Holm's step-down over group-sequential" in (out / "claims.md").read_text("utf-8")

    kept = {r.name: (r / rundir.SUMMARY).stat().st_mtime_ns for r in runs}
    again = runner.invoke(app, command)  # decided or at M: nothing to run, the report again
    assert again.exit_code == 0, again.output
    assert {r.name: (r / rundir.SUMMARY).stat().st_mtime_ns for r in runs} == kept
