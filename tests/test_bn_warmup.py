"""A short BN run says why its test score is low: the moving statistics have not warmed up."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.results.bn_warmup import warmup_note
from bnbench.results.rundir import RunSummary

FINAL = {"test_accuracy": 0.24, "test_train_mode_accuracy": 0.97, "test_loss": 3.0,
         "test_train_mode_loss": 0.1}  # fmt: skip


def _summary(**changes) -> RunSummary:
    fields = dict(run_id="r", status="completed", metric="accuracy", bn_statistics="moving",
                  steps_done=81, final=FINAL)  # fmt: skip
    return RunSummary(**{**fields, **changes})


def test_the_note_names_both_numbers_and_the_setting():
    note = warmup_note(_summary())
    assert note is not None
    assert "test accuracy is 0.24 with the BN moving statistics and 0.97 in training" in note
    assert "in 81 steps" in note and "evaluation.bn_statistics: recalibrated" in note


@pytest.mark.parametrize(
    "changes",
    [
        {"bn_statistics": "recalibrated"},  # already re-estimated
        {"bn_statistics": None},  # no BN layer
        {"status": "diverged"},
        {"final": {**FINAL, "test_accuracy": 0.9}},  # a gap of 0.07: noise, not warm-up
        {"final": {"test_accuracy": 0.24}},  # no training-mode evaluation on record
    ],
)
def test_no_note_without_a_large_gap_under_moving_statistics(changes):
    assert warmup_note(_summary(**changes)) is None


def test_a_loss_only_run_compares_losses():
    final = {"test_loss": 3.0, "test_train_mode_loss": 0.5}
    assert "test loss is 3.00" in (warmup_note(_summary(metric=None, final=final)) or "")
    final = {"test_loss": 0.6, "test_train_mode_loss": 0.5}
    assert warmup_note(_summary(metric=None, final=final)) is None


@pytest.mark.slow
def test_two_epochs_of_cnn_digits_print_the_note(tmp_path):
    args = ["train", "configs/cnn_digits.yaml", "--set", "training.epochs=2", "-q"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "the moving statistics have not warmed up" in text
    assert "evaluation.bn_statistics: recalibrated" in text
