"""Training runs end to end on tiny data: directory contents, divergence, interruption."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.identity import config_hash
from bnbench.config.schema import RunSpec, TrainingSpec
from bnbench.results import rundir
from bnbench.train.loop import train
from bnbench.train.schedule import Schedule, batch_order

runner = CliRunner()


def _history(run_dir):
    with (run_dir / "history.csv").open() as f:
        return list(csv.DictReader(f))


def test_plan_converts_epochs_to_steps_once():
    schedule = Schedule.from_spec(TrainingSpec(epochs=2, batch_size=10, eval_every=3), num_train=25)
    assert schedule.total_steps == 5 and schedule.steps_per_epoch == 3
    assert schedule.eval_steps == (3, 5)
    assert Schedule.from_spec(TrainingSpec(steps=7, batch_size=4), num_train=8).eval_steps == (
        2,
        4,
        6,
        7,
    )


def test_batch_order_is_a_function_of_the_seed():
    a = batch_order(10, 7, 3, seed=1)
    assert len(a) == 21 and sorted(a[:10]) == list(range(10))
    assert (a == batch_order(10, 7, 3, seed=1)).all()
    assert not (a == batch_order(10, 7, 3, seed=2)).all()


def test_train_writes_a_complete_run_directory(tiny_spec, write_spec, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(tiny_spec)), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "config.yaml",
        "history.csv",
        rundir.SUMMARY,
        "model.keras",
    }
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["training"]["momentum"] == 0.0  # defaults filled in
    assert RunSpec.model_validate(config).model_dump(mode="json") == config
    rows = _history(out)
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert list(rows[0]) == [
        "step",
        "epoch",
        "examples_seen",
        "wall_seconds",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_train_mode_loss",
        "val_train_mode_accuracy",
    ]
    assert int(rows[-1]["examples_seen"]) == 12 * 16
    summary = json.loads((out / rundir.SUMMARY).read_text())
    assert summary["status"] == "completed"
    assert summary["params"] == {
        "trainable": 64 * 16 + 32 + 16 * 16 + 32 + 16 * 10 + 10,
        "non_trainable": 64,
    }
    assert summary["backend"] == "tensorflow"
    assert summary["config_hash"] == config_hash(config)
    assert {"test_loss", "test_accuracy", "val_accuracy"} <= set(summary["final"])
    assert summary["versions"]["keras"].startswith("3.")
    assert rundir.run_state(out) == "completed"


def test_digits_learns_above_chance_with_and_without_bn(tiny_spec, tmp_path):
    tiny_spec["dataset"]["subset"] = 600
    tiny_spec["training"].update(steps=120, eval_every=40, learning_rate=0.3)
    tiny_spec["training"].update(target_metric="val_accuracy", target_value=0.5)
    accuracies = {}
    for kind in ("batch", "none"):
        tiny_spec["model"]["norm"]["kind"] = kind
        result = train(RunSpec.model_validate(tiny_spec), tmp_path / kind, save_model=False)
        assert result.status == "completed"
        accuracies[kind] = result.summary.final["test_accuracy"]
        assert rundir.run_state(tmp_path / kind) == "completed"
    assert accuracies["batch"] > 0.5, accuracies  # chance is 0.1
    assert accuracies["none"] > 0.2, accuracies


def test_absurd_learning_rate_is_a_diverged_result(tiny_spec, write_spec, tmp_path):
    tiny_spec["model"]["norm"]["kind"] = "none"
    tiny_spec["training"].update(learning_rate=1e9, steps=40, eval_every=10)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(tiny_spec)), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "diverged" in result.output
    summary = json.loads((out / rundir.SUMMARY).read_text())
    assert summary["status"] == "diverged"
    assert 1 <= summary["diverged_step"] <= 40
    assert rundir.run_state(out) == "diverged"
    assert (out / "history.csv").exists() and (out / "config.yaml").exists()


def test_target_step_is_recorded(tiny_spec, tmp_path):
    tiny_spec["training"].update(target_metric="train_loss", target_value=1e6)
    result = train(RunSpec.model_validate(tiny_spec), tmp_path / "r", save_model=False)
    assert result.summary.target.step == 4
    assert result.summary.target.seconds > 0


def test_ctrl_c_leaves_a_directory_marked_incomplete(tiny_spec, tmp_path):
    def interrupt(step, total, loss):
        raise KeyboardInterrupt

    tiny_spec["training"]["steps"] = 400
    with pytest.raises(KeyboardInterrupt):
        train(RunSpec.model_validate(tiny_spec), tmp_path / "r", progress=interrupt)
    assert (tmp_path / "r" / "INCOMPLETE").exists()
    assert rundir.run_state(tmp_path / "r") == "incomplete"


def test_finished_runs_are_not_overwritten_silently(tiny_spec, write_spec, tmp_path):
    path, out = write_spec(tiny_spec), tmp_path / "run"
    assert runner.invoke(app, ["train", str(path), "--out", str(out), "-q"]).exit_code == 0
    before = (out / rundir.SUMMARY).read_text()
    again = runner.invoke(app, ["train", str(path), "--out", str(out), "-q"])
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (out / rundir.SUMMARY).read_text() == before
    forced = runner.invoke(
        app, ["train", str(path), "--out", str(out), "-q", "--overwrite", "--no-save-model"]
    )
    assert forced.exit_code == 0 and not (out / "model.keras").exists()


def test_unknown_target_metric_is_refused_before_writing(tiny_spec, write_spec, tmp_path):
    tiny_spec["training"].update(target_metric="val_acc", target_value=0.9)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(tiny_spec)), "--out", str(out), "-q"])
    assert result.exit_code == 2 and "val_accuracy" in result.output
    assert not out.exists()


def test_help_does_not_import_keras():
    import subprocess
    import sys

    code = (
        "import sys; from bnbench.cli import app; from typer.testing import CliRunner; "
        "CliRunner().invoke(app, ['--help']); CliRunner().invoke(app, ['train', '--help']); "
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_datasets_command_lists_registry():
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0
    for name in ("mnist", "digits", "two_scale", "npz"):
        assert name in result.output


def test_step_monitor_finds_the_first_divergent_step_even_out_of_order():
    from bnbench.train.monitor import StepMonitor

    seen = []
    monitor = StepMonitor(total=20, hook=lambda step, total, loss: seen.append(step))
    monitor.chunk_start = 10
    nan = float("nan")
    calls = [(0, 2.0), (2, nan), (1, nan), (3, nan)]  # a helper thread may deliver late
    stops = [monitor.on_batch_end(batch, {"loss": loss}) for batch, loss in calls]
    assert stops == [False, True, True, True]
    assert monitor.diverged_at == 12 and monitor.step == 14
    assert seen == [11]


def test_diagnostics_do_not_change_training(tiny_spec, tmp_path):
    tiny_spec["model"]["blocks"][0]["dropout"] = 0.2  # dropout draws from a seed state too
    plain = train(RunSpec.model_validate(tiny_spec), tmp_path / "plain", save_model=False)
    tiny_spec["diagnostics"] = {
        "activation_percentiles": {"every": 2},
        "bn_statistics": True,
        "train_inference_gap": True,
        "gradient_norms": True,
        "probe_size": 32,
    }
    probed = train(RunSpec.model_validate(tiny_spec), tmp_path / "probed", save_model=False)
    assert len(plain.history) == len(probed.history)
    for a, b in zip(plain.history, probed.history, strict=True):
        # Identical weights give bit-identical evaluations; the train means are pooled over
        # the extra chunks that the probing steps create, so they agree to rounding.
        assert (a.values["val_loss"], a.values["val_accuracy"]) == (
            b.values["val_loss"],
            b.values["val_accuracy"],
        )
        assert a.values["train_loss"] == pytest.approx(b.values["train_loss"], rel=1e-6)
        assert a.values["train_accuracy"] == pytest.approx(b.values["train_accuracy"], rel=1e-6)
    assert plain.summary.final["test_loss"] == probed.summary.final["test_loss"]
    written = sorted(p.name for p in (tmp_path / "probed" / "diagnostics").iterdir())
    assert written == [
        "activation_percentiles.csv",
        "gradient_norms.csv",
        "moving_statistics.csv",
        "train_inference_gap.csv",
    ]
    steps = [int(line.split(",")[0]) for line in
             (tmp_path / "probed" / "diagnostics" / "activation_percentiles.csv")
             .read_text().splitlines()[1:]]  # fmt: skip
    assert steps == list(range(0, 13, 2))


def test_landscape_command_writes_the_figure(tmp_path):
    out = tmp_path / "landscape.png"
    result = runner.invoke(app, ["landscape", "--out", str(out), "--steps", "30"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000
    assert "condition number" in result.output
    bad = runner.invoke(app, ["landscape", "--out", str(tmp_path / "x.png"), "--steps", "0"])
    assert bad.exit_code == 2 and not (tmp_path / "x.png").exists()


def test_unknown_diagnostics_block_is_refused_before_writing(tiny_spec, write_spec, tmp_path):
    tiny_spec["diagnostics"] = {"activation_percentiles": {"layers": ["block9"]}}
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(tiny_spec)), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert "diagnostics" in result.output and "block9" in result.output
    assert not out.exists()


def test_a_run_that_raises_is_recorded_as_failed(tiny_spec, write_spec, tmp_path, monkeypatch):
    import bnbench.train.feeding

    def broken(self, x, y, callbacks):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(bnbench.train.feeding.Feeder, "fit", broken)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(tiny_spec)), "--out", str(out), "-q"])
    assert result.exit_code == 1
    assert "run failed: RuntimeError: simulated crash" in result.output
    assert rundir.run_state(out) == "failed"
    assert "simulated crash" in (out / "traceback.txt").read_text()
