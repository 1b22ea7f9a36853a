"""The claims bnbench tests: a constant registry from a claim's id to its entry.

Each entry pairs an ablation in `configs/claims/<id>.yaml` with its verdict rule and figure,
and declares its `--quick` budget (fewer seeds, grid points or arms) as data. The order is the
order of the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from bnbench.claims import rules_inside, rules_norms, rules_shift, rules_speed
from bnbench.claims.claim import Claim, Reduction
from bnbench.config.registries import suggest
from bnbench.errors import SpecError

_ENTRIES = (
    Claim("faster_training", "Batch norm reaches a target accuracy in fewer steps.",
          "Ioffe & Szegedy 2015",
          "paired ratio of steps to 90% validation accuracy (no BN / BN), censored runs as "
          "bounds, under moving and recalibrated BN statistics",
          "full 25 s, quick 15 s", Reduction(),
          rules_speed.assess_faster_training, rules_speed.draw_faster_training),
    Claim("lr_range", "Batch norm allows higher learning rates.",
          "Ioffe & Szegedy 2015; Bjorck et al. 2018",
          "decades of learning rates within 0.05 of the best validation accuracy; largest "
          "non-diverging rate (BN vs no BN)",
          "full 70 s, quick 20 s",
          Reduction(grid={"training.learning_rate": [0.01, 0.1, 1.0, 10.0]}),
          rules_speed.assess_higher_learning_rates, rules_speed.draw_higher_learning_rates),
    Claim("init_scale", "Batch norm makes training less sensitive to the weight initialization.",
          "common tutorial claim",
          "range of final test accuracy across initial weights N(0, σ²), σ over two decades",
          "full 45 s, quick 15 s",
          Reduction(grid={"model.initializer.stddev": [0.01, 0.1, 1.0]}),
          rules_speed.assess_init_sensitivity, rules_speed.draw_init_sensitivity),
    Claim("regularization", "Batch norm regularizes, and may replace dropout.",
          "Ioffe & Szegedy 2015; common tutorial claim",
          "train − test accuracy gap on a small training set; test accuracy of BN vs dropout "
          "vs both",
          "full 20 s, quick 15 s", Reduction(),
          rules_norms.assess_regularization, rules_norms.draw_regularization),
    Claim("vanishing_gradients", "Batch norm fights vanishing gradients in deep sigmoid nets.",
          "common tutorial claim",
          "first- to last-layer gradient-norm ratio over training, BN vs no BN",
          "full 20 s, quick 15 s", Reduction(),
          rules_inside.assess_vanishing_gradients, rules_inside.draw_vanishing_gradients),
    Claim("depth", "Without batch norm, deeper networks train slower.",
          "common tutorial claim",
          "slope of log steps-to-target against log depth (2 to 16 blocks), BN vs no BN",
          "full 80 s, quick 20 s",
          Reduction(grid={"model.blocks.0.repeat": [2, 8]}),
          rules_speed.assess_depth, rules_speed.draw_depth),
    Claim("small_batch",
          "Batch norm is weak at small batches; group (or layer) norm is the alternative.",
          "Wu & He 2018",
          "test accuracy against batch size at a fixed number of steps, BN vs GN (vs LN)",
          "full 90 s, quick 20 s",
          Reduction(grid={"training.batch_size": [2, 64]}, arms=["batch", "group"]),
          rules_norms.assess_small_batch, rules_norms.draw_small_batch),
    Claim("small_batch_examples",
          "Batch norm is weak at small batches, also at a fixed number of examples (epochs).",
          "Wu & He 2018",
          "test accuracy against batch size at a fixed number of epochs (learning rate scaled "
          "linearly with the batch), BN vs GN (vs LN)",
          "full 35 s, quick 20 s",
          Reduction(grid={"training.batch_size": [2, 64]}, arms=["batch", "group"]),
          rules_norms.assess_small_batch, rules_norms.draw_small_batch),
    Claim("placement",
          "Before the activation is better for sigmoid; for ReLU the placement is negligible.",
          "Ioffe & Szegedy 2015; long-running practitioner debate",
          "paired test accuracy, BN before − after the activation; TOST for ReLU",
          "full 40 s, quick 20 s", Reduction(),
          rules_norms.assess_placement, rules_norms.draw_placement),
    Claim("covariate_shift",
          "Batch norm stabilizes layer-input distributions (vs: it does not reduce internal "
          "covariate shift).",
          "Ioffe & Szegedy 2015, Fig. 1; Santurkar et al. 2018",
          "drift of the last block's pre-activation percentiles over training",
          "full 20 s, quick 15 s", Reduction(),
          rules_inside.assess_covariate_shift, rules_inside.draw_covariate_shift),
    Claim("input_scaling", "Batch norm smooths optimization on badly scaled inputs.",
          "common tutorial claim, after LeCun et al. 1998",
          "paired ratio of steps to R² ≥ 0.999 on two_scale regression, raw inputs / BN (on the "
          "inputs; in the hidden block), each arm at its fastest rate of the same grid",
          "full 40 s, quick 20 s",
          Reduction(grid={"training.learning_rate": [1e-5, 1e-4]}, arms=["raw", "bn"]),
          rules_speed.assess_input_scaling, rules_speed.draw_input_scaling),
    Claim("train_inference_gap",
          "Batch norm networks score worse in inference mode than in training mode, the more "
          "so at high momentum and small batches.",
          "Keras/TensorFlow user reports",
          "validation accuracy in training mode − inference mode, against momentum and batch "
          "size",
          "full 35 s, quick 15 s",
          Reduction(grid={"model.norm.momentum": [0.9, 0.999], "training.batch_size": [32]}),
          rules_norms.assess_train_inference, rules_norms.draw_train_inference),
    Claim("dropout_order", "Dropout that feeds batch norm hurts (variance shift).",
          "Li et al. 2019",
          "test accuracy with dropout after every BN vs dropout feeding the next BN; the "
          "variance shift (dropout on / off) of the BN input it feeds",
          "full 15 s, quick 15 s", Reduction(),
          rules_norms.assess_dropout_order, rules_norms.draw_dropout_order),
    Claim("ghost_batch", "Ghost batch norm improves generalization in large-batch training.",
          "Hoffer et al. 2017",
          "test accuracy at batch 256, ghost BN (virtual batches of 16) vs BN",
          "full 15 s, quick 15 s", Reduction(),
          rules_norms.assess_ghost_batch, rules_norms.draw_ghost_batch),
    Claim("shift_adaptation",
          "Re-estimating the BN statistics on shifted test data helps.",
          "Schneider et al. 2020",
          "shifted test accuracy (Gaussian noise, lower contrast) with BN re-estimated on 32 "
          "shifted test examples − with the training statistics",
          "full 35 s, quick 15 s",
          Reduction(grid={"evaluation.shift.severity": [0.5]}),
          rules_shift.assess_shift_adaptation, rules_shift.draw_shift_adaptation),
)  # fmt: skip

CLAIMS: Mapping[str, Claim] = MappingProxyType({claim.id: claim for claim in _ENTRIES})


def select(only: str | None) -> list[Claim]:
    """The claims named in a comma-separated `only` (all claims when None), in registry order.

    Raises:
        SpecError: a name that is not a claim id (with the closest id), or an empty list.
    """
    if only is None:
        return list(CLAIMS.values())
    names = [name.strip() for name in only.split(",") if name.strip()]
    if not names:
        raise SpecError(f"--only {only!r} names no claim; available: {', '.join(CLAIMS)}")
    for name in names:
        if name not in CLAIMS:
            raise SpecError(
                f"unknown claim {name!r}{suggest(name, CLAIMS)}; available: {', '.join(CLAIMS)}"
            )
    return [claim for claim in CLAIMS.values() if claim.id in names]
