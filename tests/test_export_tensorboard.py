"""`bnbench export tensorboard`: event files read back with TensorBoard's own reader."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.errors import SpecError
from bnbench.export.tensorboard_events import MARKER, export_tensorboard
from tests.support.export_tree import (
    ARMS,
    DIVERGED,
    FAILED,
    KEY,
    METRICS,
    RATES,
    SEEDS,
    STEPS,
    UNFINISHED,
    cell,
    percentile,
    value,
    write_tree,
)
from tests.support.specs import files_under

runner = CliRunner()


@pytest.fixture
def reader(monkeypatch):
    """TensorBoard's EventAccumulator on its TensorFlow-free record reader.

    `tensorboard.compat.notf` makes TensorBoard use its stub of TensorFlow's file API, as it
    does when installed without TensorFlow, instead of importing TensorFlow for reading.
    """
    monkeypatch.setitem(sys.modules, "tensorboard.compat.notf", types.ModuleType("notf"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def read(path: Path) -> EventAccumulator:
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
        accumulator.Reload()
        return accumulator

    return read


@pytest.fixture
def tree(tmp_path):
    return write_tree(tmp_path / "tiny")


def _run_dir(logdir: Path, arm: str, rate: float, seed: int) -> Path:
    return logdir / arm / cell(rate) / f"s{seed}"


def _scalars(accumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def test_one_tensorboard_run_per_run_named_by_arm_cell_and_seed(tree):
    result = export_tensorboard(tree)
    assert result.logdir == tree / "tensorboard" and result.runs == 8
    for arm in ARMS:
        for rate in RATES:
            for seed in SEEDS:
                events = list(_run_dir(result.logdir, arm, rate, seed).glob("events.out.*"))
                assert len(events) == 1, (arm, rate, seed)
    assert (result.logdir / MARKER).is_file()


def test_every_history_metric_is_a_scalar_against_the_step(tree, reader):
    logdir = export_tensorboard(tree).logdir
    accumulator = reader(_run_dir(logdir, "bn", 0.1, 1))
    assert {f"history/{column}" for column in METRICS} <= set(accumulator.Tags()["scalars"])
    assert any(c.startswith("val_train_mode_") for c in METRICS)
    assert any(c.startswith("val_moving_") for c in METRICS)
    for column in METRICS:
        expected = [(step, value("bn", 0.1, 1, step, column)) for step in STEPS]
        got = _scalars(accumulator, f"history/{column}")
        assert [step for step, _ in got] == list(STEPS)
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6)


def test_a_diverged_run_keeps_its_points_before_divergence(tree, reader):
    logdir = export_tensorboard(tree).logdir
    accumulator = reader(_run_dir(logdir, *DIVERGED))
    # Step 20 is NaN for every column but the infinite train_loss (read as missing): left out.
    assert [step for step, _ in _scalars(accumulator, "history/val_accuracy")] == [10]


def test_diagnostics_are_scalars_per_layer_unit_and_percentile(tree, reader):
    logdir = export_tensorboard(tree).logdir
    accumulator = reader(_run_dir(logdir, "plain", 0.01, 0))
    tags = set(accumulator.Tags()["scalars"])
    for name in ("p15", "p50", "p85"):
        pooled = _scalars(accumulator, f"activation_percentiles/block1/{name}")
        assert pooled == [
            (step, pytest.approx(percentile("plain", 0, step, "pooled", name)))
            for step in (0, *STEPS)
        ]
        unit = _scalars(accumulator, f"activation_percentiles/block1/unit_3/{name}")
        assert unit[-1] == (30, pytest.approx(percentile("plain", 0, 30, "3", name)))
    gap = _scalars(accumulator, "train_inference_gap/inference_mode_loss")
    assert gap == [(step, pytest.approx(0.2 * step)) for step in (0, *STEPS)]
    assert not any("units" in tag or "layer" in tag.split("/")[-1] for tag in tags)


def test_the_hparams_tab_compares_arms_cells_and_seeds(tree, reader):
    from tensorboard.plugins.hparams import api_pb2, metadata

    logdir = export_tensorboard(tree).logdir
    root = reader(logdir).PluginTagToContent(metadata.PLUGIN_NAME)
    experiment = metadata.parse_experiment_plugin_data(root[metadata.EXPERIMENT_TAG])
    infos = {info.name: info for info in experiment.hparam_infos}
    assert list(infos) == ["arm", KEY, "seed"]
    assert list(infos["arm"].domain_discrete.values) == [
        type(infos["arm"].domain_discrete.values[0])(string_value=arm) for arm in ARMS
    ]
    assert [v.number_value for v in infos[KEY].domain_discrete.values] == list(RATES)
    assert infos[KEY].type == api_pb2.DATA_TYPE_FLOAT64
    metrics = [info.name.tag for info in experiment.metric_infos]
    assert metrics[:2] == ["final/test_accuracy", "final/test_loss"]

    accumulator = reader(_run_dir(logdir, "bn", 0.1, 0))
    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["arm"].string_value == "bn"
    assert start.hparams[KEY].number_value == 0.1
    assert start.hparams["seed"].number_value == 0
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
    final = _scalars(accumulator, "final/test_accuracy")
    assert final == [(30, pytest.approx(value("bn", 0.1, 0, 30, "val_accuracy") - 0.5))]


@pytest.mark.parametrize(
    ("run", "status"),
    [(DIVERGED, "STATUS_FAILURE"), (FAILED, "STATUS_FAILURE"), (UNFINISHED, "STATUS_RUNNING")],
)
def test_runs_that_did_not_complete_are_sessions_with_their_status(tree, reader, run, status):
    from tensorboard.plugins.hparams import api_pb2, metadata

    accumulator = reader(_run_dir(export_tensorboard(tree).logdir, *run))
    content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.Status.Value(status)
    if run == FAILED:
        assert accumulator.Tags()["scalars"] == []  # it never trained


def test_exporting_twice_replaces_the_export(tree, reader):
    first = export_tensorboard(tree)
    (first.logdir / "bn" / "stale.txt").write_text("left from before\n")
    second = export_tensorboard(tree)
    assert second.scalars == first.scalars
    run = _run_dir(second.logdir, "bn", 0.1, 1)
    assert len(list(run.glob("events.out.*"))) == 1
    assert len(_scalars(reader(run), "history/val_loss")) == len(STEPS)
    assert not (second.logdir / "bn" / "stale.txt").exists()
    assert not [p for p in tree.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_a_logdir_with_other_files_is_refused_and_left_alone(tree, tmp_path):
    logdir = tmp_path / "mine"
    logdir.mkdir()
    (logdir / "notes.txt").write_text("mine\n")
    with pytest.raises(SpecError, match="did not write"):
        export_tensorboard(tree, logdir)
    assert [p.name for p in files_under(logdir)] == ["notes.txt"]
    with pytest.raises(SpecError, match="holds the results tree"):
        export_tensorboard(tree, tree)
    with pytest.raises(SpecError, match="inside the tree's runs"):
        export_tensorboard(tree, tree / "runs" / "tb")


def test_a_missing_tensorboard_extra_names_the_pip_command(tree, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(SpecError, match=r'pip install "bnbench\[tensorboard\]"'):
        export_tensorboard(tree)
    result = runner.invoke(app, ["export", "tensorboard", str(tree)])
    assert result.exit_code == 2, result.output
    assert 'pip install "bnbench[tensorboard]"' in result.output
    assert not (tree / "tensorboard").exists()


def test_the_command_writes_the_logdir_it_is_given(tree, tmp_path):
    logdir = tmp_path / "tb"
    result = runner.invoke(app, ["export", "tensorboard", str(tree), "--logdir", str(logdir)])
    assert result.exit_code == 0, result.output
    assert "8 runs" in result.output and f"tensorboard --logdir {logdir}" in result.output
    assert (logdir / "plain" / "lr=0.1" / "s0").is_dir()


def test_the_command_refuses_a_folder_that_is_not_a_results_tree(tmp_path):
    result = runner.invoke(app, ["export", "tensorboard", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "not a results tree" in result.output and "Traceback" not in result.output


def test_export_help_lists_both_exporters():
    result = runner.invoke(app, ["export", "--help"])
    assert result.exit_code == 0, result.output
    assert "tensorboard" in result.output and "mlflow" in result.output


def test_exporting_loads_no_tensorflow_keras_or_jax(tree):
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from bnbench.export.tensorboard_events import export_tensorboard\n"
        f"export_tensorboard(Path({str(tree)!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'jax', 'torch')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
