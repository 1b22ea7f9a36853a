"""small_batch_examples: batch norm is weak at small batches, also at a fixed number of examples
(epochs) (Wu & He 2018).

The runs of `small_batch` at a fixed number of epochs, with the learning rate scaled linearly
with the batch; its rule and figure read the budget from the runs, so they decide this claim too.
"""

from __future__ import annotations

from bnbench.claims.catalog.small_batch import BATCH, assess, draw
from bnbench.claims.claim import Claim, Reduction

CLAIM = Claim(
    id="small_batch_examples",
    statement="Batch norm is weak at small batches, also at a fixed number of examples (epochs).",
    source="Wu & He 2018",
    measures=(
        "test accuracy against batch size at a fixed number of epochs (learning rate scaled "
        "linearly with the batch), BN vs GN (vs LN)"
    ),
    runtime="full 35 s, quick 20 s",
    quick=Reduction(grid={BATCH: [2, 64]}, arms=["batch", "group"]),
    arms=("batch", "group"),
    assess=assess,
    draw=draw,
)
