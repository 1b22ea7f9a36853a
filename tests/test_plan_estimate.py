"""`bnbench plan`'s runtime estimate: from finished runs' timings, or from a short probe run;
`plan` writes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.ablate.estimate import Costs, estimate_runtime, makespan
from bnbench.cli import app
from bnbench.config.ablation import Ablation, load_ablation
from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.train.schedule import run_length
from tests.support.specs import TINY_SPEC, files_under, write_summary

runner = CliRunner()

# 2 arms x 3 rates x 2 seeds = 12 runs of 8 steps, evaluated at steps 4 and 8.
ABLATION = {
    "name": "abl",
    "base": "spec.yaml",
    "overrides": {"training.steps": 8, "training.eval_every": 4},
    "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
    "grid": {"training.learning_rate": [0.01, 0.1, 1.0]},
    "seeds": [0, 1],
}
# Fixed cost 1.0 s (data + build + compile_and_setup + writing); 0.3 s of evaluation over
# 2 evaluation points and the final test: 0.1 s each. `imports` is the worker's, not the run's.
TIMINGS = {"imports": 5.0, "data": 0.1, "build": 0.4, "compile_and_setup": 0.5, "writing": 0.0,
           "steps": 0.1, "evaluation": 0.3}  # fmt: skip


@pytest.fixture
def ablation(write_spec) -> tuple[Path, Ablation]:
    write_spec(TINY_SPEC, "spec.yaml")
    path = write_spec(ABLATION, "ablation.yaml")
    return path, load_ablation(path)


def _finish(results: Path, ablation: Ablation, index: int, step_ms: float) -> None:
    """A finished run of the tree, by hand: its config and a summary with known timings; and
    the tree's ablation.yaml, as `ablate` writes it (plan warns about a tree without one)."""
    import yaml

    results.mkdir(exist_ok=True)
    text = yaml.safe_dump(ablation.resolved, sort_keys=False)
    (results / "ablation.yaml").write_text(text, encoding="utf-8")
    run = ablation.runs[index]
    run_dir = results / "runs" / run.run_id
    rundir.begin(run_dir, run.spec.model_dump(mode="json"))
    write_summary(run_dir, {"status": "completed", "backend": run.spec.backend,
                            "total_steps": 8, "steps_per_epoch": 6, "step_time_ms": step_ms,
                            "timings": TIMINGS})  # fmt: skip


@pytest.fixture
def tree(tmp_path, ablation) -> Path:
    """Runs 0 (no_bn) and 6 (bn) finished: 10 ms and 20 ms per step."""
    _, loaded = ablation
    results = tmp_path / "results"
    _finish(results, loaded, 0, 10.0)
    _finish(results, loaded, 6, 20.0)
    return results


def test_makespan_spreads_runs_longest_first_and_pays_startup_per_slot():
    assert makespan([3.0, 2.0, 2.0, 1.0], jobs=1) == 8.0
    assert makespan([3.0, 2.0, 2.0, 1.0], jobs=2) == 4.0  # 3+1 and 2+2
    assert makespan([3.0, 2.0], jobs=4, startup=5.0) == 8.0  # two slots used
    assert makespan([], jobs=2) == 0.0


def test_estimate_from_finished_runs_matches_each_arm(ablation, tree):
    _, loaded = ablation
    no_bn = 1.0 + 8 * 0.010 + 3 * 0.1  # fixed + steps + (2 evaluation points + the test)
    bn = 1.0 + 8 * 0.020 + 3 * 0.1
    one = estimate_runtime(loaded, tree, jobs=1)
    assert one.remaining == 10 and one.estimated == 10 and not one.missing
    assert one.seconds == pytest.approx(5 * no_bn + 5 * bn)
    two = estimate_runtime(loaded, tree, jobs=2)
    assert two.seconds == pytest.approx(3 * bn + 2 * no_bn)  # the busier slot
    assert sorted(costs.step_ms for costs, _ in two.bases) == [10.0, 20.0]
    for costs, count in two.bases:
        assert count == 5 and costs.fixed_s == pytest.approx(1.0)
        assert costs.evaluation_s == pytest.approx(0.1) and costs.startup_s is None
        assert "same backend, model, data and batch size" in costs.source


def test_runs_of_another_model_are_timed_by_backend_and_say_so(ablation, tmp_path):
    _, loaded = ablation
    results = tmp_path / "results"
    _finish(results, loaded, 0, 10.0)
    estimate = estimate_runtime(loaded, results, jobs=1)
    sources = {costs.source: count for costs, count in estimate.bases}
    assert len(sources) == 2 and sum(sources.values()) == 11
    (other,) = [s for s in sources if "another model" in s]
    assert sources[other] == 6  # the bn arm's runs


def test_plan_prints_the_estimate_and_writes_nothing(ablation, tree):
    path, _ = ablation
    before = {p: p.read_bytes() for p in files_under(tree)}
    result = runner.invoke(app, ["plan", str(path), "--out", str(tree), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "estimated runtime ≈ 7.1 s for 10 runs at --jobs 2" in text
    assert "2 of 12 runs already finished" in text
    assert "5 runs estimated from 1 finished run in" in text
    assert "step 10.00 ms" in text and "step 20.00 ms" in text
    assert "fixed cost per run 1.00 s" in text and "evaluation 100 ms each" in text
    assert "worker start-up not included" in text
    assert {p: p.read_bytes() for p in files_under(tree)} == before


def test_failed_runs_are_not_counted_and_the_plan_says_so(ablation, tree):
    path, loaded = ablation
    try:
        raise RuntimeError("boom")
    except RuntimeError as err:
        rundir.record_failure(tree / "runs" / loaded.runs[1].run_id, err, brief=True)
    assert estimate_runtime(loaded, tree).remaining == 9
    result = runner.invoke(app, ["plan", str(path), "--out", str(tree)])
    text = " ".join(result.output.split())
    assert "for 9 runs at --jobs 1" in text
    assert (
        "1 run failed earlier and is not counted: ablate skips them unless given --retry-failed"
        in text
    )


def test_without_finished_runs_plan_says_how_to_get_an_estimate(ablation, tmp_path):
    path, _ = ablation
    result = runner.invoke(app, ["plan", str(path), "--out", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "no runtime estimate: no finished runs in" in text
    assert "add --estimate to time a short probe run" in text
    assert not (tmp_path / "none").exists()


def test_a_probe_times_one_run_per_backend(ablation):
    _, loaded = ablation
    probed: list[tuple[str, int]] = []

    def probe(run, steps: int) -> Costs:
        probed.append((run.run_id, steps))
        return Costs(fixed_s=2.0, step_ms=50.0, evaluation_s=0.5, startup_s=4.0, source="probe")

    estimate = estimate_runtime(loaded, None, jobs=3, probe=True, probe_run=probe)
    assert probed == [(loaded.runs[0].run_id, 8)]  # the run's own 8 steps: fewer than 40
    per_run = 2.0 + 8 * 0.05 + 3 * 0.5
    assert estimate.seconds == pytest.approx(4.0 + 4 * per_run)  # 12 runs on 3 slots
    assert estimate_runtime(loaded, None, probe=False).bases == []


def test_plan_refuses_jobs_below_one(ablation):
    path, _ = ablation
    result = runner.invoke(app, ["plan", str(path), "--jobs", "0"])
    assert result.exit_code == 2
    assert "--jobs" in result.output


def test_estimate_probe_on_a_tiny_grid_prints_a_number(ablation, tmp_path):
    """A real probe: `bnbench train` in a fresh process for the run's 8 steps."""
    path, _ = ablation
    out = tmp_path / "r"
    result = runner.invoke(app, ["plan", str(path), "--out", str(out), "--estimate"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    found = re.search(r"estimated runtime ≈ ([\d.]+) (s|min) for 12 runs at --jobs 1", text)
    assert found and float(found.group(1)) > 0, text
    assert "a probe of no_bn-" in text and "for 8 steps (tensorflow" in text
    assert re.search(r"step [\d.]+ ms", text) and re.search(r"worker start-up [\d.]+ s", text)
    assert not out.exists()


def test_run_length_reads_the_data_size_only_for_an_epoch_budget(tiny_spec):
    sizes: dict[str, int] = {}
    assert run_length(RunSpec.model_validate(tiny_spec), sizes) == (12, 3) and sizes == {}
    tiny_spec["training"] = {**tiny_spec["training"], "steps": None, "epochs": 2,
                             "eval_every": None}  # fmt: skip
    # 120 examples, a quarter held out: 90 to train on, 6 steps an epoch at batch 16.
    assert run_length(RunSpec.model_validate(tiny_spec), sizes) == (12, 2)
    assert list(sizes.values()) == [90]


def test_runs_whose_length_needs_absent_data_are_named(write_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))
    spec = {**TINY_SPEC, "dataset": {"name": "mnist", "subset": 100, "flatten": True}}
    write_spec(spec, "spec.yaml")
    path = write_spec({**ABLATION, "overrides": {"training.epochs": 1}}, "ablation.yaml")
    loaded = load_ablation(path)
    results = tmp_path / "results"
    _finish(results, loaded, 0, 10.0)
    estimate = estimate_runtime(loaded, results)
    assert estimate.bases == [] and estimate.seconds is None
    ((why, count),) = estimate.missing.items()
    assert count == 11 and "dataset 'mnist' is not in the Keras cache" in why
    result = runner.invoke(app, ["plan", str(path), "--out", str(results)])
    assert result.exit_code == 0, result.output
    assert "no runtime estimate: 11 runs: their length is not known here" in " ".join(
        result.output.split()
    )
