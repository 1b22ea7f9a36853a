"""Throughput of bnbench's training path against a bare `model.fit` of the same Keras model.

Both sides train the same model (the Ioffe & Szegedy MNIST MLP: 784-100-100-100-10, sigmoid, BN
before the activation, batch 60) on the same synthetic MNIST-shaped data for the same number of
steps, evaluating on the validation split once per epoch and on the test split at the end. The
bare side is `model.fit(x, y, epochs=E, validation_data=...)` then `model.evaluate(x_test, ...)`;
the bnbench side is `bnbench.train.loop.train` with its run directory, history, progress hook and
evaluation points. Each backend runs in its own process; rounds alternate the two sides so that
machine noise hits both alike.

    python scripts/bench_overhead.py [--epochs 60] [--rounds 3] [--backends tensorflow jax]

Prints, per backend, median steps per second of each side and their ratio (bnbench / bare;
1.0 means no overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NUM_TRAIN, NUM_VAL, BATCH = 6000, 1000, 60


def _spec(data_path: Path, epochs: int) -> dict:
    steps_per_epoch = (NUM_TRAIN - NUM_VAL) // BATCH
    return {
        "name": "overhead",
        "seed": 0,
        "dataset": {"name": "npz", "path": str(data_path), "normalize": "none",
                    "validation_split": NUM_VAL / NUM_TRAIN},
        "model": {"activation": "sigmoid", "norm": {"kind": "batch"},
                  "blocks": [{"type": "dense", "units": 100} for _ in range(3)]},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": BATCH,
                     "steps": epochs * steps_per_epoch, "eval_every": steps_per_epoch},
    }  # fmt: skip


def worker(backend: str, epochs: int, rounds: int, data_path: Path) -> dict:
    """Run in a fresh process: time both sides `rounds` times on one backend."""
    from bnbench.train.backend import activate

    activate(backend)
    import keras

    from bnbench.config.schema import RunSpec
    from bnbench.data.datasets import load_dataset
    from bnbench.model.build import build_model
    from bnbench.train.loop import train

    spec = RunSpec.model_validate({**_spec(data_path, epochs), "backend": backend})
    data = load_dataset(spec.dataset)
    steps = spec.training.steps or 0
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds + 1):  # round 0 warms caches and is not counted
            keras.utils.clear_session()
            keras.utils.set_random_seed(0)
            model = build_model(spec.model, data.input_shape, data.output_units, data.task)
            model.compile(
                optimizer=keras.optimizers.SGD(0.1),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            start = time.perf_counter()
            model.fit(
                data.x_train,
                data.y_train,
                batch_size=BATCH,
                epochs=epochs,
                validation_data=(data.x_val, data.y_val),
                verbose=0,
            )
            model.evaluate(data.x_test, data.y_test, verbose=0)  # bnbench ends with this too
            bare_seconds = time.perf_counter() - start

            start = time.perf_counter()
            result = train(
                spec,
                Path(tmp) / f"run{r}",
                save_model=False,
                progress=lambda step, total, loss: None,
            )
            ours_seconds = time.perf_counter() - start
            assert result.status == "completed", result.summary
            if r:
                bare.append(steps / bare_seconds)
                ours.append(steps / ours_seconds)
    return {
        "backend": backend,
        "steps": steps,
        "bare": statistics.median(bare),
        "bnbench": statistics.median(ours),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, args.rounds, Path(args.data))))
        return

    import importlib.util

    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "mnist_like.npz"
        rng = np.random.default_rng(0)
        np.savez(data_path, x_train=rng.random((NUM_TRAIN, 784), dtype=np.float32),
                 y_train=rng.integers(0, 10, NUM_TRAIN), x_test=rng.random((500, 784)),
                 y_test=rng.integers(0, 10, 500))  # fmt: skip
        for backend in args.backends:
            if importlib.util.find_spec(backend) is None:
                print(f"{backend}: not installed, skipped", file=sys.stderr)
                continue
            done = subprocess.run(
                [sys.executable, __file__, "--worker", backend, "--data", str(data_path),
                 "--epochs", str(args.epochs), "--rounds", str(args.rounds)],
                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )  # fmt: skip
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"MLP 784-100x3-10 sigmoid+BN, batch {BATCH}, {NUM_TRAIN - NUM_VAL} train examples, "
        f"evaluation every epoch, median of {args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    print(f"{'backend':<12}{'steps':>7}{'bare fit steps/s':>18}{'bnbench steps/s':>17}{'ratio':>8}")
    for row in rows:
        ratio = row["bnbench"] / row["bare"]
        print(
            f"{row['backend']:<12}{row['steps']:>7}{row['bare']:>18.0f}{row['bnbench']:>17.0f}"
            f"{ratio:>8.3f}"
        )


if __name__ == "__main__":
    main()
