"""The claims input_scaling and small_batch_examples and dropout_order's variance-shift finding:
every verdict reachable on hand-built results trees, the flip test, censored times as bounds,
the budget read from the runs, and the input batch-norm knob with its invalid values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from bnbench.claims.registry import CLAIMS
from bnbench.claims.report import write_claims_report
from bnbench.claims.rules_scaling import fastest
from bnbench.cli import app
from bnbench.config.schema import DatasetSpec, ModelSpec
from bnbench.demos.landscape import conditioning, training_split
from bnbench.model.build import build_model, parameter_counts
from bnbench.results import rundir
from bnbench.results.diagnostics import VARIANCE_SHIFT
from bnbench.results.files import write_csv, write_yaml
from tests.support.claims_scenarios import (
    AGAINST,
    BATCH,
    EFFECT,
    FOR,
    RATE,
    SCENARIOS,
    UNCLEAR,
    VERDICT,
    after_rows,
    dropout_order,
    input_scaling,
    small_batch_examples,
)
from tests.support.claims_tree import SEEDS, Tree
from tests.support.specs import TINY_SPEC, files_under

runner = CliRunner()


@pytest.mark.parametrize("effect", [FOR, AGAINST, UNCLEAR])
@pytest.mark.parametrize("claim_id", list(SCENARIOS))
def test_every_finding_reaches_each_verdict(tmp_path: Path, claim_id: str, effect: str):
    findings = CLAIMS[claim_id].assess(SCENARIOS[claim_id](effect).evidence(tmp_path)).findings
    assert len(findings) == 2
    assert [f.verdict for f in findings] == [VERDICT[effect]] * 2, [f.statistic for f in findings]


def test_input_scaling_takes_each_arm_at_its_fastest_rate(tmp_path: Path):
    evidence = input_scaling(FOR).evidence(tmp_path)
    raw, bn = fastest(evidence, "raw"), fastest(evidence, "bn")
    assert {f.rate for f in raw.values()} == {1e-5}  # 1e-4 diverged
    assert [f.time.steps for f in raw.values()] == [400] * 4
    assert {f.rate for f in bn.values()} == {1e-4}
    assert bn[0].time.steps == round(400 / 2)
    found = CLAIMS["input_scaling"].assess(evidence)
    assert found.findings[0].interval.estimate == pytest.approx(
        np.exp(np.mean([np.log(400 / round(400 / 2 ** (10 * d))) for d in EFFECT[FOR]]))
    )
    text = " ".join(found.sentences)
    assert "raw: 4/4 seeds reached the target, after 400 steps on average" in text
    assert "4 of 8 runs diverged (rates: 0.0001)" in text
    assert "raw / standardized steps = 8.00" in text  # 400 / 50 on every seed
    assert "Condition numbers: n/a" in text  # the hand-built configs name no dataset


def test_raw_never_reaching_the_target_is_a_lower_bound_that_supports(tmp_path: Path):
    tree = Tree("input_scaling", ["raw", "bn"], {RATE: [1e-5, 1e-4]})
    for seed in SEEDS:
        for rate in (1e-5, 1e-4):
            tree.add("raw", seed, {RATE: rate}, steps=None, total=2000, target=True)
            tree.add("bn", seed, {RATE: rate}, steps=300 + 10 * seed if rate == 1e-4 else None,
                     total=2000, target=True)  # fmt: skip
    findings = CLAIMS["input_scaling"].assess(tree.evidence(tmp_path)).findings
    assert len(findings) == 1  # no bn_hidden arm, no finding about it
    assert findings[0].verdict == "supported"
    assert findings[0].interval.high == float("inf") and set(findings[0].interval.bounds) == {
        "lower"
    }


def test_a_seed_missing_a_rate_is_left_out(tmp_path: Path):
    tree = input_scaling(FOR)
    tree.runs = [r for r in tree.runs if not (r["arm"] == "bn" and r["seed"] == 0
                                              and r["cell"][RATE] == 1e-5)]  # fmt: skip
    evidence = tree.evidence(tmp_path)
    assert sorted(fastest(evidence, "bn")) == [1, 2, 3]
    assert CLAIMS["input_scaling"].assess(evidence).findings[0].interval.n == 3


def test_input_scaling_reads_the_condition_numbers_from_the_training_data(tmp_path: Path):
    folder = input_scaling(FOR).write(tmp_path / "claims")
    dataset = {"name": "two_scale", "normalize": "standardize", "num_samples": 400}
    for config in sorted((folder / "runs").glob(f"*/{rundir.CONFIG}")):
        write_yaml(config, {"name": "x", "seed": 0, "dataset": dataset})
    write_claims_report(tmp_path / "claims")
    x, y = training_split(DatasetSpec.model_validate(dataset))
    assert x.shape == (288, 2)  # 80% of 400 for training, 10% of that held out
    expected = conditioning(x, y)
    assert expected.raw > 100 and expected.standardized < 2
    data = json.loads((tmp_path / "claims" / "claims.json").read_text(encoding="utf-8"))
    text = " ".join(data["claims"][0]["sentences"])
    assert f"condition number {expected.raw:,.1f} on raw features" in text
    assert f"{expected.standardized:.3f} on standardized ones" in text
    assert "R²" not in text  # the hand-built target is an accuracy, not the MSE
    assert (tmp_path / "claims" / "figures" / "input_scaling.png").stat().st_size > 20_000


def _edit_summaries(folder: Path, pattern: str, edit: Callable[[dict], None]) -> None:
    for path in sorted((folder / "runs").glob(f"{pattern}/{rundir.SUMMARY}")):
        summary = json.loads(path.read_text(encoding="utf-8"))
        edit(summary)
        path.write_text(json.dumps(summary), encoding="utf-8")


def _verdicts(out: Path, claim_id: str) -> list[str]:
    write_claims_report(out)
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    claim = next(c for c in data["claims"] if c["id"] == claim_id)
    return [f["verdict"] for f in claim["findings"]]


def test_flip_input_scaling(tmp_path: Path):
    out = tmp_path / "claims"
    folder = input_scaling(FOR).write(out)
    assert _verdicts(out, "input_scaling") == ["supported", "supported"]

    def slower(summary: dict) -> None:
        if summary["target"]["step"] is not None and summary["target"]["step"] < 400:
            summary["target"]["step"] = 1200  # BN now needs three times raw's steps

    _edit_summaries(folder, "bn*", slower)
    assert _verdicts(out, "input_scaling") == ["not supported", "not supported"]


def test_flip_small_batch_examples(tmp_path: Path):
    out = tmp_path / "claims"
    folder = small_batch_examples(FOR).write(out)
    assert _verdicts(out, "small_batch_examples") == ["supported", "supported"]

    def worse(summary: dict) -> None:
        summary["final"]["test_accuracy"] -= 0.5

    _edit_summaries(folder, "group-2-*", worse)  # group norm now collapses at batch 2
    assert _verdicts(out, "small_batch_examples") == ["not supported", "not supported"]


def test_flip_the_variance_shift_finding(tmp_path: Path):
    out = tmp_path / "claims"
    folder = dropout_order(FOR).write(out)
    assert _verdicts(out, "dropout_order")[1] == "supported"
    for path in sorted((folder / "runs").glob("dropout_after_bn-*/diagnostics/*.csv")):
        columns = list(VARIANCE_SHIFT.columns)
        write_csv(path, [dict(zip(columns, row, strict=True)) for row in after_rows(4.0)], columns)
    assert _verdicts(out, "dropout_order")[1] == "not supported"
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    text = " ".join(next(c for c in data["claims"] if c["id"] == "dropout_order")["sentences"])
    assert "Variance shift of block3_norm at the end" in text and "4.000 with dropout after" in text


def test_variance_shift_uses_the_layer_dropout_feeds_and_the_last_step(tmp_path: Path):
    tree = dropout_order(FOR)
    found = CLAIMS["dropout_order"].assess(tree.evidence(tmp_path))
    # |ln(before)| − |ln(after)| = (0.5 + 3d) − 0.5 = 3d, read at step 600, not step 0.
    assert found.findings[1].interval.estimate == pytest.approx(3 * np.mean(EFFECT[FOR]))
    assert "block3_norm" in found.findings[1].statistic


def test_dropout_order_without_the_probe_says_so(tmp_path: Path):
    tree = Tree("dropout_order", ["dropout_before_bn", "dropout_after_bn"])
    for seed in SEEDS:
        tree.add("dropout_before_bn", seed, test=0.85)
        tree.add("dropout_after_bn", seed, test=0.9 + 0.01 * seed)
    found = CLAIMS["dropout_order"].assess(tree.evidence(tmp_path))
    assert [f.verdict for f in found.findings] == ["supported", "inconclusive"]
    assert found.findings[1].interval.n == 0
    assert "No variance_shift diagnostic" in found.sentences[-1]


@pytest.mark.parametrize(
    ("totals", "words"),
    [((300, 300), "the same number of steps (300)"),
     ((1280, 40), "the same number of examples (2,560: 1,280 steps at batch 2 … 40 steps at "
                  "batch 64)")],
)  # fmt: skip
def test_small_batch_rule_names_the_budget_its_runs_had(tmp_path: Path, totals, words):
    tree = Tree("small_batch", ["batch", "group"], {BATCH: [2, 64]})
    for seed in SEEDS:
        for batch, total in zip((2, 64), totals, strict=True):
            tree.add("batch", seed, {BATCH: batch}, test=0.9, total=total)
            tree.add("group", seed, {BATCH: batch}, test=0.9, total=total)
    found = CLAIMS["small_batch"].assess(tree.evidence(tmp_path))
    assert found.sentences[0] == f"Every run has {words}; batch sizes [2, 64]."
    from bnbench.analysis.figures import plt

    fig = CLAIMS["small_batch"].draw(tree.evidence(tmp_path / "again"))
    title = fig.get_suptitle()
    plt.close(fig)
    assert title.endswith("number of steps" if totals[0] == totals[1] else "number of examples")


def test_small_batch_examples_config_fixes_epochs_and_scales_the_rate():
    from bnbench.claims.plan import load_claim

    full = load_claim(CLAIMS["small_batch_examples"], False)
    for run in full.runs:
        training = run.spec.training
        assert training.epochs == 2 and training.steps is None
        assert training.effective_learning_rate == pytest.approx(0.05 * training.batch_size / 32)
    quick = load_claim(CLAIMS["small_batch_examples"], True)
    assert len(quick.runs) == 12


def test_input_scaling_config_runs_every_arm_at_the_same_rates():
    from bnbench.claims.plan import load_claim

    full = load_claim(CLAIMS["input_scaling"], False)
    rates: dict[str, set[float]] = {}
    for run in full.runs:
        rates.setdefault(run.arm, set()).add(run.spec.training.learning_rate)
    assert set(rates) == {"raw", "standardized", "bn", "bn_hidden"}
    assert len({frozenset(r) for r in rates.values()}) == 1
    by_arm = {run.arm: run.spec for run in full.runs}
    assert by_arm["bn"].model.input_norm is not None and by_arm["raw"].model.input_norm is None
    assert by_arm["standardized"].dataset.normalize == "standardize"
    assert (
        by_arm["bn_hidden"].model.norm.kind == "batch" and by_arm["raw"].model.norm.kind == "none"
    )
    assert {run.spec.training.target_value for run in full.runs} == {30.0}


# --- the input batch-norm knob ----------------------------------------------------------------


def test_input_norm_standardizes_each_feature_with_the_batch_statistics():
    spec = ModelSpec.model_validate({"activation": "relu", "norm": {"kind": "none"},
                                     "input_norm": {"kind": "batch"},
                                     "blocks": [{"type": "dense", "units": 3}]})  # fmt: skip
    model = build_model(spec, (2,), 1, "regression")
    assert [layer.name for layer in model.layers][:2] == ["input_norm", "block1_dense"]
    # input_norm: gamma, beta (trainable) and the moving mean and variance of 2 features
    counts = parameter_counts(model)
    assert counts == {"trainable": 2 * 2 + (2 * 3 + 3) + (3 + 1), "non_trainable": 2 * 2}
    x = np.random.default_rng(0).uniform([1, 1], [10, 200], size=(64, 2)).astype("float32")
    out = keras.ops.convert_to_numpy(model.get_layer("input_norm")(x, training=True))
    expected = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    plain = build_model(spec.model_copy(update={"input_norm": None}), (2,), 1, "regression")
    assert "input_norm" not in [layer.name for layer in plain.layers]


def test_input_norm_on_images_normalizes_each_channel():
    spec = ModelSpec.model_validate({"input_norm": {"momentum": 0.9},
                                     "blocks": [{"type": "conv2d", "filters": 2},
                                                {"type": "global_avg_pool"}]})  # fmt: skip
    model = build_model(spec, (4, 4, 3), 2, "classification")
    layer = model.get_layer("input_norm")
    assert tuple(layer.moving_mean.shape) == (3,) and layer.momentum == 0.9


@pytest.mark.parametrize(
    ("input_norm", "message"),
    [
        ({"kind": "layer"}, "model.input_norm.kind"),
        ({"momentum": 1.0}, "model.input_norm.momentum"),
        ({"epsilon": 1e-50}, "must be representable in float32"),
        ({"placement": "after_activation"}, "model.input_norm.placement"),
    ],
)
def test_bad_input_norm_exits_2_and_writes_nothing(tmp_path: Path, input_norm, message):
    spec = {**TINY_SPEC, "model": {**TINY_SPEC["model"], "input_norm": input_norm}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(path), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert files_under(out) == []
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({**TINY_SPEC["model"], "input_norm": input_norm})


def test_bnbench_plot_draws_the_variance_shift(tmp_path: Path):
    folder = dropout_order(FOR).write(tmp_path / "claims")
    result = runner.invoke(app, ["plot", str(folder)])
    assert result.exit_code == 0, result.output
    assert (folder / "plots" / "variance_shift.png").stat().st_size > 10_000
    assert "variance shift (Li et al. 2019)" in (folder / "plots" / "index.md").read_text("utf-8")
