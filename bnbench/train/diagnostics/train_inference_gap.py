"""The probe's loss and metric in training mode (batch statistics, dropout on) and in inference
mode, at step 0 and every evaluation point."""

from __future__ import annotations

from typing import Any

import numpy as np

from bnbench.results.diagnostics import TRAIN_INFERENCE_GAP
from bnbench.train.diagnostics.probe import Diagnostic, Weights


class TrainInferenceGap(Diagnostic):
    """Training mode is averaged over probe batches of the run's batch size, so that BN
    normalizes over as many examples as in training; inference mode takes the whole probe."""

    file = TRAIN_INFERENCE_GAP

    def record(self, step: int, weights: Weights) -> list[list[Any]]:
        probe = self.probe
        results = [probe.evaluate(weights, training=True, part=part)
                   for part in probe.train_batches]  # fmt: skip
        train_loss = float(np.mean([r[0] for r in results]))
        metrics = [r[1] for r in results if r[1] is not None]
        train_metric = float(np.mean(metrics)) if metrics else None
        infer_loss, infer_metric = probe.evaluate(weights, training=False)
        size = probe.train_batches[0].stop - probe.train_batches[0].start
        return [[step, train_loss, infer_loss, train_metric, infer_metric, size]]
