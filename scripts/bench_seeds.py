"""Many seeds in one program: wall time of an ablation with 10 seeds, per-seed vs vectorized.

Runs the quickstart ablation (configs/ablations/quickstart.yaml: 3 arms on the digits MLP, JAX)
with 10 seeds instead of 3, twice, as `bnbench ablate` in a subprocess into fresh results
directories: once with `--group-size 1` (every run trains alone, as before vectorized groups)
and once with the default groups (each arm's 10 seeds train as one JAX program). Prints both
wall times, the ratio, the machine's load, and whether both paths gave the same final numbers.

The quickstart's diagnostics (activation percentiles, train/inference gap) are not vectorized,
so they are switched off in both passes (`--set`); with them on, both passes would train every
run alone. The default claims pass is not measured: claims do not take a seed count yet.

    python scripts/bench_seeds.py [--seeds 10] [--jobs 2]
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
NO_DIAGNOSTICS = ["--set", "diagnostics.activation_percentiles=null",
                  "--set", "diagnostics.train_inference_gap=false"]  # fmt: skip


def _ablation(seeds: int) -> dict:
    quickstart = yaml.safe_load((ROOT / "configs/ablations/quickstart.yaml").read_text())
    quickstart["base"] = str(ROOT / "configs" / "mlp_digits.yaml")
    quickstart["seeds"] = list(range(seeds))
    return dict(quickstart)


def _run(path: Path, out: Path, jobs: int, group_size: int) -> float:
    # A fresh, empty JAX compilation cache per pass: both pay their compilations (the first
    # run of a grid); a cache warmed by the other pass, or by earlier runs, would favour one.
    env = {**os.environ, "BNBENCH_CACHE_DIR": str(out.parent / f"cache-{out.name}")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    command = [sys.executable, "-m", "bnbench", "ablate", str(path), "--out", str(out),
               "--jobs", str(jobs), "--group-size", str(group_size), "--quiet", "--no-plots",
               *NO_DIAGNOSTICS]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def _finals(out: Path) -> dict[str, dict[str, float]]:
    finals = {}
    for run_dir in sorted((out / "runs").iterdir()):
        summary = rundir.read_summary(run_dir)
        if summary is None or summary.status != "completed":
            raise SystemExit(f"{run_dir}: not completed")
        finals[run_dir.name] = summary.final
    return finals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quickstart_seeds.yaml"
        path.write_text(yaml.safe_dump(_ablation(args.seeds), sort_keys=False))
        alone = _run(path, Path(tmp) / "alone", args.jobs, 1)
        grouped = _run(path, Path(tmp) / "grouped", args.jobs, 16)
        a, b = _finals(Path(tmp) / "alone"), _finals(Path(tmp) / "grouped")
        worst = max(abs(a[run][k] - b[run][k]) for run in a for k in a[run])
    runs = 3 * args.seeds
    print(f"quickstart ablation, {runs} runs ({args.seeds} seeds x 3 arms), --jobs {args.jobs}, "
          f"diagnostics off, cold JAX compilation cache, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"  per-seed path (--group-size 1): {alone:7.1f} s")
    print(f"  vectorized groups (default):    {grouped:7.1f} s")
    print(f"  ratio: {alone / grouped:.2f}x; largest final-metric difference: {worst:.2g}")
    print("  load: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(json.dumps({"per_seed_s": alone, "vectorized_s": grouped, "ratio": alone / grouped}))


if __name__ == "__main__":
    main()
