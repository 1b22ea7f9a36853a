"""Evaluation on shifted test inputs (`evaluation.shift`) and the shift_adaptation claim.

The shifted inputs and the re-estimated BN statistics are checked against numpy; training and
the saved model are the same with and without the shifted evaluation; bad shifts are refused
before anything is written; the claim's rule reaches every verdict on hand-built trees and flips
when its runs are edited to contradict it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bnbench.claims.catalog.shift_adaptation import VERDICT_EXAMPLES
from bnbench.claims.evidence import load_evidence
from bnbench.claims.registry import CLAIMS
from bnbench.claims.report import write_claims_report
from bnbench.cli import app
from bnbench.config.schema import RunSpec, ShiftSpec
from bnbench.results import rundir
from bnbench.results.rows import run_row
from bnbench.train.evaluation import Evaluator
from bnbench.train.feeding import Feeder
from bnbench.train.loop import train
from bnbench.train.prepare import prepare
from bnbench.train.shift import shift_split
from tests.support.claims_tree import SEEDS
from tests.support.shift_tree import KIND, SEVERITY, shift_adaptation
from tests.support.specs import TINY_SPEC, files_under

runner = CliRunner()
NOISE = {"kind": "noise", "severity": 0.5, "adapt_examples": [1, 8, 32]}
WIDE = {"COLUMNS": "200"}  # one table row a line


def _spec(shift: dict | None, **changes) -> RunSpec:
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["blocks"][0]["dropout"] = 0.2  # dropout stays off in every evaluation
    if shift is not None:
        spec["evaluation"] = {"shift": shift}
    spec.update(changes)
    return RunSpec.model_validate(spec)


# --- the shifted inputs ---------------------------------------------------------------------------


def test_noise_has_the_severity_as_its_standard_deviation_and_follows_the_seed():
    x = np.random.default_rng(1).uniform(size=(300, 64)).astype(np.float32)
    spec = ShiftSpec(kind="noise", severity=0.5)
    split = shift_split(x, spec, seed=3)
    noise = split.x - x
    assert split.x.dtype == np.float32 and split.x.shape == x.shape
    assert noise.std() == pytest.approx(0.5, rel=0.02) and abs(noise.mean()) < 0.01
    again = shift_split(x, spec, seed=3)
    assert np.array_equal(again.x, split.x) and np.array_equal(again.adapt_order, split.adapt_order)
    other = shift_split(x, spec, seed=4)
    assert not np.array_equal(other.x, split.x)
    assert sorted(split.adapt_order) == list(range(300))
    assert np.array_equal(split.adapt_inputs(5), split.x[split.adapt_order[:5]])
    assert np.array_equal(shift_split(x, ShiftSpec(kind="noise", severity=0.0), 3).x, x)


def test_contrast_scales_each_example_around_its_own_mean():
    x = np.random.default_rng(2).uniform(size=(50, 8, 8, 1)).astype(np.float32)
    shifted = shift_split(x, ShiftSpec(kind="contrast", severity=0.25), seed=0).x
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(shifted.mean(axis=(1, 2, 3), keepdims=True), mean, atol=1e-6)
    np.testing.assert_allclose(shifted - mean, 0.25 * (x - mean), atol=1e-6)
    unchanged = shift_split(x, ShiftSpec(kind="contrast", severity=1.0), seed=0).x
    np.testing.assert_allclose(unchanged, x, atol=1e-6)


# --- the re-estimated statistics, against numpy ---------------------------------------------------


def _one_bn_layer(shift: dict):
    """A prepared dense -> BN -> ReLU -> softmax net, trained a little, and its evaluator."""
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["blocks"] = [{"type": "dense", "units": 8}]
    spec["evaluation"] = {"shift": shift}
    prepared = prepare(RunSpec.model_validate(spec))
    prepared.model.fit(prepared.data.x_train[:64], prepared.data.y_train[:64], verbose=0)
    feeder = Feeder(prepared.model, 16, 256)
    return prepared, Evaluator(prepared, feeder.evaluate)


def _forward(prepared, x, mean, variance):
    """Class probabilities of the one-BN-layer net, normalizing with (mean, variance), in numpy."""
    model = prepared.model
    bn, head = model.get_layer("block1_norm"), model.get_layer("head")
    pre = x @ np.asarray(model.get_layer("block1_dense").kernel)
    z = (pre - mean) / np.sqrt(variance + bn.epsilon) * np.asarray(bn.gamma) + np.asarray(bn.beta)
    logits = np.maximum(z, 0.0) @ np.asarray(head.kernel) + np.asarray(head.bias)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return pre, e / e.sum(axis=1, keepdims=True)


def test_reestimation_on_every_example_is_the_numpy_mean_and_variance_and_changes_nothing():
    every = 360  # the digits test split
    prepared, evaluator = _one_bn_layer({**NOISE, "adapt_examples": [1, every]})
    data, model = prepared.data, prepared.model
    before = [np.array(v) for v in model.variables]
    split = shift_split(data.x_test, prepared.spec.evaluation.shift, prepared.spec.seed)
    pre, _ = _forward(prepared, split.x, 0.0, 1.0)

    ((mean, variance),) = evaluator.adapted_statistics(split.adapt_inputs(every), None)
    np.testing.assert_allclose(mean, pre.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(variance, pre.var(axis=0), rtol=1e-4, atol=1e-5)

    bn = model.get_layer("block1_norm")
    moving = np.array(bn.moving_mean), np.array(bn.moving_variance)
    ((prior_mean, prior_variance),) = evaluator.adapted_statistics(split.x, 40)
    weight = every / (every + 40)
    np.testing.assert_allclose(prior_mean, weight * mean + (1 - weight) * moving[0], rtol=1e-5)
    np.testing.assert_allclose(prior_variance, weight * variance + (1 - weight) * moving[1],
                               rtol=1e-5)  # fmt: skip

    # One example of a dense layer has no variance: why the prior exists.
    ((_, alone),) = evaluator.adapted_statistics(split.adapt_inputs(1), None)
    assert np.all(alone == 0.0)
    ((_, with_prior),) = evaluator.adapted_statistics(split.adapt_inputs(1), 16)
    np.testing.assert_allclose(with_prior, moving[1] * 16 / 17, rtol=1e-5)

    scores = evaluator.shifted(data.x_test, data.y_test)
    _, adapted = _forward(prepared, split.x, mean, variance)
    accuracy = float((adapted.argmax(axis=1) == data.y_test).mean())
    loss = float(-np.log(adapted[np.arange(every), data.y_test]).mean())
    assert scores[f"test_accuracy@n{every}"] == pytest.approx(accuracy, abs=1 / every)
    assert scores[f"test_loss@n{every}"] == pytest.approx(loss, rel=1e-3)
    _, plain = _forward(prepared, split.x, *moving)
    assert scores["test_accuracy@moving"] == pytest.approx(
        float((plain.argmax(axis=1) == data.y_test).mean()), abs=1 / every
    )
    assert set(scores) == {f"test_{m}@{t}" for m in ("loss", "accuracy")
                           for t in ("moving", "n1", f"n{every}")}  # fmt: skip
    after = [np.array(v) for v in model.variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_without_batch_norm_every_count_scores_as_the_training_statistics(tmp_path):
    result = train(_spec(NOISE, model={**TINY_SPEC["model"], "norm": {"kind": "none"}}),
                   tmp_path / "r", save_model=False)  # fmt: skip
    shifted = result.summary.shifted
    for n in NOISE["adapt_examples"]:
        assert shifted[f"test_accuracy@n{n}"] == shifted["test_accuracy@moving"]


# --- training is untouched; the run records the numbers -------------------------------------------


def test_shifted_evaluation_changes_no_weight_and_repeats_exactly(tmp_path):
    plain = train(_spec(None), tmp_path / "plain")
    first = train(_spec(NOISE), tmp_path / "first")
    second = train(_spec(NOISE), tmp_path / "second", save_model=False)
    for a, b in zip(plain.history, first.history, strict=True):
        assert a.values == b.values
    assert plain.summary.final == first.summary.final
    saved = [keras.saving.load_model(tmp_path / run / rundir.MODEL) for run in ("plain", "first")]
    for a, b in zip(saved[0].get_weights(), saved[1].get_weights(), strict=True):
        assert np.array_equal(a, b)  # moving statistics included
    assert plain.summary.shifted == {}
    assert first.summary.shifted == second.summary.shifted
    assert set(first.summary.shifted) == {
        f"test_{m}@{t}" for m in ("loss", "accuracy") for t in ("moving", "n1", "n8", "n32")
    }
    written = rundir.read_summary(tmp_path / "first")
    assert written is not None and written.shifted == first.summary.shifted
    row = run_row(tmp_path / "first")
    assert (row["shift_kind"], row["shift_severity"], row["adapt_examples"]) == ("noise", 0.5, 32)
    assert row["shift_prior_strength"] is None
    assert row["shifted_test_metric"] == first.summary.shifted["test_accuracy@moving"]
    assert row["adapted_test_metric"] == first.summary.shifted["test_accuracy@n32"]
    assert run_row(tmp_path / "plain")["adapted_test_metric"] is None


def test_a_summary_from_before_the_field_still_reads(tmp_path):
    run = tmp_path / "old"
    run.mkdir()
    (run / rundir.SUMMARY).write_text(json.dumps({"run_id": "old", "status": "completed",
                                                  "final": {"test_accuracy": 0.9}}))  # fmt: skip
    summary = rundir.read_summary(run)
    assert summary is not None and summary.shifted == {}
    assert run_row(run)["shifted_test_metric"] is None


def test_shifted_keys_round_trip():
    assert rundir.shifted_key("accuracy", None) == "test_accuracy@moving"
    assert rundir.shifted_key("accuracy", 32) == "test_accuracy@n32"
    assert rundir.shifted_count("test_accuracy@n32", "accuracy") == 32
    assert rundir.shifted_count("test_accuracy@moving", "accuracy") is None
    assert rundir.shifted_count("test_loss@n32", "accuracy") is None


_JAX_RUN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from bnbench.config.schema import RunSpec
    from bnbench.train.loop import train
    spec = RunSpec.model_validate(json.loads(sys.argv[1]))
    result = train(spec, Path(sys.argv[2]), save_model=False)
    print(json.dumps({"shifted": result.summary.shifted, "final": result.summary.final}))
    """
)


@pytest.mark.slow
def test_the_shifted_evaluation_runs_on_jax(tmp_path):
    spec = {**TINY_SPEC, "backend": "jax", "evaluation": {"shift": NOISE}}
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environment["BNBENCH_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "-c", _JAX_RUN, json.dumps(spec), str(tmp_path / "jax")],
        capture_output=True, text=True, env=environment, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    shifted = json.loads(done.stdout.strip().splitlines()[-1])["shifted"]
    assert set(shifted) == {f"test_{m}@{t}" for m in ("loss", "accuracy")
                            for t in ("moving", "n1", "n8", "n32")}  # fmt: skip
    assert all(0.0 <= shifted[f"test_accuracy@{t}"] <= 1.0 for t in ("moving", "n1", "n8", "n32"))


# --- bad shifts: exit 2, a message, nothing written -----------------------------------------------


@pytest.mark.parametrize(
    ("shift", "message"),
    [
        ({"kind": "blur", "severity": 0.5}, "evaluation.shift.kind: Input should be 'noise' or "
                                            "'contrast' (got 'blur')"),
        ({"severity": 0.5}, "evaluation.shift.kind: Field required"),
        ({"kind": "noise", "severity": -0.1}, "evaluation.shift.severity: Input should be greater "
                                              "than or equal to 0 (got -0.1)"),
        ({**NOISE, "adapt_examples": []}, "adapt_examples: give at least one number of examples"),
        ({**NOISE, "adapt_examples": [32, 8]}, "must be strictly increasing, got [32, 8]"),
        ({**NOISE, "adapt_examples": [8, 8]}, "must be strictly increasing, got [8, 8]"),
        ({**NOISE, "adapt_examples": [0, 8]}, "every number of examples must be at least 1"),
        ({**NOISE, "prior_strength": 0}, "evaluation.shift.prior_strength: Input should be "
                                         "greater than or equal to 1 (got 0)"),
    ],
)  # fmt: skip
def test_a_bad_shift_is_refused_before_anything_is_written(tmp_path, write_spec, shift, message):
    spec = copy.deepcopy(TINY_SPEC)
    spec["evaluation"] = {"shift": shift}
    path = write_spec(spec)
    out = tmp_path / "r"
    for command in (["validate", str(path)], ["train", str(path), "--out", str(out), "-q"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert files_under(out) == []


def test_more_adaptation_examples_than_the_test_split_is_refused(tmp_path, write_spec):
    spec = copy.deepcopy(TINY_SPEC)
    spec["evaluation"] = {"shift": {**NOISE, "adapt_examples": [8, 1000]}}
    out = tmp_path / "r"
    result = runner.invoke(app, ["train", str(write_spec(spec)), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert "1000 examples asked for, but the test split holds 360" in " ".join(
        result.output.split()
    )
    assert files_under(out) == []


# --- the claim's rule on hand-built trees ---------------------------------------------------------

VERDICT = {"for": "supported", "against": "not supported", "unclear": "inconclusive"}


@pytest.mark.parametrize("effect", list(VERDICT))
def test_each_verdict_is_reachable(tmp_path: Path, effect: str):
    evidence = shift_adaptation(effect).evidence(tmp_path)
    assessment = CLAIMS["shift_adaptation"].assess(evidence)
    assert [f.label for f in assessment.findings] == ["contrast 0.5", "noise 0.5"]
    assert [f.verdict for f in assessment.findings] == [VERDICT[effect]] * 2
    assert all(f.interval.n == len(SEEDS) for f in assessment.findings)
    assert f"{VERDICT_EXAMPLES} shifted examples" in assessment.findings[0].statistic


def test_sentences_and_figure_come_from_the_numbers(tmp_path: Path):
    evidence = shift_adaptation("for").evidence(tmp_path)
    claim = CLAIMS["shift_adaptation"]
    sentences = claim.assess(evidence).sentences
    assert "no prior" in sentences[0] and "N = 32" in sentences[0]
    assert sentences[1] == (
        "contrast 0.5: test accuracy 0.950 on clean inputs, 0.600 on shifted inputs with the "
        "training statistics; with BN re-estimated on N shifted examples N=1: 0.300, N=8: "
        "0.553, N=32: 0.705, N=256: 0.705."
    )
    figure = claim.draw(evidence)
    assert len(figure.axes) == 2 and [ax.get_title() for ax in figure.axes] == [
        "contrast 0.5", "noise 0.5"]  # fmt: skip


def test_a_run_without_shifted_numbers_leaves_its_seed_out(tmp_path: Path):
    folder = shift_adaptation("for").write(tmp_path)
    run = next(p for p in sorted((folder / "runs").iterdir()) if "noise" in p.name)
    summary = rundir.read_summary(run)
    assert summary is not None
    rundir.finish(run, summary.model_copy(update={"shifted": {}}))
    findings = CLAIMS["shift_adaptation"].assess(load_evidence(folder)).findings
    assert [f.interval.n for f in findings] == [len(SEEDS), len(SEEDS) - 1]


def test_flip_hand_edited_results(tmp_path: Path):
    """Supported by its runs; edited so that re-estimation scores lower, not supported."""
    out = tmp_path / "claims"
    folder = shift_adaptation("for").write(out)
    write_claims_report(out)
    assert _verdicts(out) == ["supported", "supported"]
    key = rundir.shifted_key("accuracy", VERDICT_EXAMPLES)
    for path in sorted((folder / "runs").glob("*/" + rundir.SUMMARY)):
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary["shifted"][key] = summary["shifted"]["test_accuracy@moving"] - 0.2
        path.write_text(json.dumps(summary), encoding="utf-8")
    write_claims_report(out)
    assert _verdicts(out) == ["not supported", "not supported"]
    assert (out / "figures" / "shift_adaptation.png").is_file()


def _verdicts(out: Path) -> list[str]:
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    claim = next(c for c in data["claims"] if c["id"] == "shift_adaptation")
    return [f["rule_verdict"] for f in claim["findings"]]  # the rule's, before Holm


def test_runs_csv_of_a_claim_tree_carries_the_shift(tmp_path: Path):
    folder = shift_adaptation("for").write(tmp_path)
    runs = pd.read_csv(folder / "runs.csv")
    assert set(runs["shift_kind"]) == {"noise", "contrast"}
    assert set(runs["adapt_examples"]) == {256} and runs["shift_prior_strength"].isna().all()
    assert (runs["shifted_test_metric"] == 0.6).all()
    assert math.isclose(runs["adapted_test_metric"].mean(), 0.6 + 0.105)
    assert set(runs[f"grid.{KIND}"]) == {"noise", "contrast"}
    assert set(runs[f"grid.{SEVERITY}"]) == {0.5}


def test_the_shipped_claim_shifts_its_runs():
    from bnbench.claims.plan import load_claim

    claim = CLAIMS["shift_adaptation"]
    full, quick = load_claim(claim, False), load_claim(claim, True)
    # 2 arms x 2 shifts... as declared: every run of the full and quick budget is a shifted one
    assert len(full.runs) == 4 * len(full.spec.seed_list)
    assert len(quick.runs) == 2 * len(quick.spec.seed_list)
    for run in quick.runs:
        shift = run.spec.evaluation.shift
        assert shift is not None and shift.severity == 0.5 and shift.prior_strength is None
        assert VERDICT_EXAMPLES in shift.adapt_examples


# --- what `bnbench train` prints of a shifted evaluation -----------------------------------------


def test_train_prints_no_re_estimation_for_a_network_without_bn(tmp_path, write_spec):
    # A network without BN has nothing to re-estimate: one shifted number, labelled so (the
    # summary once said "moving" for it, and the table printed "BN re-estimated on 32").
    spec = copy.deepcopy(TINY_SPEC)
    spec["model"]["norm"] = {"kind": "none"}
    spec["evaluation"] = {"shift": {**NOISE, "adapt_examples": [32]}}
    out = tmp_path / "r"
    result = runner.invoke(app, ["train", str(write_spec(spec)), "--out", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "re-estimated" not in text and "training BN statistics" not in text
    assert "no batch norm" in text
    (run_dir,) = [p.parent for p in out.rglob(rundir.SUMMARY)]
    summary = rundir.read_summary(run_dir)
    assert summary is not None and summary.bn_layers == 0


def test_train_prints_both_statistics_for_a_network_with_bn(tmp_path, write_spec):
    spec = copy.deepcopy(TINY_SPEC)
    spec["evaluation"] = {"shift": {**NOISE, "adapt_examples": [32]}}
    out = tmp_path / "r"
    result = runner.invoke(app, ["train", str(write_spec(spec)), "--out", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "training BN statistics" in text and "BN re-estimated on 32" in text
    assert "no batch norm" not in text
    (run_dir,) = [p.parent for p in out.rglob(rundir.SUMMARY)]
    summary = rundir.read_summary(run_dir)
    assert summary is not None and summary.bn_layers == 2 and summary.bn_statistics == "moving"
