"""The command line as a user meets it: help, version, the cheap commands, bad directories."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from bnbench import __version__
from bnbench.cli import app
from tests.support.specs import files_under

COMMANDS = [
    "validate", "train", "datasets", "plan", "ablate", "status", "report", "plot", "landscape",
    "export", "claims",
]  # fmt: skip
runner = CliRunner()


def test_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in COMMANDS:
        assert re.search(rf"\b{command}\b", result.output), command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"bnbench {__version__}"


def test_datasets_lists_every_registered_dataset():
    from bnbench.config.registries import DATASET_NAMES

    result = runner.invoke(app, ["datasets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in DATASET_NAMES:
        assert name in result.output


def test_landscape_writes_its_figure(tmp_path):
    out = tmp_path / "landscape.png"
    result = runner.invoke(app, ["landscape", "--out", str(out), "--steps", "20"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG")
    assert "condition number" in result.output


def test_landscape_refuses_an_unknown_format(tmp_path):
    result = runner.invoke(app, ["landscape", "--out", str(tmp_path / "x.bmp")])
    assert result.exit_code == 2
    assert "unknown figure format 'bmp'" in result.output
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("command", ["report", "plot"])
def test_report_and_plot_refuse_a_missing_directory(command, tmp_path):
    result = runner.invoke(app, [command, str(tmp_path / "nowhere")])
    assert result.exit_code == 2, result.output
    assert "nowhere" in result.output and "Traceback" not in result.output
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("command", ["report", "plot"])
def test_report_and_plot_refuse_a_folder_that_is_not_a_results_tree(command, tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    result = runner.invoke(app, [command, str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert [p.name for p in files_under(tmp_path)] == ["notes.txt"]


def test_unknown_backend_and_format_are_refused_with_the_choices(tmp_path):
    result = runner.invoke(app, ["validate", "spec.yaml", "--backend", "theano"])
    assert result.exit_code == 2
    assert "auto" in result.output and "jax" in result.output
    result = runner.invoke(app, ["plot", str(tmp_path), "--format", "bmp"])
    assert result.exit_code == 2
    assert "png" in result.output and "svg" in result.output
