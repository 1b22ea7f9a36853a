"""Hand-built results trees of every claim, one scenario per claim, found by the claim's id.

A scenario is a function named after its claim (`@scenario` files it in `SCENARIOS` under its
name): given an effect (FOR, AGAINST, UNCLEAR) it returns a `Tree` whose data carry that effect,
so a test can set the effect and check the verdict. Adding a claim adds one function here;
`tests/test_claims_catalog.py` checks that every claim has one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.results import rundir
from bnbench.results.diagnostics import VARIANCE_SHIFT
from bnbench.results.files import write_csv
from bnbench.results.layout import run_path
from tests.support import shift_tree
from tests.support.claims_tree import SEEDS, Tree

FOR, AGAINST, UNCLEAR = "for", "against", "unclear"
# Per-seed effects: clearly positive, clearly negative, and centred on zero with noise.
EFFECT = {FOR: (0.10, 0.12, 0.09, 0.11, 0.13, 0.08),
          AGAINST: (-0.10, -0.12, -0.09, -0.11, -0.13, -0.08),
          UNCLEAR: (0.05, -0.06, 0.04, -0.03, 0.01, -0.02)}  # fmt: skip
VERDICT = {FOR: "supported", AGAINST: "not supported", UNCLEAR: "inconclusive"}
RATE = "training.learning_rate"
BATCH = "training.batch_size"
Scenario = Callable[[str], Tree]
SCENARIOS: dict[str, Scenario] = {}


def scenario(build: Scenario) -> Scenario:
    """File `build` in `SCENARIOS` under its name, which is its claim's id."""
    SCENARIOS[build.__name__] = build
    return build


class ProbedTree(Tree):
    """A `Tree` whose runs may also carry `variance_shift` rows (the recorder's columns)."""

    def _write_run(self, folder: Path, run: dict[str, Any]) -> None:
        shift = run["diagnostics"].get("variance_shift")
        rest = {k: v for k, v in run["diagnostics"].items() if k != "variance_shift"}
        super()._write_run(folder, {**run, "diagnostics": rest})
        if shift is not None:
            run_id = f"{run['arm']}-{'-'.join(str(v) for v in run['cell'].values())}-s{run['seed']}"
            path = rundir.diagnostics_path(run_path(folder, run_id), "variance_shift")
            rows = [dict(zip(VARIANCE_SHIFT.columns, row, strict=True)) for row in shift]
            write_csv(path, rows, VARIANCE_SHIFT.columns)


@scenario
def faster_training(effect: str) -> Tree:
    tree = Tree("faster_training", ["no_bn", "bn_moving", "bn_recalibrated"])
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        ratio = 2 ** (10 * d)  # BN's speedup: 2 for an effect of 0.1
        tree.add("no_bn", seed, steps=200, target=True)
        for arm in ("bn_moving", "bn_recalibrated"):
            tree.add(arm, seed, steps=round(200 / ratio), target=True)
    return tree


@scenario
def lr_range(effect: str) -> Tree:
    rates = [0.01, 0.1, 1.0, 10.0]
    tree = Tree("lr_range", ["no_bn", "bn"], {"training.learning_rate": rates})
    widths = {FOR: ((2, 0),) * 6, AGAINST: ((0, 2),) * 6, UNCLEAR: ((1, 0), (0, 1)) * 3}
    for seed, (bn, none) in zip(SEEDS, widths[effect], strict=True):
        for arm, width in (("bn", bn), ("no_bn", none)):
            for i, rate in enumerate(rates):
                good = 1 <= i <= 1 + width  # the width in decades of good rates from 0.1 up
                tree.add(arm, seed, {"training.learning_rate": rate}, test=0.95 if good else 0.4)
    return tree


@scenario
def init_scale(effect: str) -> Tree:
    scales = [0.01, 0.1, 1.0]
    tree = Tree("init_scale", ["no_bn", "bn"], {"model.initializer.stddev": scales})
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        for j, scale in enumerate(scales):
            # The middle scale is better by 3|d|: without BN when d > 0, with BN when d < 0.
            bump = 3 * abs(d) * (j % 2)
            cell = {"model.initializer.stddev": scale}
            tree.add("no_bn", seed, cell, test=0.6 + (bump if d > 0 else 0.001 * j))
            tree.add("bn", seed, cell, test=0.6 + (bump if d < 0 else 0.001 * j))
    return tree


def gap_rows(train: float) -> dict[str, list[list[float]]]:
    return {"train_inference_gap": [[600, 0.1, 0.1, train, train, 32]]}


@scenario
def regularization(effect: str) -> Tree:
    tree = Tree("regularization", ["no_bn", "bn", "dropout", "bn_dropout"])
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        tree.add("no_bn", seed, test=0.85, diagnostics=gap_rows(1.0))
        tree.add("bn", seed, test=0.85 + d, diagnostics=gap_rows(1.0))
        tree.add("dropout", seed, test=0.85, diagnostics=gap_rows(0.95))
        tree.add("bn_dropout", seed, test=0.9, diagnostics=gap_rows(0.95))
    return tree


def gradient_rows(first: float) -> dict[str, list[list[object]]]:
    rows = []
    for step in (0, 30, 60):
        rows += [[step, f"block{i}_dense", first ** ((4 - i) / 3)] for i in (1, 2, 3, 4)]
        rows.append([step, "head", 1.0])
    return {"gradient_norms": rows}


@scenario
def vanishing_gradients(effect: str) -> Tree:
    tree = Tree("vanishing_gradients", ["no_bn", "bn"])
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        tree.add("no_bn", seed, diagnostics=gradient_rows(1.0))
        tree.add("bn", seed, diagnostics=gradient_rows(10 ** (30 * d)))
    return tree


@scenario
def depth(effect: str) -> Tree:
    depths = [2, 8]
    tree = Tree("depth", ["no_bn", "bn"], {"model.blocks.0.repeat": depths})
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        for arm, slope in (("no_bn", 10 * d), ("bn", 0.0)):
            for x in depths:
                steps = round(100 * (x / 2) ** slope)
                tree.add(arm, seed, {"model.blocks.0.repeat": x}, steps=steps, total=10_000,
                         target=True)  # fmt: skip
    return tree


@scenario
def small_batch(effect: str) -> Tree:
    tree = Tree("small_batch", ["batch", "group"], {"training.batch_size": [2, 64]})
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        tree.add("batch", seed, {"training.batch_size": 2}, test=0.8 - 3 * d)
        tree.add("batch", seed, {"training.batch_size": 64}, test=0.95)
        tree.add("group", seed, {"training.batch_size": 2}, test=0.8)
        tree.add("group", seed, {"training.batch_size": 64}, test=0.95)
    return tree


@scenario
def placement(effect: str) -> Tree:
    tree = Tree("placement", ["before", "after"], {"model.activation": ["sigmoid", "relu"]})
    relu = {FOR: (0.001, -0.002, 0.0015, 0.0, -0.001, 0.0005),
            AGAINST: (0.1, 0.12, 0.09, 0.11, 0.13, 0.08),
            UNCLEAR: (0.03, -0.03, 0.04, -0.01, 0.03, -0.02)}  # fmt: skip
    for seed, d, r in zip(SEEDS, EFFECT[effect], relu[effect], strict=True):
        tree.add("before", seed, {"model.activation": "sigmoid"}, test=0.8 + d)
        tree.add("after", seed, {"model.activation": "sigmoid"}, test=0.8)
        tree.add("before", seed, {"model.activation": "relu"}, test=0.9 + r)
        tree.add("after", seed, {"model.activation": "relu"}, test=0.9)
    return tree


def percentile_rows(drift: float) -> dict[str, list[list[object]]]:
    start = [0, "block3", "pooled", -1.0, 0.0, 1.0]
    end = [400, "block3", "pooled", -1.0 + drift, drift, 1.0 + drift]
    return {"activation_percentiles": [start, end]}


@scenario
def covariate_shift(effect: str) -> Tree:
    tree = Tree("covariate_shift", ["no_bn", "bn"])
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        tree.add("no_bn", seed, diagnostics=percentile_rows(1.0))
        tree.add("bn", seed, diagnostics=percentile_rows(1.0 - 5 * d))
    return tree


@scenario
def train_inference_gap(effect: str) -> Tree:
    grid = {"model.norm.momentum": [0.9, 0.999], "training.batch_size": [32]}
    tree = Tree("train_inference_gap", ["bn"], grid)
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        for momentum, gap in ((0.9, 0.02), (0.999, 0.02 + d)):
            cell = {"model.norm.momentum": momentum, "training.batch_size": 32}
            tree.add("bn", seed, cell, val=0.9, final={"val_train_mode_accuracy": 0.9 + gap})
    return tree


@scenario
def input_scaling(effect: str) -> Tree:
    """BN's speedup over raw inputs is 2**(10 d) at its fastest rate; raw diverges at 1e-4."""
    tree = Tree("input_scaling", ["raw", "standardized", "bn", "bn_hidden"],
                {RATE: [1e-5, 1e-4]})  # fmt: skip
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        ratio = 2 ** (10 * d)
        fast, slow = {RATE: 1e-4}, {RATE: 1e-5}
        tree.add("raw", seed, slow, steps=400, total=2000, target=True)
        tree.add("raw", seed, fast, status="diverged", test=None, total=2000, target=True)
        tree.add("standardized", seed, fast, steps=50, total=2000, target=True)
        tree.add("standardized", seed, slow, steps=800, total=2000, target=True)
        for arm in ("bn", "bn_hidden"):
            tree.add(arm, seed, fast, steps=round(400 / ratio), total=2000, target=True)
            tree.add(arm, seed, slow, steps=1500, total=2000, target=True)
    return tree


@scenario
def small_batch_examples(effect: str) -> Tree:
    """Steps scale as 1 / batch (a fixed number of examples); BN loses 3 d more at batch 2."""
    tree = Tree("small_batch_examples", ["batch", "group"], {BATCH: [2, 64]})
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        for batch, total in ((2, 1280), (64, 40)):
            test = 0.8 - 3 * d if batch == 2 else 0.95
            tree.add("batch", seed, {BATCH: batch}, test=test, total=total)
            tree.add("group", seed, {BATCH: batch}, test=0.8 if batch == 2 else 0.95, total=total)
    return tree


def shift_rows(before: float) -> list[list[Any]]:
    """variance_shift rows of a dropout_before_bn run: block3_norm fed by dropout (ratio
    `before` at the end) and block2_norm not."""
    return [[0, "block2_norm", False, 3.0, 3.0, 1.0, 64],
            [0, "block3_norm", True, 9.0, 9.0, 1.0, 64],
            [600, "block2_norm", False, 1.0, 1.0, 1.0, 64],
            [600, "block3_norm", True, before, before, 1.0, 64]]  # fmt: skip


def after_rows(ratio: float) -> list[list[Any]]:
    """variance_shift rows of a dropout_after_bn run: no BN is fed by dropout."""
    return [[0, "block3_norm", False, 5.0, 5.0, 1.0, 64],
            [600, "block3_norm", False, ratio, ratio, 1.0, 64]]  # fmt: skip


@scenario
def dropout_order(effect: str) -> Tree:
    """Test accuracy after − before BN is d; |ln ratio| before − after is 3 d."""
    tree = ProbedTree("dropout_order", ["dropout_before_bn", "dropout_after_bn"])
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        tree.add(
            "dropout_before_bn",
            seed,
            test=0.85,
            diagnostics={"variance_shift": shift_rows(float(np.exp(0.5 + 3 * d)))},
        )
        tree.add("dropout_after_bn", seed, test=0.85 + d,
                 diagnostics={"variance_shift": after_rows(float(np.exp(0.5)))})  # fmt: skip
    return tree


@scenario
def ghost_batch(effect: str) -> Tree:
    """Paired test accuracy ghost BN − BN is the effect."""
    tree = Tree("ghost_batch", ["bn", "ghost_bn"])
    for seed, d in zip(SEEDS, EFFECT[effect], strict=True):
        tree.add("bn", seed, test=0.85)
        tree.add("ghost_bn", seed, test=0.85 + d)
    return tree


@scenario
def shift_adaptation(effect: str) -> Tree:
    """Re-estimating BN on 32 shifted examples moves each seed's shifted accuracy by the effect
    (`tests.support.shift_tree`)."""
    return shift_tree.shift_adaptation(effect)
