"""Why a short BN run's test score can look broken, said in one line.

Batch normalization evaluates with moving averages of the batch statistics. With Keras'
momentum of 0.99 they need a few hundred steps to move from their start (mean 0, variance 1)
to the data's statistics; a run of a few dozen steps is evaluated with statistics that are
mostly the start, and its test accuracy can sit near chance while the same weights in training
mode (batch statistics) score well. That is the run's length, not a bug.
"""

from __future__ import annotations

from bnbench.config.registries import lower_is_better
from bnbench.results.rundir import RunSummary

# An accuracy gap this large (or a loss this many times larger) is not noise between two
# evaluations of the same weights.
ACCURACY_GAP = 0.2
LOSS_RATIO = 2.0


def warmup_note(summary: RunSummary) -> str | None:
    """One line when the moving statistics, not the weights, explain a poor score; else None.

    Only for a run whose BN layers were evaluated with moving statistics and that recorded the
    training-mode evaluation (`evaluation.train_mode_metrics`) beside it.
    """
    if summary.status != "completed" or summary.bn_statistics != "moving":
        return None
    name = summary.metric or "loss"
    split = "test" if f"test_train_mode_{name}" in summary.final else "val"
    moving = summary.final.get(f"{split}_{name}")
    batch = summary.final.get(f"{split}_train_mode_{name}")
    if moving is None or batch is None:
        return None
    lower = lower_is_better(name)
    if (moving <= LOSS_RATIO * batch) if lower else (batch - moving < ACCURACY_GAP):
        return None
    return (
        f"note: {'validation' if split == 'val' else split} {name} is {moving:.2f} with the BN "
        "moving statistics and "
        f"{batch:.2f} in training mode: in {summary.steps_done} steps the moving statistics "
        "have not warmed up (momentum 0.99 needs a few hundred); evaluate with "
        "`evaluation.bn_statistics: recalibrated` to re-estimate them after training"
    )
