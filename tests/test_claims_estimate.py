"""`bnbench claims run --estimate`: each claim's runtime from a probe or from finished runs, one
probe per network and data, and nothing trained or written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.ablate.estimate import Costs
from bnbench.ablate.suite_estimate import ProbeCache, estimate_suite, total_seconds, unestimated
from bnbench.claims.plan import plan_claims
from bnbench.claims.registry import select
from bnbench.cli import app
from tests.support.specs import TINY_SPEC, files_under

runner = CliRunner()


def _configs(tmp_path: Path) -> Path:
    """A --configs folder with two tiny claim ablations on one network and data."""
    configs = tmp_path / "configs"
    configs.mkdir()
    spec = {**TINY_SPEC, "training": {**TINY_SPEC["training"], "steps": 6, "eval_every": 3}}
    (configs / "tiny.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    ghost = {"name": "ghost_batch", "base": "tiny.yaml",
             "arms": {"bn": {"model.norm.kind": "batch"},
                      "ghost_bn": {"model.norm.kind": "batch",
                                   "model.norm.virtual_batch_size": 4}},
             "seeds": [0, 1]}  # fmt: skip
    (configs / "ghost_batch.yaml").write_text(yaml.safe_dump(ghost), encoding="utf-8")
    return configs


def test_a_probe_is_shared_by_runs_of_one_network_and_data(tmp_path: Path):
    planned = plan_claims(select("ghost_batch"), tmp_path / "out", False, _configs(tmp_path))
    calls: list[list[str]] = []

    def probe(units, jobs: int, workers: int) -> list[Costs]:
        calls.append([unit.runs[0].run_id for unit, _ in units])
        return [Costs(fixed_s=1.0, step_ms=10.0, evaluation_s=0.5, compile_s=0.5, startup_s=2.0,
                      source="probe") for _ in units]  # fmt: skip

    cache = ProbeCache(probe)
    parts = [(claim.id, ablation) for claim, ablation in planned * 2]
    found = estimate_suite(parts, tmp_path / "out", jobs=1, probe=cache)
    # An ablation is probed once (its first unit: a run alone, on TensorFlow); the second claim
    # trains the same network on the same data, so it reuses that probe.
    assert cache.probes == len(calls) == 1 and len(calls[0]) == 1
    assert [f.runs for f in found] == [4, 4]
    # Each run: 1 s fixed + 6 steps × 10 ms + (2 points + test) × 0.5 s = 2.56 s; 4 runs
    # one after another at --jobs 1, plus one worker start-up of 2 s and the compilation of
    # the two arms' programs (0.5 s each).
    assert found[0].estimate.seconds == pytest.approx(4 * 2.56 + 2.0 + 2 * 0.5)
    assert total_seconds(found) == pytest.approx(2 * (4 * 2.56 + 2.0 + 2 * 0.5))
    assert unestimated(found) == 0
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_estimate_times_a_real_probe_and_writes_nothing(tmp_path: Path):
    configs, out = _configs(tmp_path), tmp_path / "claims"
    before = files_under(tmp_path)
    result = runner.invoke(app, ["claims", "run", "--estimate", "--out", str(out), "--only",
                                 "ghost_batch", "--configs", str(configs), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "estimated runtime at --jobs 2" in text
    assert "ghost_batch: estimated runtime ≈" in text and "from a probe of" in text
    assert "estimated total ≈" in text and "for 4 runs at --jobs 2" in text
    assert not out.exists()
    assert files_under(tmp_path) == before


@pytest.mark.slow
def test_finished_runs_are_not_counted_again(tmp_path: Path):
    configs, out = _configs(tmp_path), tmp_path / "claims"
    command = ["claims", "run", "--out", str(out), "--only", "ghost_batch", "--configs",
               str(configs), "--jobs", "1", "--quiet"]  # fmt: skip
    assert runner.invoke(app, command).exit_code == 0
    shutil.rmtree(sorted((out / "ghost_batch" / "runs").iterdir())[0])  # one run to train again
    result = runner.invoke(app, [*command, "--estimate"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "for 1 run at --jobs 1" in text  # the three finished runs time the fourth
    assert "finished run in" in text and "from a probe" not in text, text


def test_settings_that_cost_nothing_share_a_probe_and_batch_size_does_not():
    """Two networks that differ in initializer, activation or BN momentum, epsilon or placement
    do the same arithmetic; a batch size or a dropout layer changes it."""
    from bnbench.ablate.estimate import cost_key

    base = {"backend": "tensorflow", "dataset": {"name": "cifar10"},
            "training": {"batch_size": 128, "learning_rate": 0.1},
            "model": {"activation": "relu", "initializer": "he_normal",
                      "norm": {"kind": "batch", "momentum": 0.99, "placement": "before_activation"},
                      "blocks": [{"type": "conv2d", "filters": 32,
                                  "initializer": "zeros"}]}}  # fmt: skip
    alike = {**base, "training": {"batch_size": 128, "learning_rate": 1.0},
             "model": {**base["model"], "activation": "sigmoid", "initializer": "glorot_uniform",
                       "norm": {"kind": "batch", "momentum": 0.9, "epsilon": 0.1,
                                "placement": "after_activation"},
                       "blocks": [{"type": "conv2d", "filters": 32}]}}  # fmt: skip
    assert cost_key(alike) == cost_key(base)
    for other in ({**base, "training": {"batch_size": 2}},
                  {**base, "model": {**base["model"], "norm": {"kind": "none"}}},
                  {**base, "model": {**base["model"],
                                     "blocks": [{"type": "conv2d", "filters": 32,
                                                 "dropout": 0.2}]}}):  # fmt: skip
        assert cost_key(other) != cost_key(base)


def test_units_alike_in_cost_are_probed_once_in_a_call():
    """The probe is asked for each costly network once, even when one call brings several
    units of it."""
    from bnbench.ablate.groups import Unit

    calls: list[int] = []

    def probe(units, jobs: int, workers: int) -> list[Costs]:
        calls.append(len(units))
        return [Costs(fixed_s=1.0, step_ms=1.0, evaluation_s=0.1, compile_s=0.0, startup_s=1.0,
                      source="probe") for _ in units]  # fmt: skip

    planned = plan_claims(select("init_scale"), Path("unused"), True)
    (_, ablation), = planned
    kind = ablation.runs[0].spec.model.norm.kind
    scales = {run.spec.model.model_dump_json(): run for run in ablation.runs
              if run.spec.model.norm.kind == kind}  # one run per initialization scale
    assert len(scales) >= 3
    units = [Unit((run,), "alone") for run in scales.values()]
    cache = ProbeCache(probe)
    found = cache([(unit, 10) for unit in units], 1, 1)
    assert calls == [1] and cache.probes == 1 and len(found) == len(units)
