"""Claims whose statistic used to be an artifact: a saturated accuracy gap, a margin smaller
than the test set's sampling error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bnbench.claims.registry import CLAIMS
from tests.support.claims_tree import SEEDS, Tree


def _probe(loss: float) -> dict[str, list[list[float]]]:
    """The training probe at the last step: train accuracy 1.000, as in every real run."""
    return {"train_inference_gap": [[600, loss, loss, 1.0, 1.0, 32]]}


def test_regularization_gap_moves_when_train_accuracy_saturates(tmp_path: Path):
    """Same test accuracy in both arms and train accuracy 1.000: an accuracy gap is 0 by
    construction; the loss gap sees no BN's larger test loss."""
    tree = Tree("regularization", ["no_bn", "bn", "dropout", "bn_dropout"])
    for seed in SEEDS:
        for arm, test_loss in (("no_bn", 0.60), ("bn", 0.40), ("dropout", 0.45),
                               ("bn_dropout", 0.40)):  # fmt: skip
            tree.add(arm, seed, test=0.90, final={"test_loss": test_loss + 0.01 * seed},
                     diagnostics=_probe(0.01))  # fmt: skip
    gap = CLAIMS["regularization"].assess(tree.evidence(tmp_path)).findings[0]
    assert "loss gap" in gap.statistic
    assert gap.verdict == "supported"
    assert gap.interval.estimate is not None and abs(gap.interval.estimate - 0.20) < 1e-9


def test_regularization_margin_includes_the_test_sets_sampling_error(tmp_path: Path):
    """BN 0.005 below dropout in every seed: within the 0.02 margin over seeds, but 360 test
    digits cannot tell 0.005 from 0.05, so the widened interval leaves it open."""
    tree = Tree("regularization", ["no_bn", "bn", "dropout", "bn_dropout"])
    for seed in SEEDS:
        jitter = 0.001 * seed
        for arm, test in (("no_bn", 0.85), ("bn", 0.845 + jitter), ("dropout", 0.85 + jitter),
                          ("bn_dropout", 0.85)):  # fmt: skip
            tree.add(arm, seed, test=test, diagnostics=_probe(0.01))
    margin = CLAIMS["regularization"].assess(tree.evidence(tmp_path)).findings[1]
    assert margin.verdict == "inconclusive"
    # z · sqrt(2 · 0.85 · 0.15 / 360) ≈ 0.052 on each side of the seeds' tight interval
    assert margin.interval.low < -0.05 and margin.interval.high > 0.04


def _with_histories(tree: Tree, root: Path, every: int, total: int) -> Path:
    """Write `tree`, then give each run a history evaluated every `every` steps."""
    folder = tree.write(root)
    rows = "".join(f"{step},0,0,0.0,0.5,0.5,0.5,0.5\n" for step in range(every, total + 1, every))
    header = ("step,epoch,examples_seen,wall_seconds,train_loss,train_accuracy,val_loss,"
              "val_accuracy\n")  # fmt: skip
    for run in folder.glob("runs/*/"):
        (run / "history.csv").write_text(header + rows)
    return folder


def test_a_hit_at_the_first_evaluation_is_interval_censored(tmp_path: Path):
    """BN reaches the target at the first evaluation (step 50: somewhere in (0, 50]), no BN at
    the second (in (50, 100]): a ratio of 2 at the hitting steps, but anywhere from 1 to ∞."""
    from bnbench.claims.evidence import load_evidence
    from bnbench.claims.measures import hits, resolution

    tree = Tree("faster_training", ["no_bn", "bn_moving", "bn_recalibrated"])
    for seed in SEEDS:
        tree.add("no_bn", seed, steps=100, target=True)
        tree.add("bn_moving", seed, steps=50, target=True)
        tree.add("bn_recalibrated", seed, steps=50, target=True)
    evidence = load_evidence(_with_histories(tree, tmp_path, every=50, total=400))
    first = hits(evidence, "bn_moving")[SEEDS[0]]
    assert (first.previous, first.step) == (0, 50)
    assert hits(evidence, "no_bn")[SEEDS[0]].previous == 50
    assert resolution(hits(evidence, "no_bn"), hits(evidence, "bn_moving")) == 50
    assessment = CLAIMS["faster_training"].assess(evidence)
    found = assessment.findings[0]
    assert found.interval.estimate is not None and abs(found.interval.estimate - 2.0) < 1e-9
    assert found.interval.low <= 1.0 and found.interval.high == float("inf")
    assert found.verdict == "inconclusive"
    assert any("within 50 steps" in sentence for sentence in assessment.sentences)


def test_an_interval_censored_speedup_is_tested_and_adjusted_with_the_family():
    """A speedup finding carries its seeds' conservative ends, so Holm and the halves see it:
    six seeds where BN is 4x faster are one sign test (p = 1/32), not a finding that escapes
    the correction with no p-value."""
    from bnbench.analysis.targets import Hit
    from bnbench.claims.judging import finding_p_value
    from bnbench.claims.measures import speedup_finding

    seeds = range(6)
    reference = {seed: Hit(400, 380, 1000) for seed in seeds}
    arm = {seed: Hit(100, 80, 1000) for seed in seeds}
    found = speedup_finding("bn", "steps, no BN / BN", arm, reference)
    assert found.verdict == "supported" and found.side == "above" and found.scale == "exp"
    assert len(found.values) == 6
    p = finding_p_value(found)
    assert p is not None and abs(p - 1 / 32) < 1e-12


def test_slope_ends_span_every_slope_the_evaluation_intervals_allow():
    """log2 steps against log2 depth at depths 2 and 8: weights -1/2 and +1/2."""
    import math

    from bnbench.analysis.targets import Hit
    from bnbench.claims.measures import slope_ends

    low, high = slope_ends([(2, Hit(100, 80, 800)), (8, Hit(400, 380, 800))])
    assert low == pytest.approx(0.5 * math.log2(380 / 100))  # shallow late, deep early
    assert high == pytest.approx(0.5 * math.log2(400 / 80))
    first = slope_ends([(2, Hit(20, 0, 800)), (8, Hit(40, 20, 800))])  # shallow in (0, 20]
    assert first == (0.0, math.inf)
    censored = slope_ends([(2, Hit(100, 80, 800)), (8, Hit(None, 800, 800))])  # deep > 800
    assert censored[0] == pytest.approx(0.5 * math.log2(800 / 100)) and censored[1] == math.inf
    # the middle of a symmetric grid has weight 0: its censoring opens nothing
    middle = slope_ends([(2, Hit(100, 100, 800)), (4, Hit(None, 800, 800)),
                         (8, Hit(400, 400, 800))])  # fmt: skip
    assert middle == pytest.approx((1.0, 1.0))
    assert slope_ends([(2, Hit(100, 80, 800))]) == (-math.inf, math.inf)


def test_depth_treats_a_hit_at_the_first_evaluation_as_an_interval(tmp_path: Path):
    """BN reaches the target at the first evaluation at depth 2 (in (0, 20]) and by step 40 or
    60 at depth 8: at the hitting steps its slope is 0.5-0.8, below no BN's ~1, but a time in
    (0, 20] allows any steeper slope, so "BN removes the penalty" cannot be decided."""
    from bnbench.claims.evidence import load_evidence

    depth = "model.blocks.0.repeat"
    tree = Tree("depth", ["no_bn", "bn"], {depth: [2, 8]})
    for seed in SEEDS:
        times = (("no_bn", 100, 400 + 20 * seed), ("bn", 20, 40 + 20 * (seed % 2)))
        for arm, shallow, deep in times:
            for x, steps in ((2, shallow), (8, deep)):
                tree.add(arm, seed, {depth: x}, steps=steps, total=800, target=True)
    evidence = load_evidence(_with_histories(tree, tmp_path, every=20, total=800))
    assessment = CLAIMS["depth"].assess(evidence)
    without, removes = assessment.findings
    assert without.verdict == "supported"  # no BN's hits are mid-curve: both ends finite
    assert 0.5 * np.log2(380 / 100) <= without.interval.low < 1.0 < without.interval.high < 1.5
    at_hits = [v.value for v in removes.values if v.bound == "exact"]
    assert at_hits == []  # every seed's difference is open below: BN's slope open above
    assert removes.interval.low == -np.inf and removes.verdict == "inconclusive"
    assert removes.interval.estimate is not None and removes.interval.estimate > 0.2
    assert any("within 20 steps" in s and "slope's interval" in s for s in assessment.sentences)


def test_input_scaling_treats_a_hit_at_the_first_evaluation_as_an_interval(tmp_path: Path):
    """BN at its fastest rate hits at the first evaluation (step 50: in (0, 50]), raw inputs
    at step 400 (in (350, 400]): a ratio of 8 at the hitting steps, anywhere from 7 to ∞."""
    from bnbench.claims.evidence import load_evidence

    rate = "training.learning_rate"
    tree = Tree("input_scaling", ["raw", "bn"], {rate: [1e-5, 1e-4]})
    for seed in SEEDS:
        tree.add("raw", seed, {rate: 1e-5}, steps=400, total=2000, target=True)
        tree.add("raw", seed, {rate: 1e-4}, status="diverged", test=None, total=2000,
                 target=True)  # fmt: skip
        tree.add("bn", seed, {rate: 1e-4}, steps=50, total=2000, target=True)
        tree.add("bn", seed, {rate: 1e-5}, steps=300, total=2000, target=True)
    evidence = load_evidence(_with_histories(tree, tmp_path, every=50, total=2000))
    assessment = CLAIMS["input_scaling"].assess(evidence)
    (found,) = assessment.findings
    assert found.interval.estimate is not None and abs(found.interval.estimate - 8.0) < 1e-9
    assert found.interval.high == float("inf") and found.verdict == "supported"
    assert [round(float(np.exp(v.value)), 9) for v in found.values] == [7.0] * len(SEEDS)
    assert any("within 50 steps" in s for s in assessment.sentences)


def test_stability_of_an_exact_test_is_leave_one_out_when_halves_cannot_decide():
    """Ten seeds where BN is 4x faster: a sign test of 5 seeds (a half) cannot decide
    (p = 1/16), so halves would mark every such finding "(unstable)" whatever the data; its
    stability is leave-one-out (9 seeds, p = 1/256)."""
    from bnbench.analysis.replication import replicate
    from bnbench.analysis.targets import Hit
    from bnbench.claims.judging import judge, rederive, replication_method
    from bnbench.claims.measures import speedup_finding

    claim = CLAIMS["faster_training"]
    reference = {seed: Hit(400, 380, 1000) for seed in range(10)}
    arm = {seed: Hit(100, 80, 1000) for seed in range(10)}
    clear = speedup_finding("bn", "steps, no BN / BN", arm, reference)
    judged = judge([(claim, clear)])[0]
    assert judged.verdict == "supported" and judged.stability == "replicates 10/10 leave-one-out"
    halves = replicate(list(clear.values), lambda part: rederive(clear, part))
    assert halves.text() == "replicates 0/2 halves"  # what halves said of 10 agreeing seeds
    slower = {**arm, 3: Hit(900, 880, 1000)}  # one seed where BN is slower: 9 of 10
    found = speedup_finding("bn", "steps, no BN / BN", slower, reference)
    judged = judge([(claim, found)])[0]
    assert judged.verdict == "supported" and judged.stability == "replicates 10/10 leave-one-out"
    assert replication_method(12, "censored") == "halves"
    assert replication_method(10, "continuous") == "halves"
    assert replication_method(5, "continuous") == "leave_one_out"
