"""Step time of each Keras backend for bnbench's model shapes, and what `backend: auto` gets.

The data behind the `auto` policy (`bnbench.config.backend_policy.choose_backend`). For each
in its own process, it times plain `model.fit` (median of a few timed fits after a warm-up fit)
on synthetic MNIST-shaped data for:

* MLP: the Ioffe & Szegedy network of configs/mlp_mnist.yaml (784-100-100-100-10, sigmoid, BN
  before the activation), batch 60, with and without BN;
* CNN: conv32-conv64 (3x3, max-pool) + dense128, BN before ReLU, batch 128, with and without BN;
  on TensorFlow also with stock Keras BN (`norm.fused: false`) next to bnbench's fused kernel.

Then it trains each shape through bnbench's own path under `backend: auto` and prints its step
time next to the plain-Keras numbers, as ratios measured in this one run.

    python scripts/bench_backends.py [--mlp-steps 1000] [--cnn-steps 40]
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
from typing import Any

MLP_BLOCKS = [{"type": "dense", "units": 100} for _ in range(3)]
CNN_BLOCKS = [
    {"type": "conv2d", "filters": 32, "kernel_size": 3, "padding": "valid"},
    {"type": "conv2d", "filters": 64, "kernel_size": 3, "padding": "valid", "pool": "max"},
    {"type": "flatten"},
    {"type": "dense", "units": 128, "norm": {"kind": "none"}},
]


def _spec(shape: str, norm: dict[str, Any], backend: str, data: Path, steps: int) -> dict:
    mlp = shape == "mlp"
    return {
        "name": f"{shape}-{norm['kind']}",
        "backend": backend,
        "dataset": {"name": "npz", "path": str(data), "normalize": "none", "flatten": mlp,
                    "validation_split": "test"},
        "model": {"activation": "sigmoid" if mlp else "relu", "norm": norm,
                  "blocks": MLP_BLOCKS if mlp else CNN_BLOCKS},
        "training": {"optimizer": "sgd", "learning_rate": 0.1, "batch_size": 60 if mlp else 128,
                     "steps": steps, "eval_every": steps},
    }  # fmt: skip


CASES = [  # (shape, label, norm)
    ("mlp", "BN", {"kind": "batch"}),
    ("mlp", "no BN", {"kind": "none"}),
    ("cnn", "BN", {"kind": "batch"}),
    ("cnn", "stock BN", {"kind": "batch", "fused": False}),
    ("cnn", "no BN", {"kind": "none"}),
]


def plain_fit_ms(backend: str, data: Path, mlp_steps: int, cnn_steps: int) -> dict[str, float]:
    """Median ms/step of plain model.fit for every case, on the backend of this process."""
    import keras
    import numpy as np

    from bnbench.config.schema import RunSpec
    from bnbench.data.datasets import load_dataset
    from bnbench.model.build import build_model

    out = {}
    for shape, label, norm in CASES:
        if label == "stock BN" and backend != "tensorflow":
            continue
        steps = mlp_steps if shape == "mlp" else cnn_steps
        spec = RunSpec.model_validate(_spec(shape, norm, backend, data, steps))
        dataset = load_dataset(spec.dataset)
        batch = spec.training.batch_size
        x, y = dataset.x_train, dataset.y_train
        reps = int(np.ceil(steps * batch / len(x)))
        x, y = (
            np.concatenate([x] * reps)[: steps * batch],
            np.concatenate([y] * reps)[: steps * batch],
        )
        keras.utils.clear_session()
        keras.utils.set_random_seed(0)
        model = build_model(spec.model, dataset.input_shape, dataset.output_units, dataset.task)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        model.fit(x[: 10 * batch], y[: 10 * batch], batch_size=batch, verbose=0)  # compile
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            times.append((time.perf_counter() - start) / steps * 1000)
        out[f"{shape}/{label}"] = statistics.median(times)
    return out


def bnbench_auto_ms(data: Path, mlp_steps: int, cnn_steps: int) -> dict[str, Any]:
    """bnbench's own training path under backend: auto, in fresh processes (one per backend)."""
    out: dict[str, Any] = {}
    for shape, label, norm in CASES:
        if label == "stock BN":
            continue
        steps = mlp_steps if shape == "mlp" else cnn_steps
        code = (
            "import json, sys, tempfile\nfrom pathlib import Path\n"
            "from bnbench.config.schema import RunSpec\nfrom bnbench.train.loop import train\n"
            "spec = RunSpec.model_validate(json.loads(sys.argv[1]))\n"
            "with tempfile.TemporaryDirectory() as tmp:\n"
            "    s = train(spec, Path(tmp) / 'run', save_model=False).summary\n"
            "print(json.dumps([s.backend, s.step_time_ms]))\n"
        )
        # Six chunks of `steps`: the step time is their median, the first (compiling) left out.
        spec = _spec(shape, norm, "auto", data, steps * 6)
        spec["training"]["eval_every"] = steps
        done = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True,
                              text=True, check=True)  # fmt: skip
        backend, ms = json.loads(done.stdout.strip().splitlines()[-1])
        out[f"{shape}/{label}"] = {"backend": backend, "ms": ms}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlp-steps", type=int, default=1000)
    parser.add_argument("--cnn-steps", type=int, default=40)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from bnbench.train.backend import activate

        activate(args.worker)
        print(json.dumps(plain_fit_ms(args.worker, Path(args.data), args.mlp_steps,
                                      args.cnn_steps)))  # fmt: skip
        return

    import importlib.util

    import numpy as np

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist_like.npz"
        rng = np.random.default_rng(0)
        np.savez(data, x_train=rng.random((6000, 28, 28), dtype=np.float32),
                 y_train=rng.integers(0, 10, 6000), x_test=rng.random((200, 28, 28)),
                 y_test=rng.integers(0, 10, 200))  # fmt: skip
        for backend in args.backends:
            if importlib.util.find_spec(backend) is None:
                print(f"({backend}: not installed, skipped)")
                continue
            done = subprocess.run(
                [sys.executable, __file__, "--worker", backend, "--data", str(data),
                 "--mlp-steps", str(args.mlp_steps), "--cnn-steps", str(args.cnn_steps)],
                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )  # fmt: skip
            if done.returncode:
                print(f"({backend}: failed)\n{done.stderr[-2000:]}")
                continue
            results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
        auto = bnbench_auto_ms(data, args.mlp_steps, args.cnn_steps)

    backends = list(results)
    print(f"\nmedian ms/step, plain model.fit, {os.cpu_count()} CPUs")
    print(f"{'model':<16}" + "".join(f"{b:>12}" for b in backends) + f"{'bnbench auto':>20}")
    for shape, label, _ in CASES:
        key = f"{shape}/{label}"
        cells = "".join(f"{results[b][key]:>12.2f}" if key in results[b] else f"{'-':>12}"
                        for b in backends)  # fmt: skip
        chosen = f"{auto[key]['ms']:.2f} ({auto[key]['backend']})" if key in auto else "-"
        print(f"{shape.upper() + ' ' + label:<16}{cells}{chosen:>20}")
    print()
    if "jax" in results and "tensorflow" in results:
        mlp = auto["mlp/BN"]["ms"]
        print(
            f"MLP BN, auto / plain JAX:            {mlp / results['jax']['mlp/BN']:.2f}  "
            "(target <= 1.15)"
        )
        print(
            f"MLP BN, plain TensorFlow / auto:     {results['tensorflow']['mlp/BN'] / mlp:.1f}x "
            "faster (target >= 5)"
        )
    if "tensorflow" in results:
        tf = results["tensorflow"]
        print(
            f"CNN BN on TF, fused / stock Keras BN: {tf['cnn/BN'] / tf['cnn/stock BN']:.2f}  "
            "(target <= 0.8)"
        )
        print(
            f"CNN BN on TF, fused / no BN:          {tf['cnn/BN'] / tf['cnn/no BN']:.2f}  "
            "(target <= 1.15)"
        )


if __name__ == "__main__":
    main()
