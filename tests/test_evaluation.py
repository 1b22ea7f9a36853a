"""Evaluation modes, the divergence rule and the stalled flag: what the numbers mean."""

from __future__ import annotations

import copy

import keras
import numpy as np
import pytest

from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.train.evaluation import Evaluator
from bnbench.train.loop import train
from bnbench.train.monitor import StepMonitor
from bnbench.train.prepare import prepare
from tests.support.specs import TINY_SPEC


def _spec(**evaluation) -> RunSpec:
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["blocks"][0]["dropout"] = 0.2  # dropout must stay off in every evaluation
    spec["evaluation"] = evaluation
    return RunSpec.model_validate(spec)


def test_evaluation_modes_never_change_training(tmp_path):
    """Training is bit-identical whatever is evaluated; both numbers are kept on record."""
    plain = train(_spec(train_mode_metrics=False), tmp_path / "plain", save_model=False)
    moving = train(_spec(), tmp_path / "moving", save_model=False)
    recal = train(_spec(bn_statistics="recalibrated"), tmp_path / "recal", save_model=False)
    for runs in zip(plain.history, moving.history, recal.history, strict=True):
        assert len({row.values["train_loss"] for row in runs}) == 1
        assert len({row.values["val_loss"] for row in runs[:2]}) == 1
        assert runs[2].values["val_moving_loss"] == runs[0].values["val_loss"]
    assert recal.summary.final["test_moving_loss"] == plain.summary.final["test_loss"]
    assert recal.summary.final["test_loss"] != plain.summary.final["test_loss"]
    assert recal.summary.bn_statistics == "recalibrated"
    assert moving.summary.bn_statistics == "moving"
    assert "val_train_mode_accuracy" in moving.history[0].values
    assert "val_train_mode_accuracy" not in plain.history[0].values


def _dense_bn_run():
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["blocks"] = [{"type": "dense", "units": 8}]
    spec["evaluation"] = {"bn_statistics": "recalibrated", "recalibration_batches": 3}
    prepared = prepare(RunSpec.model_validate(spec))
    prepared.model.fit(prepared.data.x_train[:64], prepared.data.y_train[:64], verbose=0)
    return prepared


def _by_hand(prepared, x):
    """Dense -> BN input, and what follows BN, in numpy."""
    model = prepared.model
    dense = model.get_layer("block1_dense")
    bn = model.get_layer("block1_norm")
    pre = x @ np.asarray(dense.kernel)

    def after_bn(mean, var):
        z = (pre - mean) / np.sqrt(var + bn.epsilon) * np.asarray(bn.gamma) + np.asarray(bn.beta)
        hidden = np.maximum(z, 0.0)
        head = model.get_layer("head")
        logits = hidden @ np.asarray(head.kernel) + np.asarray(head.bias)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return pre, after_bn


def test_recalibrated_statistics_are_the_mean_of_batch_statistics():
    prepared = _dense_bn_run()
    evaluator = Evaluator(prepared, lambda x, y: {})
    bn = prepared.model.get_layer("block1_norm")
    before = np.array(bn.moving_mean), np.array(bn.moving_variance)
    ((mean, var),) = evaluator.population_statistics()
    batch = prepared.schedule.batch_size
    x = prepared.data.x_train[prepared.order[: 3 * batch]].reshape(3, batch, -1)
    pre = np.stack([_by_hand(prepared, xb)[0] for xb in x])
    np.testing.assert_allclose(mean, pre.mean(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(var, pre.var(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    assert np.array_equal(bn.moving_mean, before[0]) and np.array_equal(
        bn.moving_variance, before[1]
    )


def test_train_mode_normalizes_each_batch_with_its_own_statistics():
    prepared = _dense_bn_run()
    evaluator = Evaluator(prepared, lambda x, y: {})
    batch = prepared.schedule.batch_size
    x, y = prepared.data.x_val, prepared.data.y_val
    usable = len(x) // batch * batch
    result = evaluator.train_mode(x, y)
    losses, hits = [], []
    for start in range(0, usable, batch):
        pre, after_bn = _by_hand(prepared, x[start : start + batch])
        p = after_bn(pre.mean(axis=0), pre.var(axis=0))
        yb = y[start : start + batch]
        losses.append(-np.log(p[np.arange(len(yb)), yb]).mean())
        hits.append((p.argmax(axis=1) == yb).mean())
    assert result["loss"] == pytest.approx(np.mean(losses), rel=1e-4)
    assert result["accuracy"] == pytest.approx(np.mean(hits))


def test_a_nan_blow_up_is_diverged_with_its_reason(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["norm"]["kind"] = "none"
    spec["training"].update(learning_rate=1e9, steps=40, eval_every=10)
    result = train(RunSpec.model_validate(spec), tmp_path / "r", save_model=False)
    assert result.status == "diverged" and result.summary.diverged_step is not None
    assert "non-finite" in (result.summary.diverged_reason or "")


def test_a_finite_loss_blow_up_is_diverged_not_completed(tmp_path):
    """A blown-up classifier need not reach NaN: Keras clips cross-entropy on some backends
    (a ReLU net at learning rate 10 sits at ~14.5 on JAX) and stays finite on others."""
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["norm"]["kind"] = "none"
    spec["training"].update(learning_rate=10.0, steps=40, eval_every=10)
    result = train(RunSpec.model_validate(spec), tmp_path / "r", save_model=False)
    summary = result.summary
    assert summary.status == "diverged", [row.values for row in result.history]
    assert summary.diverged_step == 10
    assert "above 3 × the initial" in (summary.diverged_reason or "")
    assert all(np.isfinite(row.values["train_loss"]) for row in result.history)
    assert summary.initial_loss == pytest.approx(np.log(10), rel=0.2)
    assert rundir.run_state(tmp_path / "r") == "diverged"
    spec["training"]["divergence_factor"] = 1e6  # the factor is the user's, and recorded
    lenient = train(RunSpec.model_validate(spec), tmp_path / "lenient", save_model=False)
    assert lenient.status == "completed" and lenient.summary.divergence_factor == 1e6


def test_stalled_marks_a_completed_run_that_never_left_chance(tmp_path):
    spec = copy.deepcopy(TINY_SPEC)
    spec["training"].update(learning_rate=1e-6, steps=4, eval_every=4)
    stalled = train(RunSpec.model_validate(spec), tmp_path / "stalled", save_model=False)
    assert stalled.status == "completed" and stalled.summary.stalled is True
    assert 0.1 <= (stalled.summary.chance_accuracy or 0) < 0.3
    spec["training"].update(learning_rate=0.5, steps=60, eval_every=20)
    learned = train(RunSpec.model_validate(spec), tmp_path / "learned", save_model=False)
    assert learned.summary.stalled is False


def test_step_time_leaves_out_each_chunks_first_step():
    monitor = StepMonitor(total=10, hook=None)
    monitor.begin_chunk(0, 3)
    assert monitor.steady() == (0, 0.0)
    monitor.on_batch_end(0, {"loss": 1.0})
    assert monitor.steady() == (0, 0.0)  # one step: nothing steady yet
    monitor.on_batch_end(2, {"loss": 1.0})
    monitor.on_batch_end(1, {"loss": 1.0})  # out of order, as async callbacks may arrive
    steps, seconds = monitor.steady()
    assert steps == 2 and seconds >= 0.0
    monitor.begin_chunk(3, 10)
    assert monitor.steady() == (0, 0.0)


def test_epoch_column_counts_passes_over_the_training_set():
    from bnbench.config.schema import TrainingSpec
    from bnbench.train.schedule import Schedule

    schedule = Schedule.from_spec(TrainingSpec(epochs=8, batch_size=32), num_train=1617)
    assert schedule.total_steps == 405 and schedule.steps_per_epoch == 51
    assert schedule.epoch(schedule.total_steps) == pytest.approx(8.0, abs=0.02)
    assert schedule.epoch(51) == pytest.approx(51 * 32 / 1617)


def test_evaluation_keys_are_validated(write_spec):
    from typer.testing import CliRunner

    from bnbench.cli import app

    spec = copy.deepcopy(TINY_SPEC)
    spec["evaluation"] = {"bn_statistics": "precise"}
    result = CliRunner().invoke(app, ["validate", str(write_spec(spec))])
    assert result.exit_code == 2
    assert "evaluation.bn_statistics" in result.output and "'moving'" in result.output
    assert keras.backend.backend() == "tensorflow"
