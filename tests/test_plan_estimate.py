"""`bnbench plan`'s runtime estimate: from finished runs' timings, or from a short probe run;
`plan` writes nothing. One-time costs (a worker's start-up, a program's compilation) are charged
where they occur, not to every run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.ablate.estimate import Costs, Work, describe_estimate, estimate_runtime, makespan
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


def _finish(
    results: Path,
    ablation: Ablation,
    index: int,
    step_ms: float,
    timings: dict[str, float] = TIMINGS,
) -> None:
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
                            "timings": timings})  # fmt: skip


@pytest.fixture
def tree(tmp_path, ablation) -> Path:
    """Runs 0 (no_bn) and 6 (bn) finished: 10 ms and 20 ms per step."""
    _, loaded = ablation
    results = tmp_path / "results"
    _finish(results, loaded, 0, 10.0)
    _finish(results, loaded, 6, 20.0)
    return results


def test_makespan_hands_units_out_in_order_and_pays_startup_per_worker():
    assert makespan([Work(3.0), Work(2.0), Work(2.0), Work(1.0)], jobs=1) == 8.0
    # In plan order to the first free worker: 3 then 1 on one, 2 then 2 on the other.
    assert makespan([Work(3.0), Work(2.0), Work(2.0), Work(1.0)], jobs=2) == 4.0
    assert makespan([Work(3.0, startup_s=5.0), Work(2.0, startup_s=5.0)], jobs=4) == 8.0
    assert makespan([], jobs=2) == 0.0


def test_makespan_compiles_a_program_once_unless_runs_of_it_start_together():
    """Three seeds of arm A then three of arm B on two workers: each arm's first two runs start
    before its program is compiled and both compile; its third loads the compiled program."""
    a, b = (Work(1.0, compile_s=10.0, program=name, startup_s=5.0) for name in "AB")
    # A: both workers compile (5-15); A3 at 16. B1 on the second at 16 compiles (to 26), B2 on
    # the first at 17 too; B3 at 27 finds B compiled: ends at 28.
    assert makespan([a, a, a, b, b, b], jobs=2) == 28.0
    # One worker: each program compiled once.
    assert makespan([a, a, a, b, b, b], jobs=1) == 5.0 + 2 * 10.0 + 6 * 1.0


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
    result = runner.invoke(app, ["plan", str(path), "--out", str(tree), "--jobs", "1"])
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


def test_a_probe_times_one_unit_per_backend_and_compiles_once_per_program(ablation):
    _, loaded = ablation
    probed: list[tuple[list[tuple[tuple[str, ...], int]], int, int]] = []

    def probe(units, jobs: int, workers: int) -> list[Costs]:
        probed.append(([(tuple(r.run_id for r in u.runs), steps) for u, steps in units], jobs,
                       workers))  # fmt: skip
        return [Costs(fixed_s=2.0, step_ms=50.0, evaluation_s=0.5, compile_s=1.0, startup_s=4.0,
                      source="probe")]  # fmt: skip

    estimate = estimate_runtime(loaded, None, jobs=3, probe=probe)
    # The run's own 8 steps (fewer than 40), at --jobs 3: three workers at once.
    assert probed == [([((loaded.runs[0].run_id,), 8)], 3, 3)]
    per_run = 2.0 + 8 * 0.05 + 3 * 0.5
    # 12 runs on 3 workers, 4 each; two programs (no_bn, bn: the learning rates share one),
    # each compiled by the three workers at once as they start it.
    assert estimate.seconds == pytest.approx(4.0 + 2 * 1.0 + 4 * per_run)
    assert estimate_runtime(loaded, None).bases == []


def test_a_probe_times_a_vectorized_group_as_one_unit(write_spec):
    """On JAX the seeds of a cell train as one group: the probe trains such a group, and each
    group is one unit of work, costing its seeds' shares together."""
    write_spec({**TINY_SPEC, "backend": "jax"}, "spec.yaml")
    loaded = load_ablation(write_spec({**ABLATION, "seeds": [0, 1, 2, 3]}, "ablation.yaml"))
    probed = []

    def probe(units, jobs: int, workers: int) -> list[Costs]:
        probed.extend(unit for unit, _ in units)
        return [Costs(fixed_s=0.5, step_ms=10.0, evaluation_s=0.1, compile_s=2.0, startup_s=3.0,
                      source="probe", grouped=True)]  # fmt: skip

    estimate = estimate_runtime(loaded, None, jobs=2, probe=probe)
    ((unit,),) = [probed]
    assert unit.vectorized and len(unit.runs) == 4
    group = 4 * (0.5 + 8 * 0.010 + 3 * 0.1)  # 4 seeds' shares
    # 6 groups (2 arms x 3 rates) on 2 workers, 3 each; each arm's program compiled by both.
    assert estimate.seconds == pytest.approx(3.0 + 2 * 4 * 2.0 + 3 * group)
    text = " ".join(describe_estimate(estimate, None, probe=True))
    assert "fixed cost per seed (its share of the group) 0.50 s" in text


def test_runs_alone_and_groups_of_one_backend_are_probed_in_one_go(write_spec):
    """An arm with diagnostics trains run by run, the other in groups: one probe call times a
    unit of each (its processes start once), and each kind is estimated from its own."""
    write_spec({**TINY_SPEC, "backend": "jax"}, "spec.yaml")
    arms = {"no_bn": {"model.norm.kind": "none"},
            "bn": {"model.norm.kind": "batch", "diagnostics.train_inference_gap": True}}
    loaded = load_ablation(write_spec({**ABLATION, "arms": arms, "seeds": [0, 1, 2, 3]},
                                      "ablation.yaml"))  # fmt: skip
    calls = []

    def probe(units, jobs: int, workers: int) -> list[Costs]:
        calls.append([(unit.vectorized, len(unit.runs)) for unit, _ in units])
        return [Costs(fixed_s=1.0, step_ms=0.0, evaluation_s=0.0, compile_s=0.0, startup_s=0.0,
                      source=f"probe {i}", grouped=unit.vectorized)
                for i, (unit, _) in enumerate(units)]  # fmt: skip

    estimate = estimate_runtime(loaded, None, jobs=1, probe=probe)
    assert calls == [[(False, 1), (True, 4)]]
    assert sorted((costs.source, count) for costs, count in estimate.bases) == [
        ("probe 0", 12), ("probe 1", 12)]  # fmt: skip
    assert estimate.seconds == pytest.approx(24 * 1.0)


def test_finished_runs_that_compiled_are_told_apart_from_those_that_did_not(ablation, tmp_path):
    """Runs 0 and 1 of no_bn compiled its program (8 s more of set-up, 0.2 s more on each of
    their 3 evaluations); runs 2 and 3 loaded it. The remaining no_bn runs cost the latter's
    time, and the program's compilation is charged once, not to every run."""
    _, loaded = ablation
    results = tmp_path / "results"
    for index, compiled in [(0, 8.0), (1, 8.0), (2, 0.0), (3, 0.0)]:
        timings = {**TIMINGS, "compile_and_setup": 0.5 + compiled,
                   "evaluation": 0.3 + 0.6 * (compiled > 0)}  # fmt: skip
        _finish(results, loaded, index, 10.0, timings)
    estimate = estimate_runtime(loaded, results, jobs=1)
    # no_bn's 2 remaining runs, and bn's 6 timed by no_bn's runs (another model).
    assert sorted(count for _, count in estimate.bases) == [2, 6]
    for costs, _ in estimate.bases:
        assert costs.fixed_s == pytest.approx(1.0) and costs.evaluation_s == pytest.approx(0.1)
        assert costs.compile_s == pytest.approx(8.0 + 3 * 0.2)
    per_run = 1.0 + 8 * 0.010 + 3 * 0.1
    # One worker, two programs: each compiled once.
    assert estimate.seconds == pytest.approx(8 * per_run + 2 * (8.0 + 0.6))


def test_plan_refuses_jobs_below_one(ablation):
    path, _ = ablation
    result = runner.invoke(app, ["plan", str(path), "--jobs", "0"])
    assert result.exit_code == 2
    assert "--jobs" in result.output


def test_estimate_probe_on_a_tiny_grid_prints_a_number(ablation, tmp_path):
    """A real probe: `bnbench train` in a fresh process for the run's 8 steps."""
    path, _ = ablation
    out = tmp_path / "r"
    result = runner.invoke(app, ["plan", str(path), "--out", str(out), "--estimate", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    found = re.search(r"estimated runtime ≈ ([\d.]+) (s|min) for 12 runs at --jobs 1", text)
    assert found and float(found.group(1)) > 0, text
    assert "a probe of no_bn-" in text and "for 8 steps (tensorflow" in text
    assert re.search(r"step [\d.]+ ms", text) and re.search(r"worker start-up [\d.]+ s", text)
    assert re.search(r"compilation [\d.]+ s per program", text)
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
