"""bnbench ablate against the plain-Keras script a user would write for the same grid.

The grid is the quickstart's shape: a sigmoid MLP (64-64-64) on scikit-learn's 8x8 digits, arms
no BN / BN before / BN after the activation, 3 seeds, 8 epochs of SGD at learning rate 0.5,
batch 32, validation after every epoch, then a test evaluation. The plain script (below, no
bnbench import) trains the 9 runs one after another in one process, as a user would, with
`model.fit` per epoch and `model.evaluate`; it feeds bnbench's batch order (every batch full,
epochs run on) so that both sides train the same networks on the same batches. bnbench runs the
same grid with `bnbench ablate` (diagnostics off, evaluation once per epoch, no training-mode
evaluation, so both do the same work). Each side runs in a fresh process on the same backend;
the script prints both wall times, their ratio, and whether the test accuracies agree to 2
decimals.

bnbench is measured twice: "cold" with an empty JAX compilation cache (a first ablation on a
machine) and "warm" (any later one).

    python scripts/bench_vs_keras.py [--backend jax|tensorflow] [--jobs 2] [--epochs 8]

Runtime: about 2 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bnbench.results import rundir

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1, 2)
ARMS = {"no_bn": None, "bn_before": "before", "bn_after": "after"}

# The plain-Keras side: what a user writes. Run as `python -c PLAIN BACKEND EPOCHS`.
PLAIN = r"""
import json, math, os, sys, time
os.environ["KERAS_BACKEND"] = sys.argv[1]
start = time.perf_counter()
import keras
import numpy as np
from sklearn.datasets import load_digits

epochs = int(sys.argv[2])
digits = load_digits()
x = (digits.images.reshape(len(digits.images), -1) / 16.0).astype("float32")
y = digits.target.astype("int64")
order = np.random.default_rng(0).permutation(len(x))   # bnbench's fixed digits split
x_test, y_test = x[order[:360]], y[order[:360]]
x_train, y_train = x[order[360:]], y[order[360:]]
held = round(len(x_train) * 0.1)
x_val, y_val = x_train[-held:], y_train[-held:]
x_train, y_train = x_train[:-held], y_train[:-held]
batch = 32
steps_per_epoch = math.ceil(len(x_train) / batch)
total = math.ceil(epochs * len(x_train) / batch)
results = {}
for arm, placement in json.loads(sys.argv[3]).items():
    for seed in json.loads(sys.argv[4]):
        keras.utils.clear_session()
        keras.utils.set_random_seed(seed)
        layers = [keras.Input((64,))]
        for i in range(3):
            layers.append(keras.layers.Dense(64, use_bias=placement != "before"))
            if placement == "before":
                layers.append(keras.layers.BatchNormalization())
            layers.append(keras.layers.Activation("sigmoid"))
            if placement == "after":
                layers.append(keras.layers.BatchNormalization())
        layers.append(keras.layers.Dense(10, activation="softmax"))
        model = keras.Sequential(layers)
        model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        rng = np.random.default_rng(seed)
        needed = math.ceil(total * batch / len(x_train))
        passes = [rng.permutation(len(x_train)) for _ in range(needed)]
        index = np.concatenate(passes)[: total * batch]
        for first in range(0, total, steps_per_epoch):
            last = min(first + steps_per_epoch, total)
            chunk = index[first * batch : last * batch]
            model.fit(x_train[chunk], y_train[chunk], batch_size=batch, epochs=1,
                      shuffle=False, verbose=0)
            model.evaluate(x_val, y_val, batch_size=256, verbose=0)
        loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
        results[f"{arm}-s{seed}"] = accuracy
print(json.dumps({"seconds": time.perf_counter() - start, "accuracy": results}))
"""


def _ablation(backend: str, epochs: int) -> dict:
    arms = {
        arm: {"model.norm.kind": "none"} if placement is None
        else {"model.norm.kind": "batch", "model.norm.placement": f"{placement}_activation"}
        for arm, placement in ARMS.items()
    }  # fmt: skip
    return {
        "name": "bench_vs_keras",
        "base": str(ROOT / "configs" / "mlp_digits.yaml"),
        "overrides": {
            "backend": backend,
            "training.epochs": epochs,
            "training.eval_every": None,  # once per epoch, as the plain script
            "training.target_metric": None,
            "training.target_value": None,
            "evaluation.train_mode_metrics": False,
        },
        "arms": arms,
        "seeds": list(SEEDS),
        "reference": "no_bn",
    }


def _plain(backend: str, epochs: int) -> tuple[float, dict[str, float]]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-c", PLAIN, backend, str(epochs), json.dumps(ARMS),
               json.dumps(SEEDS)]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"plain Keras script failed:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])["accuracy"]


def _bnbench(spec: Path, out: Path, jobs: int, cache: Path) -> tuple[float, dict[str, float]]:
    env = {**os.environ, "BNBENCH_CACHE_DIR": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    command = [sys.executable, "-m", "bnbench", "ablate", str(spec), "--out", str(out),
               "--jobs", str(jobs), "-q", "--no-plots"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"bnbench ablate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    accuracy = {}
    for run in (out / "runs").iterdir():
        summary, entry = rundir.read_summary(run), rundir.read_entry(run)
        assert summary is not None, run
        accuracy[f"{entry['arm']}-s{entry['seed']}"] = summary.final["test_accuracy"]
    return wall, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="jax", choices=["jax", "tensorflow"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "grid.yaml"
        spec.write_text(yaml.safe_dump(_ablation(args.backend, args.epochs), sort_keys=False))
        cache = Path(tmp) / "cache"
        plain_wall, plain_acc = _plain(args.backend, args.epochs)
        cold_wall, cold_acc = _bnbench(spec, Path(tmp) / "cold", args.jobs, cache)
        warm_wall, warm_acc = _bnbench(spec, Path(tmp) / "warm", args.jobs, cache)
    print(f"grid: 3 arms x {len(SEEDS)} seeds, {args.epochs} epochs, backend {args.backend}")
    print(f"plain Keras script, one process, sequential: {plain_wall:6.1f} s wall")
    for label, wall in (("cold JAX cache", cold_wall), ("warm JAX cache", warm_wall)):
        print(f"bnbench ablate --jobs {args.jobs}, {label}:     {wall:6.1f} s wall = "
              f"{wall / plain_wall:.2f}x the plain script")  # fmt: skip
    same = all(round(plain_acc[k], 2) == round(cold_acc[k], 2) == round(warm_acc[k], 2)
               for k in plain_acc)  # fmt: skip
    print(f"test accuracies agree to 2 decimals in all {len(plain_acc)} runs: {same}")
    for key in sorted(plain_acc):
        print(f"  {key:<14} plain {plain_acc[key]:.4f}  bnbench {cold_acc[key]:.4f}")


if __name__ == "__main__":
    main()
