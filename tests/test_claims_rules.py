"""Claims' verdict rules on hand-built results trees: censored times as bounds, equivalence
tests, each arm at its fastest rate, the variance-shift probe, the budget a rule reads from its
runs, and the shipped ablations that feed them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bnbench.claims.catalog.input_scaling import fastest
from bnbench.claims.claim import QUICK_SEEDS
from bnbench.claims.plan import load_claim
from bnbench.claims.registry import CLAIMS
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
    assert {run.spec.training.target_value for run in full.runs} == {30.0}
