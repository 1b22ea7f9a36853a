"""Claims' verdict rules on hand-built results trees: censored times as bounds, equivalence
tests, each arm at its fastest rate, the variance-shift probe, the budget a rule reads from its
runs, and the shipped ablations that feed them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bnbench.analysis.targets import Hit
from bnbench.claims.catalog.input_scaling import derive, fastest
from bnbench.claims.claim import QUICK_SEEDS
from bnbench.claims.plan import load_claim
from bnbench.claims.registry import CLAIMS
from bnbench.config.schema import DatasetSpec
from bnbench.demos.landscape import conditioning, training_split
from tests.support.claims_scenarios import (
    BATCH,
    EFFECT,
    FOR,
    RATE,
    dropout_order,
    input_scaling,
    percentile_rows,
)
from tests.support.claims_tree import SEEDS, Tree


@pytest.mark.parametrize(("bn_drift", "expected"), [(1.0, "supported"), (0.2, "not supported")])
def test_santurkar_phrasing_is_an_equivalence_test(tmp_path: Path, bn_drift, expected):
    tree = Tree("covariate_shift", ["no_bn", "bn"])
    for seed in SEEDS:
        tree.add("no_bn", seed, diagnostics=percentile_rows(1.0 + 0.01 * seed))
        tree.add("bn", seed, diagnostics=percentile_rows(bn_drift + 0.012 * seed))
    findings = CLAIMS["covariate_shift"].assess(tree.evidence(tmp_path)).findings
    assert findings[1].verdict == expected
    assert findings[1].p_value is not None


def test_santurkar_reads_the_drift_at_bn_input_not_its_standardized_output(tmp_path: Path):
    """BN's output barely moves (standardized by construction) while its input drifts as much
    as the no-BN pre-activation: Ioffe's reading (BN's output) is supported, and so is
    Santurkar's (no reduction at BN's input)."""
    tree = Tree("covariate_shift", ["no_bn", "bn"])
    for seed in SEEDS:
        tree.add("no_bn", seed, diagnostics=percentile_rows(1.0 + 0.01 * seed))
        tree.add("bn", seed, diagnostics=percentile_rows(0.05 + 0.01 * seed, 1.0 + 0.012 * seed))
    findings = CLAIMS["covariate_shift"].assess(tree.evidence(tmp_path)).findings
    assert [f.verdict for f in findings] == ["supported", "supported"]
    assert "BN's input" in findings[1].statistic


def test_censored_reference_gives_a_lower_bound_that_supports(tmp_path: Path):
    tree = Tree("faster_training", ["no_bn", "bn_moving", "bn_recalibrated"])
    for seed in SEEDS:
        tree.add("no_bn", seed, steps=None, target=True)  # never reached 0.9 within 400 steps
        tree.add("bn_moving", seed, steps=150 + 10 * seed, target=True)
        tree.add("bn_recalibrated", seed, steps=60 + 5 * seed, target=True)
    found = CLAIMS["faster_training"].assess(tree.evidence(tmp_path)).findings[0]
    assert found.verdict == "supported"
    assert found.interval.bounds and found.interval.high == float("inf")
    assert found.interval.estimate is not None and found.interval.estimate > 400 / 80


def test_largest_working_rate_bounds_at_the_grid_ends(tmp_path: Path):
    """BN works up to the largest rate (a lower bound); without BN every rate diverges (an
    upper bound below the grid): their difference is a lower bound, and supports the claim."""
    rates = [0.1, 1.0, 10.0]
    tree = Tree("lr_range", ["no_bn", "bn"], {"training.learning_rate": rates})
    for seed in SEEDS:
        for rate in rates:
            cell = {"training.learning_rate": rate}
            tree.add("bn", seed, cell, test=0.95)
            tree.add("no_bn", seed, cell, status="diverged", test=None, val=0.1)
    found = CLAIMS["lr_range"].assess(tree.evidence(tmp_path)).findings[1]
    assert found.verdict == "supported"
    assert set(found.interval.bounds) == {"lower"} and found.interval.estimate == 2.0


def test_input_scaling_takes_each_arm_at_its_fastest_rate(tmp_path: Path):
    evidence = input_scaling(FOR).evidence(tmp_path)
    raw, bn = fastest(evidence, "raw"), fastest(evidence, "bn")
    assert {f.rate for f in raw.values()} == {1e-5}  # 1e-4 diverged
    assert [f.time.steps for f in raw.values()] == [400] * len(SEEDS)
    assert {f.rate for f in bn.values()} == {1e-4}
    assert bn[0].time.steps == round(400 / 2)
    found = CLAIMS["input_scaling"].assess(evidence)
    assert found.findings[0].interval.estimate == pytest.approx(
        np.exp(np.mean([np.log(400 / round(400 / 2 ** (10 * d))) for d in EFFECT[FOR]]))
    )
    text = " ".join(found.sentences)
    n = len(SEEDS)
    assert f"raw: {n}/{n} seeds reached the target, after 400 steps on average" in text
    assert f"{n} of {2 * n} runs diverged (rates: 0.0001)" in text
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
    assert sorted(fastest(evidence, "bn")) == list(SEEDS[1:])
    assert CLAIMS["input_scaling"].assess(evidence).findings[0].interval.n == len(SEEDS) - 1


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

    full = load_claim(CLAIMS["small_batch_examples"], False)
    for run in full.runs:
        training = run.spec.training
        assert training.epochs == 2 and training.steps is None
        assert training.effective_learning_rate == pytest.approx(0.05 * training.batch_size / 32)
    quick = load_claim(CLAIMS["small_batch_examples"], True)
    assert len(quick.runs) == 4 * QUICK_SEEDS  # 2 arms x 2 batch sizes x the quick seeds


def test_input_scaling_config_runs_every_arm_at_the_same_rates():

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
    # No absolute target: it is derived from the histories (test_input_scaling_derives_...).
    assert {run.spec.training.target_value for run in full.runs} == {None}
    assert {run.spec.training.target_metric for run in full.runs} == {None}


TWO_SCALE = {"name": "two_scale", "num_samples": 400}
EVALUATIONS = list(range(50, 401, 50))


def _mse(hit: int | None, plateau: float, diverged: bool = False) -> dict[str, list[float]]:
    """A validation MSE history: far above any target until step `hit`, `plateau` from there
    (NaN after the first evaluation when diverged)."""
    if diverged:
        values = [1e6] + [float("nan")] * (len(EVALUATIONS) - 1)
    else:
        values = [1000.0 if hit is None or s < hit else plateau for s in EVALUATIONS]
    return {"step": list(EVALUATIONS), "val_loss": values}


@pytest.mark.parametrize(("bn_reach", "verdict"), [(50, "supported"), (400, "not supported")])
def test_input_scaling_derives_a_log_scale_target_from_the_histories(tmp_path: Path, bn_reach,
                                                                      verdict):  # fmt: skip
    """No recorded target: 90% of the way in log MSE from Var(y) to the slower arm's plateau at
    its best rate (BN's 4.0 at 1e-4, not its 8.0 at 1e-5), the same for every arm."""
    tree = Tree("input_scaling", ["raw", "bn"], {RATE: [1e-5, 1e-4]},
                config={"dataset": TWO_SCALE})  # fmt: skip
    for seed in SEEDS:
        slow, fast = {RATE: 1e-5}, {RATE: 1e-4}
        tree.add("raw", seed, slow, total=400, history=_mse(200 + 50 * (seed % 2), 1.0))
        tree.add("raw", seed, fast, status="diverged", test=None, total=400,
                 history=_mse(None, 0.0, diverged=True))  # fmt: skip
        tree.add("bn", seed, fast, total=400, history=_mse(bn_reach, 4.0))
        tree.add("bn", seed, slow, total=400, history=_mse(400, 8.0))
    evidence = tree.evidence(tmp_path)
    assessment = CLAIMS["input_scaling"].assess(evidence)
    data = training_split(DatasetSpec.model_validate(TWO_SCALE))
    variance = conditioning(*data).target_variance
    value = variance * (4.0 / variance) ** 0.9
    text = " ".join(assessment.sentences)
    assert f"Target val_loss {value:.3g} = {variance:.3g} × (plateau 4 / {variance:.3g})^0.9 " \
           "(log scale) of bn" in text  # fmt: skip
    assert "each arm's plateau taken at its best rate (raw 1e-05, bn 0.0001)" in text
    assert f"the target is an R² of {1 - value / variance:.4f}" in text
    assert "known to within 50 steps" in text
    (found,) = assessment.findings
    assert found.verdict == verdict
    if bn_reach == 50:  # BN hit at the first evaluation: in (0, 50], the ratio open above
        target = derive(evidence).target
        assert target is not None and target.value == pytest.approx(value)
        assert fastest(evidence, "bn", target)[0].hit == Hit(50, 0, 400)
        assert found.interval.high == float("inf") and found.interval.low > 1.0
