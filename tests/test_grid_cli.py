"""`plan` and `ablate` on the command line: --set, the resume command, failed runs of an earlier
invocation, and data that cannot be had, found before any worker starts."""

from __future__ import annotations

import copy
import shlex
import urllib.error
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.cli.grid import _ablate_command
from bnbench.config.ablation import load_ablation
from bnbench.results import rundir
from tests.support.specs import GRID_ABLATION, TINY_SPEC, files_under

runner = CliRunner()

ABLATION = GRID_ABLATION


@pytest.fixture
def ablation_file(write_spec):
    def write(ablation: dict = ABLATION, spec: dict = TINY_SPEC) -> Path:
        write_spec(spec, "spec.yaml")
        return write_spec(ablation, "ablation.yaml")

    return write


def _plan(path: Path, *args: str):
    return runner.invoke(app, ["plan", str(path), *args])


# --- --set ----------------------------------------------------------------------------------


def test_set_reaches_every_run_and_changes_the_run_ids(ablation_file):
    path = ablation_file()
    plain = load_ablation(path)
    changed = load_ablation(path, ["training.steps=20", "model.blocks.0.units=8"])
    assert {r.spec.training.steps for r in changed.runs} == {20}
    assert {r.spec.model.blocks[0].units for r in changed.runs} == {8}  # type: ignore[union-attr]
    assert not {r.run_id for r in plain.runs} & {r.run_id for r in changed.runs}
    assert changed.resolved["set"] == {"training.steps": 20, "model.blocks.0.units": 8}
    assert list(changed.resolved).index("set") == list(changed.resolved).index("overrides") + 1
    assert "set" not in plain.resolved  # trees written without --set still match
    # The arms and the grid are applied after --set.
    assert {r.arm: r.spec.model.norm.kind for r in changed.runs} == {"no_bn": "none", "bn": "batch"}


def test_set_replaces_the_files_overrides_and_the_other_length_unit(ablation_file):
    runs = load_ablation(ablation_file(), ["training.epochs=2"]).runs
    assert {(r.spec.training.epochs, r.spec.training.steps) for r in runs} == {(2.0, None)}


def test_plan_shows_the_overridden_value(ablation_file):
    result = _plan(ablation_file(), "--set", "training.steps=20")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "applied to every run after the overrides, before arms and grid: " in text
    assert "--set training.steps=20" in text


def test_a_typo_in_a_set_key_is_refused_with_a_suggestion(ablation_file, tmp_path):
    path = ablation_file()
    out = tmp_path / "r"
    for command in (
        ["plan", str(path), "--out", str(out)],
        ["ablate", str(path), "--out", str(out), "-q"],
    ):
        result = runner.invoke(app, [*command, "--set", "training.stepz=5"])
        assert result.exit_code == 2, result.output
        assert "--set training.stepz=5" in result.output
        assert "did you mean 'steps'?" in result.output
        assert not out.exists()


@pytest.mark.parametrize(
    ("assignment", "fragment"),
    [
        ("training.steps", "--set expects KEY=VALUE"),
        ("training.steps=-3", "--set training.steps=-3: arm 'no_bn'"),
        ("training.steps=many", "--set training.steps=many"),
        ("seed=3", "gives every run its seed"),
        ("name=x", "gives every run its seed (seeds or repeats) and its name"),
    ],
)
def test_bad_set_values_point_at_the_option(ablation_file, tmp_path, assignment, fragment):
    out = tmp_path / "r"
    result = runner.invoke(app, ["ablate", str(ablation_file()), "--out", str(out), "-q",
                                 "--set", assignment])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("assignment", "fragment"),
    [
        ("training.learning_rate=0.5", "the grid sets training.learning_rate, which overrides it"),
        ("model.norm.kind=group", "arm 'no_bn' sets model.norm.kind, which overrides it"),
        ("model.norm={kind: layer}", "sets model.norm.kind, which overrides part of it"),
        ("model={activation: tanh}", "sets model.norm.kind, which overrides part of it"),
    ],
)
def test_a_set_that_an_arm_or_the_grid_undoes_is_refused(ablation_file, tmp_path, assignment,
                                                         fragment):  # fmt: skip
    out = tmp_path / "r"
    for command in ("plan", "ablate"):
        result = runner.invoke(app, [command, str(ablation_file()), "--out", str(out), "--set",
                                     assignment])  # fmt: skip
        assert result.exit_code == 2, result.output
        assert fragment in result.output and "applied after --set" in result.output
        assert not out.exists()


def test_a_set_that_the_other_length_unit_clears_is_refused(ablation_file):
    ablation = copy.deepcopy(ABLATION)
    ablation["arms"]["bn"]["training.epochs"] = 2
    result = _plan(ablation_file(ablation), "--set", "training.steps=20")
    assert result.exit_code == 2, result.output
    assert "arm 'bn' sets training.epochs, which clears training.steps" in result.output
    # A key below an arm's key is undone too.
    ablation = copy.deepcopy(ABLATION)
    ablation["arms"]["bn"] = {"model.norm": {"kind": "batch"}}
    ablation["arms"]["no_bn"] = {"model.norm": {"kind": "none"}}
    result = _plan(ablation_file(ablation), "--set", "model.norm.epsilon=0.01")
    assert result.exit_code == 2 and "sets model.norm, which replaces it" in result.output


def test_the_resume_command_keeps_the_set_options():
    command = _ablate_command(Path("a b.yaml"), Path("r"), 2, False, None, False, True, True, [],
                              ["training.steps=5", "model.norm={kind: group}"])  # fmt: skip
    words = shlex.split(command)
    assert words[:5] == ["bnbench", "ablate", "a b.yaml", "--out", "r"]
    assert words[5:9] == ["--set", "training.steps=5", "--set", "model.norm={kind: group}"]
    assert "--quiet" in words and words[words.index("--jobs") + 1] == "2"


def test_ablate_records_set_in_ablation_yaml_and_refuses_to_mix(ablation_file, tmp_path):
    one_run = {**ABLATION, "arms": {"bn": {"model.norm.kind": "batch"}}, "grid": {}}
    one_run.pop("grid")
    path = ablation_file(one_run)
    out = tmp_path / "r"
    given = ["--set", "training.steps=6", "--set", "training.eval_every=3"]
    command = ["ablate", str(path), "--out", str(out), "-q", "--no-plots"]
    result = runner.invoke(app, [*command, *given])
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((out / "ablation.yaml").read_text())
    assert recorded["set"] == {"training.steps": 6, "training.eval_every": 3}
    (run,) = (out / "runs").iterdir()
    assert rundir.read_summary(run).total_steps == 6  # type: ignore[union-attr]

    before = files_under(out)
    refused = runner.invoke(app, command)  # the same ablation without --set
    assert refused.exit_code == 2
    message = " ".join(refused.output.split())
    assert (
        "holds this ablation run with --set training.steps=6 --set training.eval_every=3" in message
    )
    assert "this command gives no --set" in message
    assert "To resume it, give --set training.steps=6 --set training.eval_every=3" in message
    assert files_under(out) == before
    again = runner.invoke(app, [*command, *given])
    assert again.exit_code == 0, again.output
    assert "1 already finished" in again.output


def test_a_tree_without_set_is_not_resumed_with_one(ablation_file, tmp_path):
    path = ablation_file()
    out = tmp_path / "r"
    out.mkdir()
    (out / "ablation.yaml").write_text(
        yaml.safe_dump(load_ablation(path).resolved, sort_keys=False)
    )
    result = runner.invoke(app, ["ablate", str(path), "--out", str(out), "-q", "--set",
                                 "training.steps=9"])  # fmt: skip
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert (
        "holds this ablation run with no --set, and this command gives --set training.steps=9"
        in message
    )
    assert "To resume it, leave out --set" in message
    assert [p.name for p in out.iterdir()] == ["ablation.yaml"]


# --- failed runs of an earlier invocation -----------------------------------------------------


def test_rerunning_a_tree_with_failed_runs_says_they_are_skipped(ablation_file, tmp_path):
    path = ablation_file()
    ablation = load_ablation(path)
    out = tmp_path / "r"
    out.mkdir()
    (out / "ablation.yaml").write_text(yaml.safe_dump(ablation.resolved, sort_keys=False))
    for run in ablation.runs:  # as a earlier invocation that failed every run leaves them
        try:
            raise ValueError("broken.npz: not a .npz archive")
        except ValueError as err:
            rundir.record_failure(out / "runs" / run.run_id, err, brief=True)
    result = runner.invoke(app, ["ablate", str(path), "--out", str(out), "-q", "--no-plots"])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "4 failed earlier (skipped; --retry-failed trains them)" in message
    assert ("4 runs failed earlier and are skipped; rerun with --retry-failed to train them "
            "again") in message  # fmt: skip
    assert message.count("not a .npz archive") == 4
    for run in ablation.runs:  # untouched
        assert rundir.run_state(out / "runs" / run.run_id) == "failed"


# --- data that cannot be had ----------------------------------------------------------------


@pytest.fixture
def offline_keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras cache, and downloads that fail as without network."""
    import keras.src.backend.config as keras_config
    import keras.src.utils.file_utils as file_utils

    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    attempts: list[str] = []

    def refuse(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(file_utils, "urlretrieve", refuse)
    return home


def test_missing_data_is_found_once_before_any_run_starts(ablation_file, tmp_path,
                                                          offline_keras_home):  # fmt: skip
    spec = copy.deepcopy(TINY_SPEC)
    spec["dataset"] = {"name": "mnist", "subset": 100, "flatten": True}
    path = ablation_file(spec=spec)
    out = tmp_path / "r"
    result = runner.invoke(app, ["ablate", str(path), "--out", str(out), "-q", "--jobs", "2"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert message.count("error:") == 1
    assert "dataset 'mnist': not in the Keras cache and the download failed" in message
    assert "all 4 runs to train need it; none was started" in message
    assert not out.exists()


def test_missing_data_of_one_arm_names_how_many_runs_need_it(ablation_file, tmp_path,
                                                             offline_keras_home):  # fmt: skip
    ablation = copy.deepcopy(ABLATION)
    ablation["arms"]["bn"]["dataset.name"] = "fashion_mnist"
    out = tmp_path / "r"
    result = runner.invoke(app, ["ablate", str(ablation_file(ablation)), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert "2 of the 4 runs to train need it" in " ".join(result.output.split())
    assert not out.exists()


def test_plan_and_ablate_warn_when_the_best_cell_would_be_chosen_on_test(ablation_file, tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["dataset"]["validation_split"] = "test"
    warning = "best grid cell will be chosen on the test split"
    assert warning not in " ".join(_plan(ablation_file()).output.split())
    path = ablation_file(spec=spec)  # the same files, now validating on test
    assert warning in " ".join(_plan(path).output.split())
    out = tmp_path / "r"
    result = runner.invoke(app, ["ablate", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert warning in " ".join(result.output.split())
