"""Wall time of the Ioffe & Szegedy (2015) MNIST experiment's shape through `bnbench ablate`.

2 arms (BN before the sigmoid vs no BN) x 50,000 steps at batch 60, test accuracy every 1,000
steps, on synthetic MNIST-shaped data (60,000 + 10,000 28x28 images, 10 classes) so that it needs
no download; run as `bnbench ablate --jobs 2` exactly as a user would, with `backend: auto`.

    python scripts/bench_paper.py [--steps 50000] [--jobs 2] [--steps-per-execution 1 32]

With several `--steps-per-execution` values it runs the ablation once per value, in this one
invocation, and prints each wall time and its ratio to the first, and whether the test
accuracies agree.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bnbench.results import rundir

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps-per-execution", type=int, nargs="+", default=[1],
                        help="training.steps_per_execution values to time")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist_like.npz"
        rng = np.random.default_rng(0)
        np.savez(data, x_train=rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8),
                 y_train=rng.integers(0, 10, 60_000), y_test=rng.integers(0, 10, 10_000),
                 x_test=rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8))  # fmt: skip
        walls: list[float] = []
        accuracies: list[dict[str, float]] = []
        for per_call in args.steps_per_execution:
            wall, finals = _time_ablation(Path(tmp), data, args.steps, args.jobs, per_call)
            walls.append(wall)
            accuracies.append(finals)
        for per_call, wall, finals in zip(args.steps_per_execution, walls, accuracies, strict=True):
            same = "same test accuracy" if finals == accuracies[0] else "DIFFERENT test accuracy"
            print(f"steps_per_execution {per_call}: total wall time {wall:.1f} s "
                  f"(target < 120 s), {wall / walls[0]:.2f}x of the first, {same}")  # fmt: skip


def _time_ablation(tmp: Path, data: Path, steps: int, jobs: int,
                   per_call: int) -> tuple[float, dict[str, float]]:  # fmt: skip
    """Wall seconds of one `bnbench ablate` of the two arms, and each arm's test accuracy."""
    ablation = {
        "name": "paper_shape",
        "base": str(ROOT / "configs" / "mlp_mnist.yaml"),
        "overrides": {"dataset.name": "npz", "dataset.path": str(data),
                      "training.steps": steps, "training.steps_per_execution": per_call},
        "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
        "seeds": [0],
    }  # fmt: skip
    path = tmp / f"paper_{per_call}.yaml"
    path.write_text(yaml.safe_dump(ablation, sort_keys=False))
    out = tmp / f"results_{per_call}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(out),
                    "--jobs", str(jobs), "--quiet", "--no-plots"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    print(f"2 arms x {steps:,} steps, batch 60, evaluation on 10,000 test images every "
          f"1,000 steps, --jobs {jobs}, steps_per_execution {per_call}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    finals = {}
    for run in sorted((out / "runs").iterdir()):
        summary = rundir.read_summary(run)
        assert summary is not None, run
        rows = (run / "history.csv").read_text().count("\n") - 1
        finals[summary.name] = summary.final.get("test_accuracy", float("nan"))
        print(f"  {summary.name:<6} backend {summary.backend:<10} "
              f"{summary.step_time_ms:.3f} ms/step  train {summary.train_seconds:.1f} s"
              f"  {rows} evaluation points  status {summary.status}")  # fmt: skip
    return wall, finals


if __name__ == "__main__":
    main()
