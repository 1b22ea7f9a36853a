"""The TensorFlow fast input path trains exactly like the portable one."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from bnbench.config.schema import RunSpec
from bnbench.train.loop import train


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow fast path")
def test_fast_and_portable_feeding_give_the_same_run(tiny_spec, tmp_path):
    spec = RunSpec.model_validate(tiny_spec)
    fast = train(spec, tmp_path / "fast", save_model=False, fast_feeding=True)
    portable = train(spec, tmp_path / "portable", save_model=False, fast_feeding=False)
    assert len(fast.history) == len(portable.history) == 3
    for a, b in zip(fast.history, portable.history, strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            assert a.values[key] == pytest.approx(b.values[key], rel=1e-5, abs=1e-6), key
    assert fast.summary.final["test_loss"] == pytest.approx(
        portable.summary.final["test_loss"], rel=1e-5
    )
    assert np.isfinite(fast.summary.final["test_accuracy"])
