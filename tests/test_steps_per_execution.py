"""`training.steps_per_execution`: several steps per call into the backend, the same numbers.

Keras runs N steps per call and calls back once per N steps. bnbench's evaluation points, train
loss pooling, step timing and divergence must not notice, except that a divergence is seen at
the end of its group of N steps (documented on the option).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.train.loop import train
from bnbench.train.monitor import StepMonitor

# Trains the tiny spec twice (1 and 4 steps per execution; chunks of 7 steps, so every chunk
# ends in a short group) and prints whether history and final numbers are identical.
_SAME_NUMBERS = """
import json, sys, tempfile
from pathlib import Path
from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.train.loop import train
spec = json.loads(sys.argv[1])
out = {}
with tempfile.TemporaryDirectory() as tmp:
    for n in (1, 4):
        spec["training"]["steps_per_execution"] = n
        result = train(RunSpec.model_validate(spec), Path(tmp) / str(n), save_model=False)
        rows = [{"step": row.step, **row.values} for row in result.history]
        out[n] = {"history": rows, "final": result.summary.final,
                  "steps": result.summary.steps_done, "status": result.summary.status,
                  "step_time_ms": result.summary.step_time_ms,
                  "timings": result.summary.timings}
print(json.dumps(out))
"""


def _spec(tiny_spec: dict, backend: str) -> dict:
    tiny_spec["backend"] = backend
    tiny_spec["model"]["blocks"][0]["dropout"] = 0.2  # a seeded random state inside the step
    tiny_spec["training"].update({"steps": 22, "eval_every": 7})
    return tiny_spec


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_more_steps_per_execution_change_no_number(tiny_spec, backend):
    spec = _spec(tiny_spec, backend)
    env_code = f"import os; os.environ['KERAS_BACKEND'] = {backend!r}\n" + _SAME_NUMBERS
    done = subprocess.run([sys.executable, "-c", env_code, json.dumps(spec)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    one, four = runs["1"], runs["4"]
    assert one["status"] == four["status"] == "completed"
    assert one["steps"] == four["steps"] == 22
    assert [row["step"] for row in four["history"]] == [7, 14, 21, 22]
    assert one["history"] == four["history"]  # bit for bit, train loss pooling included
    assert one["final"] == four["final"]
    for run in (one, four):
        # Where fit's time went: every step at the steady rate, the rest set-up and compiling.
        timings, per_step = run["timings"], run["step_time_ms"] / 1000
        assert timings["steps"] == pytest.approx(min(22 * per_step, timings["steps"]))
        assert timings["steps"] > 0.5 * 22 * per_step and timings["compile_and_setup"] >= 0


def test_divergence_is_seen_at_the_end_of_its_group(tiny_spec, tmp_path):
    tiny_spec["training"].update({"learning_rate": 1e12, "steps": 40, "eval_every": 20,
                                  "steps_per_execution": 8})  # fmt: skip
    result = train(RunSpec.model_validate(tiny_spec), tmp_path / "run", save_model=False)
    assert result.summary.status == "diverged"
    exact = train(RunSpec.model_validate({**tiny_spec, "training": {
        **tiny_spec["training"], "steps_per_execution": 1}}), tmp_path / "exact",
        save_model=False).summary.diverged_step  # fmt: skip
    grouped = result.summary.diverged_step
    assert exact is not None and grouped is not None
    # The group of 8 that holds the exact step ends at the next multiple of 8.
    assert grouped == min(-(-exact // 8) * 8, 40)
    assert rundir.read_summary(tmp_path / "run") is not None


def test_monitor_clamps_a_short_last_group_to_the_chunk():
    monitor = StepMonitor(total=22, hook=None)
    monitor.begin_chunk(14, 21)  # 7 steps in groups of 4: Keras reports batches 3 and 7
    monitor.on_batch_end(3, {"loss": 1.0})
    monitor.on_batch_end(7, {"loss": 1.0})
    assert monitor.step == 21
    steps, seconds = monitor.steady()
    assert steps == 3 and seconds >= 0.0  # batches 4..6 after the first call


def test_steps_per_execution_is_validated():
    with pytest.raises(ValueError, match="steps_per_execution"):
        RunSpec.model_validate({"dataset": {"name": "digits"},
                                "model": {"blocks": [{"type": "dense", "units": 4}]},
                                "training": {"steps_per_execution": 0}})  # fmt: skip
    default = RunSpec.model_validate(
        {"dataset": {"name": "digits"}, "model": {"blocks": [{"type": "dense", "units": 4}]}}
    )
    assert default.training.steps_per_execution == 1  # exact divergence steps unless asked


def test_monitor_times_nothing_when_callbacks_arrive_out_of_order():
    """A chunk cut short (a divergence) may see its first call timed after its last: the step
    time must not come out negative."""
    import time

    monitor = StepMonitor(total=40, hook=None)
    monitor.begin_chunk(0, 40)
    monitor.on_batch_end(7, {"loss": float("nan")})  # the group's last call, delivered first
    time.sleep(0.01)
    monitor.on_batch_end(3, {"loss": 2.0})  # an earlier call, delivered late
    assert monitor.steady() == (0, 0.0)


def test_train_says_a_grouped_divergence_is_known_to_within_the_group(
    tiny_spec, write_spec, tmp_path
):
    from typer.testing import CliRunner

    from bnbench.cli import app

    tiny_spec["training"].update({"learning_rate": 1e12, "steps": 40, "eval_every": 20,
                                  "steps_per_execution": 8})  # fmt: skip
    command = ["train", str(write_spec(tiny_spec)), "-q", "--no-save-model",
               "--out", str(tmp_path / "run")]  # fmt: skip
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "within the last 8: steps_per_execution" in result.output
    summary = rundir.read_summary(tmp_path / "run")
    assert summary is not None and summary.step_time_ms is not None
    assert summary.step_time_ms > 0
