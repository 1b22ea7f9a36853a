"""Wall time of the Ioffe & Szegedy (2015) MNIST experiment's shape through `bnbench ablate`.

2 arms (BN before the sigmoid vs no BN) x 50,000 steps at batch 60, test accuracy every 1,000
steps, on synthetic MNIST-shaped data (60,000 + 10,000 28x28 images, 10 classes) so that it needs
no download; run as `bnbench ablate --jobs 2` exactly as a user would, with `backend: auto`.

    python scripts/bench_paper.py [--steps 50000] [--jobs 2]
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist_like.npz"
        rng = np.random.default_rng(0)
        np.savez(data, x_train=rng.integers(0, 256, (60_000, 28, 28), dtype=np.uint8),
                 y_train=rng.integers(0, 10, 60_000), y_test=rng.integers(0, 10, 10_000),
                 x_test=rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8))  # fmt: skip
        ablation = {
            "name": "paper_shape",
            "base": str(ROOT / "configs" / "mlp_mnist.yaml"),
            "overrides": {"dataset.name": "npz", "dataset.path": str(data),
                          "training.steps": args.steps},
            "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
            "seeds": [0],
        }  # fmt: skip
        path = Path(tmp) / "paper.yaml"
        path.write_text(yaml.safe_dump(ablation, sort_keys=False))
        out = Path(tmp) / "results"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(out),
                        "--jobs", str(args.jobs), "--quiet", "--no-plots"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        wall = time.perf_counter() - start
        print(f"2 arms x {args.steps:,} steps, batch 60, evaluation on 10,000 test images every "
              f"1,000 steps, --jobs {args.jobs}, {os.cpu_count()} CPUs")  # fmt: skip
        for run in sorted((out / "runs").iterdir()):
            summary = rundir.read_summary(run)
            assert summary is not None, run
            rows = (run / "history.csv").read_text().count("\n") - 1
            print(f"  {summary.name:<6} backend {summary.backend:<10} "
                  f"{summary.step_time_ms:.3f} ms/step  train {summary.train_seconds:.1f} s"
                  f"  {rows} evaluation points  status {summary.status}")  # fmt: skip
        print(f"total wall time: {wall:.1f} s (target < 120 s)")


if __name__ == "__main__":
    main()
