"""Tests for bnbench.train.diagnostics on tiny models that follow the block naming contract."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pydantic
import pytest
from keras import layers

from bnbench.config.diagnostics import DiagnosticsSpec
from bnbench.results.diagnostics import FILES
from bnbench.train.diagnostics import DiagnosticsRecorder, make_recorder

ALL_ON = {
    "activation_percentiles": {"layers": ["block1", "block2"], "every": 1},
    "bn_statistics": True,
    "train_inference_gap": True,
    "gradient_norms": True,
    "variance_shift": True,
}
# The CSV each switch writes: all but the moving statistics are named after their switch.
CSV = {file.switch: file.name for file in FILES}


def _dense_model(dropout: float = 0.0) -> keras.Model:
    """Input(4) → block1 dense/BN/relu (+dropout) → block2 dense/relu → softmax head of 3."""
    model = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(4, use_bias=False, name="block1_dense"),
            layers.BatchNormalization(name="block1_norm"),
            layers.Activation("relu", name="block1_act"),
            *([layers.Dropout(dropout, name="block1_dropout")] if dropout else []),
            layers.Dense(5, name="block2_dense"),
            layers.Activation("tanh", name="block2_act"),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    _set_weights(model, seed=0)
    return model


def _set_weights(model: keras.Model, seed: int) -> None:
    """Deterministic non-trivial weights, including moving statistics unlike any batch's."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for variable in layer.weights:
            name = variable.path.rsplit("/", 1)[-1]
            low, high = (0.5, 1.5) if name in ("moving_variance", "gamma") else (-0.5, 0.5)
            variable.assign(rng.uniform(low, high, variable.shape).astype("float32"))


def _probe(size: int = 64, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(size, 4)).astype("float32"), rng.integers(0, 3, size)


def _recorder(spec: dict, model: keras.Model, **kwargs) -> DiagnosticsRecorder:
    x, y = kwargs.pop("probe", _probe())
    kwargs.setdefault("loss_fn", keras.losses.SparseCategoricalCrossentropy())
    kwargs.setdefault("metric_name", "accuracy")
    recorder = make_recorder(DiagnosticsSpec(**spec), model, x, y, **kwargs)
    assert recorder is not None
    return recorder


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _snapshot(model: keras.Model) -> list[bytes]:
    return [keras.ops.convert_to_numpy(v.value).tobytes() for v in model.variables]


def test_make_recorder_returns_none_when_everything_is_off(tmp_path: Path) -> None:
    x, y = _probe()
    loss = keras.losses.SparseCategoricalCrossentropy()
    assert make_recorder(DiagnosticsSpec(), _dense_model(), x, y, loss, "accuracy") is None
    assert make_recorder(None, _dense_model(), x, y, loss, "accuracy") is None
    assert DiagnosticsSpec().probe_size == 256


@pytest.mark.parametrize(
    "raw",
    [
        {"activation_percentiles": {"every": 0}},
        {"activation_percentiles": {"percentiles": [15, 150]}},
        {"activation_percentiles": {"percentiles": [0, 50]}},
        {"activation_percentiles": {"percentiles": []}},
        {"activation_percentiles": {"percentiles": [50, 50]}},
        {"activation_percentiles": {"layers": []}},
        {"activation_percentiles": {"evry": 10}},
        {"probe_size": 0},
        {"gradient_norm": True},
        {"variance_shift": "maybe"},
    ],
)
def test_spec_rejects_invalid_values(raw: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        DiagnosticsSpec.model_validate(raw)


def test_unknown_block_raises_value_error_listing_available_blocks(tmp_path: Path) -> None:
    spec = {"activation_percentiles": {"layers": ["block1", "block7"]}}
    with pytest.raises(ValueError, match=r"\['block7'\].*block1, block2"):
        _recorder(spec, _dense_model())


def test_blocks_are_ordered_by_number_and_default_is_the_last(tmp_path: Path) -> None:
    model = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(4, name="block9_dense"),
            layers.Activation("relu", name="block9_act"),
            layers.Dense(4, name="block10_dense"),
            layers.Activation("relu", name="block10_act"),
            layers.Flatten(name="block11_flatten"),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    with pytest.raises(ValueError, match=r"block9, block10$"):
        _recorder({"activation_percentiles": {"layers": ["block11"]}}, model)
    recorder = _recorder({"activation_percentiles": {}}, model)
    with pytest.raises(RuntimeError, match="steps"):
        recorder.record(0)
    recorder.steps(0, [])
    recorder.record(0)
    recorder.finish(tmp_path)
    _, rows = _read_csv(tmp_path / "diagnostics" / "activation_percentiles.csv")
    assert [r["layer"] for r in rows] == ["block10"]


def test_unknown_metric_name_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'top5'"):
        _recorder({"gradient_norms": True}, _dense_model(), metric_name="top5")


def test_percentiles_reproduce_numpy_on_identity_layer(tmp_path: Path) -> None:
    model = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(4, kernel_initializer="identity", name="block1_dense"),
            layers.Activation("sigmoid", name="block1_act"),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    x, y = _probe(size=256)
    spec = {"activation_percentiles": {"every": 5, "percentiles": [2.5, 50, 85]}}
    recorder = _recorder(spec, model, probe=(x, y))
    assert recorder.steps(12, [12]) == {0, 5, 10}
    recorder.record(0)
    recorder.record(3)  # not scheduled: ignored
    recorder.finish(tmp_path)
    columns, rows = _read_csv(tmp_path / "diagnostics" / "activation_percentiles.csv")
    assert columns == ["step", "layer", "units", "p2.5", "p50", "p85"]
    assert [(r["step"], r["layer"], r["units"]) for r in rows] == [("0", "block1", "pooled")]
    got = [float(rows[0][c]) for c in columns[3:]]
    np.testing.assert_allclose(got, np.percentile(x, [2.5, 50, 85]), rtol=1e-6)


def test_percentiles_of_one_unit(tmp_path: Path) -> None:
    model = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(4, kernel_initializer="identity", name="block1_dense"),
            layers.Activation("sigmoid", name="block1_act"),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    x, y = _probe(size=256)
    x[:, 2] *= 10.0  # unit 2 spreads much wider than the pool
    spec = {"activation_percentiles": {"every": 5, "percentiles": [15, 50, 85], "units": 2}}
    recorder = _recorder(spec, model, probe=(x, y))
    recorder.steps(5, [5])
    recorder.record(0)
    recorder.finish(tmp_path)
    _, rows = _read_csv(tmp_path / "diagnostics" / "activation_percentiles.csv")
    assert rows[0]["units"] == "2"
    got = [float(rows[0][c]) for c in ("p15", "p50", "p85")]
    np.testing.assert_allclose(got, np.percentile(x[:, 2], [15, 50, 85]), rtol=1e-6)
    too_far = {"activation_percentiles": {"units": 4}}
    with pytest.raises(ValueError, match="units: 4 is not a unit of block1, which has 4"):
        _recorder(too_far, model, probe=(x, y))


def test_default_block_is_last_with_activation(tmp_path: Path) -> None:
    recorder = _recorder({"activation_percentiles": {}}, _dense_model())
    recorder.steps(0, [])
    recorder.record(0)
    recorder.finish(tmp_path)
    _, rows = _read_csv(tmp_path / "diagnostics" / "activation_percentiles.csv")
    assert [r["layer"] for r in rows] == ["block2"]
    # tanh pre-activation of block2 recomputed in training mode by hand.
    x, _ = _probe()
    model = _dense_model()
    pre_activation = keras.Sequential(model.layers[:4])(x, training=True)
    expected = np.percentile(keras.ops.convert_to_numpy(pre_activation), [15, 50, 85])
    np.testing.assert_allclose(
        [float(rows[0][c]) for c in ("p15", "p50", "p85")], expected, rtol=1e-5
    )


def _identity_bn_model(x_shape: tuple[int, ...], conv: bool) -> keras.Model:
    channels = x_shape[-1]
    linear = (
        layers.Conv2D(channels, 1, use_bias=False, name="block1_conv")
        if conv
        else layers.Dense(channels, use_bias=False, name="block1_dense")
    )
    model = keras.Sequential(
        [
            keras.Input(x_shape),
            linear,
            layers.BatchNormalization(name="block1_norm"),
            layers.Activation("relu", name="block1_act"),
            *([layers.GlobalAveragePooling2D(name="block2_gap")] if conv else []),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    linear.kernel.assign(np.eye(channels).reshape(linear.kernel.shape))
    return model


@pytest.mark.parametrize("conv", [False, True], ids=["dense", "conv2d"])
def test_bn_statistics_gaps(tmp_path: Path, conv: bool) -> None:
    shape = (3, 3, 2) if conv else (4,)
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(32, *shape)) * 2 + 1).astype("float32")
    y = rng.integers(0, 3, 32)
    model = _identity_bn_model(shape, conv)
    norm = model.get_layer("block1_norm")
    axes = tuple(range(x.ndim - 1))
    batch_mean, batch_var = x.mean(axis=axes), x.var(axis=axes)
    recorder = _recorder({"bn_statistics": True}, model, probe=(x, y))
    recorder.steps(10, [10])
    norm.moving_mean.assign(batch_mean)
    norm.moving_variance.assign(batch_var)
    recorder.record(0)
    norm.moving_mean.assign(np.zeros_like(batch_mean))
    norm.moving_variance.assign(np.ones_like(batch_var))
    gamma = np.arange(1, shape[-1] + 1, dtype="float32")
    norm.gamma.assign(gamma)
    recorder.record(10)
    recorder.finish(tmp_path)
    columns, rows = _read_csv(tmp_path / "diagnostics" / "moving_statistics.csv")
    assert columns == [
        "step", "layer", "moving_mean_mean", "moving_mean_std", "moving_var_mean",
        "gamma_mean", "gamma_std", "beta_mean", "beta_std", "batch_mean_gap", "batch_var_gap",
    ]  # fmt: skip
    matched, moved = ({k: float(v) for k, v in r.items() if k != "layer"} for r in rows)
    assert rows[0]["layer"] == "block1_norm"
    assert matched["batch_mean_gap"] == pytest.approx(0, abs=1e-5)
    assert matched["batch_var_gap"] == pytest.approx(0, abs=1e-4)
    assert matched["moving_var_mean"] == pytest.approx(batch_var.mean(), rel=1e-6)
    assert moved["step"] == 10
    assert moved["batch_mean_gap"] == pytest.approx(np.abs(batch_mean).mean(), rel=1e-5)
    assert moved["batch_var_gap"] == pytest.approx(np.abs(batch_var - 1).mean(), rel=1e-5)
    assert moved["gamma_mean"] == pytest.approx(gamma.mean())
    assert moved["gamma_std"] == pytest.approx(gamma.std())
    assert (moved["beta_mean"], moved["beta_std"], moved["moving_mean_std"]) == (0, 0, 0)


def test_train_inference_gap_matches_direct_computation(tmp_path: Path) -> None:
    model = _dense_model()
    x, y = _probe()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    recorder = _recorder({"train_inference_gap": True}, model, probe=(x, y))
    recorder.steps(10, [10])
    recorder.record(0)
    recorder.finish(tmp_path)
    columns, rows = _read_csv(tmp_path / "diagnostics" / "train_inference_gap.csv")
    assert columns == [
        "step", "train_mode_loss", "inference_mode_loss", "train_mode_metric",
        "inference_mode_metric", "train_mode_batch_size",
    ]  # fmt: skip
    got = {k: float(v) for k, v in rows[0].items()}
    for mode, training in (("inference", False), ("train", True)):  # training=True updates BN
        probs = keras.ops.convert_to_numpy(model(x, training=training))
        expected_loss = float(loss_fn(y, probs))
        assert got[f"{mode}_mode_loss"] == pytest.approx(expected_loss, rel=1e-5)
        assert got[f"{mode}_mode_metric"] == pytest.approx(np.mean(probs.argmax(-1) == y))
    assert got["train_mode_loss"] != pytest.approx(got["inference_mode_loss"])


def test_train_mode_of_the_gap_uses_batches_of_the_runs_size(tmp_path: Path) -> None:
    """BN's small-batch behaviour shows only when the probe is cut into the run's batches."""
    model = _dense_model()
    x, y = _probe(size=32)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    recorder = _recorder({"train_inference_gap": True}, model, probe=(x, y), batch_size=4)
    recorder.steps(10, [10])
    recorder.record(0)
    recorder.finish(tmp_path)
    _, rows = _read_csv(tmp_path / "diagnostics" / "train_inference_gap.csv")
    assert rows[0]["train_mode_batch_size"] == "4"
    losses, hits = [], []
    for start in range(0, 32, 4):
        xb, yb = x[start : start + 4], y[start : start + 4]
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        probs, _ = model.stateless_call(trainable, non_trainable, xb, training=True)
        probs = keras.ops.convert_to_numpy(probs)
        losses.append(float(loss_fn(yb, probs)))
        hits.append(np.mean(probs.argmax(-1) == yb))
    assert float(rows[0]["train_mode_loss"]) == pytest.approx(np.mean(losses), rel=1e-5)
    assert float(rows[0]["train_mode_metric"]) == pytest.approx(np.mean(hits))


def test_per_example_loss_function_is_averaged(tmp_path: Path) -> None:
    """The trainer may pass keras.losses.get(name), which returns one loss per example."""
    spec = {"train_inference_gap": True, "gradient_norms": True}
    losses = {
        "object": keras.losses.SparseCategoricalCrossentropy(),
        "function": keras.losses.get("sparse_categorical_crossentropy"),
    }
    for name, loss_fn in losses.items():
        recorder = _recorder(spec, _dense_model(), loss_fn=loss_fn)
        recorder.steps(1, [1])
        recorder.record(0)
        recorder.finish(tmp_path / name)
    for csv_name in ("train_inference_gap", "gradient_norms"):
        by_object, by_function = (
            _read_csv(tmp_path / name / "diagnostics" / f"{csv_name}.csv")[1] for name in losses
        )
        assert len(by_object) == len(by_function) > 0
        for expected, got in zip(by_object, by_function, strict=True):
            numbers = [c for c in expected if c != "layer"]
            np.testing.assert_allclose(
                [float(got[c]) for c in numbers], [float(expected[c]) for c in numbers], rtol=1e-6
            )


def test_train_inference_gap_regression_leaves_metric_empty(tmp_path: Path) -> None:
    model = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(3, name="block1_dense"),
            layers.Activation("relu", name="block1_act"),
            layers.Dense(1, name="head"),
        ]
    )
    x, _ = _probe()
    spec = {"train_inference_gap": True}
    recorder = _recorder(
        spec, model, probe=(x, x[:, :1]), loss_fn=keras.losses.MeanSquaredError(),
        metric_name=None,
    )  # fmt: skip
    recorder.steps(1, [1])
    recorder.record(1)
    recorder.finish(tmp_path)
    _, rows = _read_csv(tmp_path / "diagnostics" / "train_inference_gap.csv")
    assert rows[0]["train_mode_metric"] == rows[0]["inference_mode_metric"] == ""
    assert float(rows[0]["train_mode_loss"]) == pytest.approx(float(rows[0]["inference_mode_loss"]))


def test_gradient_norms_match_gradient_tape(tmp_path: Path) -> None:
    model = _dense_model()
    x, y = _probe()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    recorder = _recorder({"gradient_norms": True}, model, probe=(x, y))
    recorder.steps(4, [2, 4])
    recorder.record(2)
    recorder.finish(tmp_path)
    columns, rows = _read_csv(tmp_path / "diagnostics" / "gradient_norms.csv")
    assert columns == ["step", "layer", "grad_norm"]
    got = {r["layer"]: float(r["grad_norm"]) for r in rows}
    assert set(got) == {"block1_dense", "block1_norm", "block2_dense", "head"}
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    by_path = {v.path: g.numpy() for v, g in zip(model.trainable_variables, grads, strict=True)}
    for layer_name, norm in got.items():
        squares = sum(np.sum(g**2) for p, g in by_path.items() if f"/{layer_name}/" in p)
        assert norm == pytest.approx(np.sqrt(squares), rel=1e-5)


def test_record_leaves_every_variable_bit_identical(tmp_path: Path) -> None:
    model = _dense_model(dropout=0.5)
    assert any("seed_generator" in v.path for v in model.non_trainable_variables)
    before = _snapshot(model)
    recorder = _recorder(ALL_ON, model)
    recorder.steps(1, [1])
    recorder.record(0)
    recorder.record(0)
    recorder.finish(tmp_path)
    assert _snapshot(model) == before
    # The dropout seed state was not advanced, so repeating a record repeats its numbers.
    for name in ("activation_percentiles", "moving_statistics", "gradient_norms", "variance_shift"):
        _, rows = _read_csv(tmp_path / "diagnostics" / f"{name}.csv")
        half = len(rows) // 2
        assert rows[:half] == rows[half:]


def test_finish_writes_one_csv_per_diagnostic_and_no_temp_files(tmp_path: Path) -> None:
    recorder = _recorder(ALL_ON, _dense_model())
    assert recorder.steps(6, [3, 6]) == {0, 1, 2, 3, 4, 5, 6}
    for step in (0, 1, 3):
        recorder.record(step)
    recorder.finish(tmp_path)
    files = sorted(p.name for p in (tmp_path / "diagnostics").iterdir())
    assert files == sorted(f"{CSV[n]}.csv" for n in ALL_ON)
    steps = {CSV[n]: [r["step"] for r in _read_csv(tmp_path / "diagnostics" / f"{CSV[n]}.csv")[1]]
             for n in ALL_ON}  # fmt: skip
    assert steps["activation_percentiles"] == ["0", "0", "1", "1", "3", "3"]
    assert steps["moving_statistics"] == ["0", "3"]
    assert steps["train_inference_gap"] == ["0", "3"]
    assert steps["gradient_norms"] == ["0"] * 4 + ["3"] * 4


def test_module_imports_without_keras() -> None:
    code = "import sys, bnbench.train.diagnostics; assert 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


_JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_diagnostics import ALL_ON, _dense_model, _probe, _snapshot
    from bnbench.config.diagnostics import DiagnosticsSpec
    from bnbench.train.diagnostics import make_recorder

    assert keras.backend.backend() == "jax"
    model = _dense_model()
    x, y = _probe()
    loss = keras.losses.SparseCategoricalCrossentropy()
    spec = DiagnosticsSpec(**ALL_ON)
    recorder = make_recorder(spec, model, x, y, loss, "accuracy")
    before = _snapshot(model)
    recorder.steps(1, [1])
    recorder.record(0)
    from pathlib import Path
    recorder.finish(Path(sys.argv[1]))
    print(json.dumps({"unchanged": _snapshot(model) == before}))
    """
)


def test_jax_backend_matches_tensorflow(tmp_path: Path) -> None:
    tests_dir = str(Path(__file__).parent)
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    jax_dir, tf_dir = tmp_path / "jax", tmp_path / "tf"
    result = subprocess.run(
        [sys.executable, "-c", _JAX_SCRIPT, str(jax_dir), tests_dir],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"unchanged": True}
    recorder = _recorder(ALL_ON, _dense_model())
    recorder.steps(1, [1])
    recorder.record(0)
    recorder.finish(tf_dir)
    for name in map(CSV.get, ALL_ON):
        jax_columns, jax_rows = _read_csv(jax_dir / "diagnostics" / f"{name}.csv")
        tf_columns, tf_rows = _read_csv(tf_dir / "diagnostics" / f"{name}.csv")
        assert jax_columns == tf_columns
        assert [r.get("layer") for r in jax_rows] == [r.get("layer") for r in tf_rows]
        labels = ("step", "layer", "units", "fed_by_dropout")
        assert [r.get("fed_by_dropout") for r in jax_rows] == [
            r.get("fed_by_dropout") for r in tf_rows
        ]
        numbers = [c for c in tf_columns if c not in labels]
        for jax_row, tf_row in zip(jax_rows, tf_rows, strict=True):
            np.testing.assert_allclose(
                [float(jax_row[c]) for c in numbers], [float(tf_row[c]) for c in numbers],
                rtol=1e-4, atol=1e-6, err_msg=name,
            )  # fmt: skip


# --- variance shift (Li et al. 2019) ------------------------------------------------------------


def _bn_after_bn_model() -> keras.Model:
    """block1: identity dense → BN → linear; block2: identity dense → BN → linear; head.

    Block 2's BN input is block 1's BN output: in training mode block 1 normalizes with the
    batch's statistics, in inference mode with its moving ones, so their variances differ by a
    ratio numpy can compute exactly.
    """
    model = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(4, use_bias=False, kernel_initializer="identity", name="block1_dense"),
            layers.BatchNormalization(name="block1_norm"),
            layers.Activation("linear", name="block1_act"),
            layers.Dense(4, use_bias=False, kernel_initializer="identity", name="block2_dense"),
            layers.BatchNormalization(name="block2_norm"),
            layers.Activation("linear", name="block2_act"),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    return model


def test_variance_shift_matches_numpy_and_leaves_out_dead_units(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(64, 4)) * [0.5, 2.0, 3.0, 1.0] + 1.0).astype("float32")
    x[:, 3] = 2.5  # a constant unit: zero variance in both modes, left out of the average
    model = _bn_after_bn_model()
    first = model.get_layer("block1_norm")
    moving_var = np.array([4.0, 0.25, 9.0, 1.0], dtype="float32")
    gamma = np.array([1.5, 0.5, 2.0, 1.0], dtype="float32")
    first.moving_mean.assign(np.full(4, -1.0, dtype="float32"))
    first.moving_variance.assign(moving_var)
    first.gamma.assign(gamma)
    recorder = _recorder({"variance_shift": True}, model, probe=(x, rng.integers(0, 3, 64)))
    assert recorder.steps(10, [10]) == {0, 10}
    recorder.record(10)
    recorder.finish(tmp_path)
    columns, rows = _read_csv(tmp_path / "diagnostics" / "variance_shift.csv")
    assert columns == ["step", "layer", "fed_by_dropout", "variance_ratio", "train_mode_variance",
                       "inference_mode_variance", "averaged_units"]  # fmt: skip
    by_layer = {r["layer"]: r for r in rows}
    assert [r["step"] for r in rows] == ["10", "10"]
    assert {r["fed_by_dropout"] for r in rows} == {"False"}
    # No dropout: both passes are the same network, every BN layer on its moving statistics.
    assert float(by_layer["block1_norm"]["variance_ratio"]) == pytest.approx(1.0, abs=1e-6)
    # Block 2's BN sees gamma (x - moving mean) / sqrt(moving var + eps) in both passes (Keras'
    # epsilon is 1e-3), not the batch-normalized input of training mode: the moving statistics
    # are far from the probe's (4, 0.25, 9 vs its 0.25, 4, 9), which must not read as a shift.
    batch_var = x.astype(np.float64).var(axis=0)
    inference_var = gamma**2 * batch_var / (moving_var + 1e-3)
    second = {
        k: float(v)
        for k, v in by_layer["block2_norm"].items()
        if k not in ("layer", "fed_by_dropout")
    }
    assert second["variance_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert second["train_mode_variance"] == pytest.approx(inference_var.mean(), rel=1e-4)
    assert second["inference_mode_variance"] == pytest.approx(inference_var.mean(), rel=1e-4)
    assert second["averaged_units"] == 3


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_variance_shift_of_dropout_feeding_bn_is_one_over_the_keep_rate(
    tmp_path: Path, rate: float
) -> None:
    """Inverted dropout scales kept units by 1 / (1 - p): for a zero-mean input x, the training-
    mode variance is E[(m x / (1 - p))²] = E[x²] / (1 - p) (m ~ Bernoulli(1 - p)), the
    inference-mode variance E[x²], so the ratio is 1 / (1 - p). The BN before the dropout is
    not fed by it and sees the same input in both modes (ratio 1)."""
    model = keras.Sequential(
        [
            keras.Input((16,)),
            layers.BatchNormalization(name="block1_norm"),
            layers.Activation("linear", name="block1_act"),
            layers.Dropout(rate, name="block1_dropout"),
            layers.Dense(16, use_bias=False, kernel_initializer="identity", name="block2_dense"),
            layers.BatchNormalization(name="block2_norm"),
            layers.Activation("linear", name="block2_act"),
            layers.Dense(3, activation="softmax", name="head"),
        ]
    )
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20_000, 16)).astype("float32")  # moving statistics (0, 1) fit it
    recorder = _recorder({"variance_shift": True}, model, probe=(x, rng.integers(0, 3, 20_000)))
    recorder.steps(1, [1])
    recorder.record(0)
    recorder.finish(tmp_path)
    _, rows = _read_csv(tmp_path / "diagnostics" / "variance_shift.csv")
    by_layer = {r["layer"]: r for r in rows}
    assert by_layer["block1_norm"]["fed_by_dropout"] == "False"
    assert float(by_layer["block1_norm"]["variance_ratio"]) == pytest.approx(1.0, abs=1e-6)
    assert by_layer["block2_norm"]["fed_by_dropout"] == "True"
    assert float(by_layer["block2_norm"]["variance_ratio"]) == pytest.approx(1 / (1 - rate),
                                                                             rel=0.02)  # fmt: skip
    assert by_layer["block2_norm"]["averaged_units"] == "16"


def test_variance_shift_does_not_change_training(tmp_path: Path) -> None:
    from bnbench.config.schema import RunSpec
    from bnbench.train.loop import train
    from tests.support.specs import TINY_SPEC

    spec = json.loads(json.dumps(TINY_SPEC))
    spec["model"]["blocks"][0]["dropout"] = 0.3  # dropout feeds block 2's BN, and draws seeds
    plain = train(RunSpec.model_validate(spec), tmp_path / "plain", save_model=False)
    spec["diagnostics"] = {"variance_shift": True, "probe_size": 32}
    probed = train(RunSpec.model_validate(spec), tmp_path / "probed", save_model=False)
    assert [r.values for r in plain.history] == [r.values for r in probed.history]
    assert plain.summary.final == probed.summary.final
    _, rows = _read_csv(tmp_path / "probed" / "diagnostics" / "variance_shift.csv")
    assert [(r["step"], r["layer"], r["fed_by_dropout"]) for r in rows] == [
        (str(step), layer, str(layer == "block2_norm"))
        for step in (0, 4, 8, 12)
        for layer in ("block1_norm", "block2_norm")
    ]
    assert all(float(r["variance_ratio"]) > 0 for r in rows)


def test_a_bad_variance_shift_value_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from bnbench.cli import app
    from tests.support.specs import TINY_SPEC

    spec = {**TINY_SPEC, "diagnostics": {"variance_shift": "maybe"}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert "diagnostics.variance_shift: Input should be a valid boolean" in " ".join(
        result.output.split()
    )
    assert not out.exists()
