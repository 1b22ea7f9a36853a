"""Ablation specs: expansion, pairing, exclusions, run ids, shards, budget warnings, and every
bad input."""

from __future__ import annotations

import copy

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.ablate.runner import parse_shard, shard_runs
from bnbench.cli import app
from bnbench.config.ablation import AblationSpec, expand, load_ablation
from bnbench.config.budget import budget_warnings
from tests.support.specs import TINY_SPEC, files_under

runner = CliRunner()

ABLATION = {
    "name": "abl",
    "base": "spec.yaml",
    "overrides": {"training.steps": 8},
    "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
    "grid": {"training.learning_rate": [0.01, 0.1, 1.0]},
    "seeds": [0, 1],
}


@pytest.fixture
def ablation_file(write_spec):
    def write(ablation: dict | str) -> object:
        write_spec(TINY_SPEC, "spec.yaml")
        return write_spec(ablation, "ablation.yaml")

    return write


def test_expansion_counts_and_pairing(ablation_file):
    ablation = load_ablation(ablation_file(ABLATION))
    assert len(ablation.runs) == 2 * 3 * 2
    assert [r.index for r in ablation.runs] == list(range(12))
    by_arm = {arm: [(r.cell, r.seed) for r in ablation.runs if r.arm == arm]
              for arm in ("no_bn", "bn")}  # fmt: skip
    assert by_arm["no_bn"] == by_arm["bn"]  # same cells and seeds in every arm
    for run in ablation.runs:
        assert run.spec.training.steps == 8  # overrides reach every run
        assert run.spec.training.learning_rate == run.grid["training.learning_rate"]
        assert run.spec.model.norm.kind == ("none" if run.arm == "no_bn" else "batch")
        assert run.spec.name == run.arm
    first = [r for r in ablation.runs if r.seed == 0 and r.cell == ablation.runs[0].cell]
    # Paired runs differ only in what the arms name.
    a, b = (r.spec.model_dump(exclude={"name"}) for r in first)
    a["model"]["norm"]["kind"] = b["model"]["norm"]["kind"]
    assert a == b


def test_run_ids_are_deterministic_and_unique(ablation_file):
    path = ablation_file(ABLATION)
    ids = [r.run_id for r in load_ablation(path).runs]
    assert ids == [r.run_id for r in load_ablation(path).runs]
    assert len(set(ids)) == len(ids)
    assert ids[0].startswith("no_bn-learning_rate=0.01-s0-")
    changed = copy.deepcopy(ABLATION)
    changed["overrides"]["training.steps"] = 9
    assert not set(ids) & {r.run_id for r in load_ablation(ablation_file(changed)).runs}


def test_exclude_and_repeats(ablation_file):
    spec = copy.deepcopy(ABLATION)
    spec["exclude"] = [{"arm": "no_bn", "training.learning_rate": 1.0}]
    spec.pop("seeds")
    spec["repeats"] = 3
    runs = load_ablation(ablation_file(spec)).runs
    assert len(runs) == 2 * 3 * 3 - 3
    assert not [r for r in runs if r.arm == "no_bn" and r.grid["training.learning_rate"] == 1.0]
    assert sorted({r.seed for r in runs}) == [0, 1, 2]


def test_inline_base_and_default_reference():
    spec = AblationSpec.model_validate(
        {"name": "x", "base": TINY_SPEC, "arms": {"a": {}, "b": {"model.norm.kind": "layer"}}}
    )
    assert spec.reference_arm == "a"
    assert len(expand(spec, TINY_SPEC)) == 2


def test_shards_partition_the_grid_exactly_once(ablation_file):
    runs = load_ablation(ablation_file(ABLATION)).runs
    for n in (1, 2, 3, 5):
        parts = [shard_runs(runs, (i, n)) for i in range(1, n + 1)]
        ids = [r.run_id for part in parts for r in part]
        assert sorted(ids) == sorted(r.run_id for r in runs)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "x", "1-2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


BAD = [
    ({"armz": {}}, "armz", "did you mean 'arms'"),
    ({"arms": {"bn": {"model.norm.knd": "batch"}}}, "model.norm.knd", "did you mean 'kind'"),
    ({"grid": {"training.learning_rat": [0.1]}}, "training.learning_rat", "learning_rate"),
    ({"arms": {"bn": {"model.norm.momentum": "high"}}}, "model.norm.momentum", "'high'"),
    ({"grid": {"training.batch_size": [16, 0]}}, "training.batch_size=0", "greater than"),
    ({"grid": {}}, "grid is empty", ""),
    ({"grid": {"training.learning_rate": []}}, "no values", ""),
    ({"seeds": [0, 0]}, "distinct", ""),
    ({"reference": "nope"}, "reference 'nope' is not an arm", ""),
    ({"arms": {"a": {}, "b": {}}}, "identical", "arms must differ"),
]


@pytest.mark.parametrize(("change", "fragment", "more"), BAD)
def test_bad_ablations_are_refused_before_anything_runs(ablation_file, tmp_path, change,
                                                        fragment, more):  # fmt: skip
    spec = {**copy.deepcopy(ABLATION), **change}
    path = ablation_file(spec)
    out = tmp_path / "results"
    for command in (["plan", str(path)], ["ablate", str(path), "--out", str(out), "-q"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert fragment in result.output and more in result.output, result.output
        assert "Traceback" not in result.output
    assert files_under(out) == []


def test_duplicate_arm_names_are_refused(ablation_file, tmp_path):
    text = yaml.safe_dump({k: v for k, v in ABLATION.items() if k != "arms"})
    text += "arms:\n  bn: {model.norm.kind: batch}\n  bn: {model.norm.kind: layer}\n"
    result = runner.invoke(app, ["ablate", str(ablation_file(text)), "--out",
                                 str(tmp_path / "r"), "-q"])  # fmt: skip
    assert result.exit_code == 2
    assert "duplicate key 'arms.bn'" in result.output
    assert not (tmp_path / "r").exists()


def test_plan_prints_the_run_table(ablation_file):
    result = runner.invoke(app, ["plan", str(ablation_file(ABLATION))])
    assert result.exit_code == 0, result.output
    assert "12 runs = 2 arms × 3 grid cells × 2 seeds" in result.output
    assert "missing" in result.output


def test_arms_of_one_comparison_share_a_backend(ablation_file):
    spec = copy.deepcopy(ABLATION)
    spec["base"] = {
        **TINY_SPEC,
        "backend": "auto",
        "dataset": {**TINY_SPEC["dataset"], "flatten": False},
    }
    dense_first = [{"type": "flatten"}, {"type": "dense", "units": 8}]
    conv_first = [{"type": "conv2d", "filters": 2}, {"type": "flatten"},
                  {"type": "dense", "units": 8}]  # fmt: skip
    spec["arms"] = {"dense": {"model.blocks": dense_first}, "conv": {"model.blocks": conv_first}}
    runs = load_ablation(ablation_file(spec)).runs
    assert {r.spec.backend for r in runs} == {"jax"}  # the reference (first) arm's choice
    spec["mixed_backends"] = True
    mixed = load_ablation(ablation_file(spec)).runs
    assert {r.arm: r.spec.backend for r in mixed} == {"dense": "jax", "conv": "tensorflow"}


@pytest.mark.parametrize(
    ("arms", "fragment"),
    [
        ({"a": {"training.learning_rate": 0.5}}, "which the grid varies"),
        ({"a": {"seed": 5}}, "sets seed or name"),
    ],
)
def test_arms_may_not_set_what_the_grid_or_seeds_own(ablation_file, arms, fragment):
    result = runner.invoke(app, ["plan", str(ablation_file({**ABLATION, "arms": arms}))])
    assert result.exit_code == 2 and fragment in result.output


def _batch_grid(**overrides: object) -> dict:
    spec = copy.deepcopy(ABLATION)
    spec["overrides"] = {"training.epochs": 2, **overrides}  # replaces the base's steps
    spec["grid"] = {"training.batch_size": [2, 8, 32]}
    return spec


def test_budget_warnings_for_a_batch_size_grid_under_epochs(ablation_file):
    messages = budget_warnings(load_ablation(ablation_file(_batch_grid())))
    assert len(messages) == 2
    epochs, rate = messages
    assert "fixed epoch budget (training.epochs: 2)" in epochs
    assert "batch 2 takes about 16× the optimizer steps of batch 32" in epochs
    assert "training.steps" in epochs and "training.lr_scaling" in epochs
    assert "same learning rate (0.1)" in rate and "training.lr_scaling: linear" in rate


def test_budget_warnings_stay_quiet_when_the_budget_is_chosen(ablation_file):
    steps = _batch_grid(**{"training.steps": 8})  # replaces the epochs again
    scaled = {**steps["overrides"], "training.lr_scaling": "sqrt",
              "training.reference_batch_size": 8}  # fmt: skip
    assert budget_warnings(load_ablation(ablation_file({**steps, "overrides": scaled}))) == []
    # A learning rate swept at each batch size is tuned, not left unscaled.
    swept = {**steps, "grid": {**steps["grid"], "training.learning_rate": [0.01, 0.1]}}
    assert budget_warnings(load_ablation(ablation_file(swept))) == []
    (only,) = budget_warnings(load_ablation(ablation_file(steps)))
    assert "same learning rate" in only
    assert budget_warnings(load_ablation(ablation_file(ABLATION))) == []  # one batch size


def test_batch_sizes_in_arms_are_noticed_too(ablation_file):
    spec = _batch_grid()
    spec.pop("grid")
    spec["arms"] = {"small": {"training.batch_size": 4}, "large": {"training.batch_size": 16}}
    (epochs, _) = budget_warnings(load_ablation(ablation_file(spec)))
    assert "varies from 4 to 16" in epochs


def test_plan_prints_the_budget_warnings(ablation_file):
    result = runner.invoke(app, ["plan", str(ablation_file(_batch_grid()))])
    assert result.exit_code == 0, result.output
    assert result.output.count("warning:") == 2
    assert "training.lr_scaling" in result.output
