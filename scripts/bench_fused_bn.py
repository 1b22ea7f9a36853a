"""How much faster is a BN CNN with TensorFlow's fused batch-norm kernel?

Trains the same small CNN three ways on the TensorFlow backend: with the stock
`keras.layers.BatchNormalization`, with `bnbench.model.fused_bn.FusedBatchNormalization`,
and without BN. Each variant is warmed up (tracing, first steps) and then timed in
interleaved rounds of `model.fit` on synthetic 28x28x1 data, so that load from
other processes on a shared machine falls on all three alike. Reports the median
train step and the ratios fused/stock and fused/no-BN, all from this one run.

Network: Conv2D(32, 3x3) -> BN -> ReLU -> MaxPool -> Conv2D(64, 3x3) -> BN -> ReLU
-> MaxPool -> Flatten -> Dense(128, relu) -> Dense(10, softmax). The convolutions
drop their bias when BN follows, since BN's beta replaces it.

Runtime: about 25 seconds on a 2-core CPU with the defaults.
Expected (2-core CPU, keras 3.15, TF 2.21): fused/stock about 0.7, and the fused
network about 1.1x the one without BN (stock BN about 1.5x).

    .venv/bin/python scripts/bench_fused_bn.py
    .venv/bin/python scripts/bench_fused_bn.py --steps 120 --rounds 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

# Keras reads the backend once, at import; the fused kernel is TensorFlow's.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bnbench.train.backend import import_keras

# TensorFlow's native start-up log ignores TF_CPP_MIN_LOG_LEVEL; this hides it.
import_keras()

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bnbench.model.fused_bn import batch_normalization_layer  # noqa: E402

NORMS = ("stock", "fused", "none")
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


@dataclass
class Variant:
    """One network under test and the train-step times measured for it."""

    norm: str
    model: keras.Model
    step_seconds: list[float]


class StepTimer(keras.callbacks.Callback):
    """Records the wall time of every train step."""

    def __init__(self, step_seconds: list[float]) -> None:
        super().__init__()
        self.step_seconds = step_seconds
        self._start = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step_seconds.append(time.perf_counter() - self._start)


def build_cnn(norm: str, seed: int) -> keras.Model:
    """The benchmark CNN with `norm` in {"stock", "fused", "none"} after each convolution."""
    keras.utils.set_random_seed(seed)
    layers: list[keras.layers.Layer] = [keras.Input(IMAGE_SHAPE)]
    for filters in (32, 64):
        layers.append(keras.layers.Conv2D(filters, 3, use_bias=norm == "none"))
        if norm != "none":
            layers.append(batch_normalization_layer(fused=norm == "fused"))
        layers += [keras.layers.ReLU(), keras.layers.MaxPooling2D()]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(NUM_CLASSES, activation="softmax"),
    ]
    model = keras.Sequential(layers, name=f"cnn_{norm}")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def run_benchmark(
    steps: int, rounds: int, batch_size: int, num_samples: int, seed: int
) -> list[Variant]:
    """Warms up each variant, then times `steps` train steps each over interleaved rounds."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(num_samples, *IMAGE_SHAPE)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=num_samples)
    steps_per_epoch = -(-num_samples // batch_size)
    epochs_per_round = max(1, -(-steps // (rounds * steps_per_epoch)))

    variants = [Variant(norm, build_cnn(norm, seed), []) for norm in NORMS]
    for variant in variants:
        # Traces the train function and runs the first, slow steps.
        variant.model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)
    for _ in range(rounds):
        for variant in variants:
            variant.model.fit(
                images,
                labels,
                batch_size=batch_size,
                epochs=epochs_per_round,
                verbose=0,
                callbacks=[StepTimer(variant.step_seconds)],
            )
    return variants


def format_table(variants: list[Variant], batch_size: int) -> str:
    """Median step time, throughput and the ratios to the stock and no-BN networks."""
    medians = {v.norm: statistics.median(v.step_seconds) for v in variants}
    header = (
        f"{'BN':<6} {'steps':>5} {'median ms/step':>14} {'samples/s':>9} "
        f"{'vs stock':>8} {'vs no-BN':>8}"
    )
    lines = [header, "-" * len(header)]
    for variant in variants:
        median = medians[variant.norm]
        lines.append(
            f"{variant.norm:<6} {len(variant.step_seconds):>5} {median * 1e3:>14.1f} "
            f"{batch_size / median:>9.0f} {median / medians['stock']:>8.2f} "
            f"{median / medians['none']:>8.2f}"
        )
    lines.append(
        f"fused/stock = {medians['fused'] / medians['stock']:.2f}   "
        f"fused/no-BN = {medians['fused'] / medians['none']:.2f}   "
        f"stock/no-BN = {medians['stock'] / medians['none']:.2f}"
    )
    return "\n".join(lines)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, received {text!r}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=64,
        help="timed train steps per variant, rounded up to whole epochs",
    )
    parser.add_argument("--rounds", type=positive_int, default=4, help="interleaved timing rounds")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--num-samples", type=positive_int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    variants = run_benchmark(
        steps=args.steps,
        rounds=args.rounds,
        batch_size=args.batch_size,
        num_samples=args.num_samples,
        seed=args.seed,
    )
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"batch {args.batch_size}, {os.cpu_count()} CPUs"
    )
    print(format_table(variants, args.batch_size))


if __name__ == "__main__":
    main()
