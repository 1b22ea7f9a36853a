"""What `plan` says about how the runs of a grid over batch sizes are budgeted."""

from __future__ import annotations

from bnbench.config.ablation import Ablation


def budget_warnings(ablation: Ablation) -> list[str]:
    """What to say about how runs of different batch sizes are budgeted, before they train.

    A grid (or arms) over `training.batch_size` silently fixes two more choices. An epoch budget
    gives every run the same examples, so the step counts differ by the batch ratio (batch 2
    takes 128× the steps of batch 256); a step budget gives every run the same updates instead.
    And one learning rate for every batch size makes the step size per example differ. Both are
    legitimate; a reader of the results needs to know which was chosen.

    Args:
        ablation: the loaded, expanded ablation.

    Returns:
        One message per concern; empty when the batch size does not vary across runs.
    """
    trainings = [run.spec.training for run in ablation.runs]
    sizes = sorted({t.batch_size for t in trainings})
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    varies = f"training.batch_size varies from {small} to {large}"
    messages = []
    epochs = sorted({t.epochs for t in trainings if t.steps is None}, key=lambda e: e or 0.0)
    if epochs:
        # Schedule.from_spec's default length when neither epochs nor steps is given.
        budget = ", ".join("the default 10" if e is None else f"{e:g}" for e in epochs)
        messages.append(
            f"{varies} under a fixed epoch budget (training.epochs: {budget}): every run sees "
            f"the same number of examples, so batch {small} takes about {large / small:g}× the "
            f"optimizer steps of batch {large}. Keep epochs to compare at a fixed number of "
            "examples; give training.steps (in overrides) to compare at a fixed number of "
            "steps. training.lr_scaling (linear or sqrt, with training.reference_batch_size) "
            "sets how the learning rate follows the batch size."
        )
    rates_per_size = {
        size: {t.learning_rate for t in trainings if t.batch_size == size} for size in sizes
    }
    swept = any(len(rates) > 1 for rates in rates_per_size.values())
    if all(t.lr_scaling == "none" for t in trainings) and not swept:
        shown = ", ".join(f"{rate:g}" for rate in sorted({t.learning_rate for t in trainings}))
        messages.append(
            f"{varies} with the same learning rate ({shown}) at every batch size "
            "(training.lr_scaling: none), so the step size per example falls as the batch "
            "grows. Set training.lr_scaling: linear (Goyal et al. 2017) or sqrt with "
            "training.reference_batch_size to scale it, or add training.learning_rate to the "
            "grid to tune it per batch size."
        )
    return messages
