"""Hand-built results trees for the claims input_scaling and small_batch_examples, and for
dropout_order with its variance-shift rows: one scenario builder per claim whose effect drives
every finding of the claim (the same effects as `tests/test_claims_rules.py`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.results import rundir
from bnbench.results.diagnostics import VARIANCE_SHIFT
from bnbench.results.files import write_csv
from bnbench.results.layout import run_path
from tests.support.claims_tree import SEEDS, Tree

FOR, AGAINST, UNCLEAR = "for", "against", "unclear"
EFFECT = {FOR: (0.10, 0.12, 0.09, 0.11), AGAINST: (-0.10, -0.12, -0.09, -0.11),
          UNCLEAR: (0.05, -0.06, 0.04, -0.03)}  # fmt: skip
VERDICT = {FOR: "supported", AGAINST: "not supported", UNCLEAR: "inconclusive"}
RATE = "training.learning_rate"
BATCH = "training.batch_size"


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


# --- scenarios: one per claim, the effect drives every finding --------------------------------


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


SCENARIOS: dict[str, Callable[[str], Tree]] = {
    "input_scaling": input_scaling,
    "small_batch_examples": small_batch_examples,
    "dropout_order": dropout_order,
}
