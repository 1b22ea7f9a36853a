"""Many seeds in one program: wall times with 10 seeds, per-seed vs vectorized.

Two workloads, each twice in a subprocess into fresh results directories with a fresh, empty
JAX compilation cache: once with `--group-size 1` (every run trains alone, as before vectorized
groups) and once with the default groups (the seeds of one arm and cell train as one JAX
program). Prints both wall times, the ratio, the machine's load, and how far apart the final
numbers of the two paths are.

* The quickstart ablation (configs/ablations/quickstart.yaml: 3 arms on the digits MLP) with 10
  seeds instead of 3, as `bnbench ablate`. Its diagnostics (activation percentiles,
  train/inference gap) are not vectorized, so they are switched off in both passes (`--set`);
  with them on, both passes would train every run alone.
* The default claims pass, `bnbench claims run --quick` (10 seeds), as shipped: the claims
  whose runs record diagnostics, recalibrated statistics or a shift evaluation train seed by
  seed on both paths (their summaries say so), the others in groups. About ten minutes per
  path on two cores; `--no-claims` leaves it out.

    python scripts/bench_seeds.py [--seeds 10] [--jobs 2] [--no-claims]
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
    return _timed(out, ["ablate", str(path), "--out", str(out), "--jobs", str(jobs),
                        "--group-size", str(group_size), "--quiet", "--no-plots",
                        *NO_DIAGNOSTICS])  # fmt: skip


def _claims(out: Path, seeds: int, jobs: int, group_size: int) -> float:
    return _timed(out, ["claims", "run", "--quick", "--seeds", str(seeds), "--out", str(out),
                        "--jobs", str(jobs), "--group-size", str(group_size), "--quiet",
                        "--no-report"])  # fmt: skip


def _timed(out: Path, words: list[str]) -> float:
    """Seconds `bnbench WORDS` takes in a subprocess, writing into `out`.

    A fresh, empty JAX compilation cache per pass: both pay their compilations (the first run
    of a grid); a cache warmed by the other pass, or by earlier runs, would favour one.
    """
    env = {**os.environ, "BNBENCH_CACHE_DIR": str(out.parent / f"cache-{out.name}")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bnbench", *words], check=True, capture_output=True,
                   env=env)  # fmt: skip
    return time.perf_counter() - start


def _finals(out: Path) -> dict[str, dict[str, float]]:
    """Each run's final numbers, by its path under `out` (an ablation's runs/, or a claims
    folder's <claim>/runs/)."""
    finals = {}
    for run_dir in sorted(out.glob("**/runs/*")):
        if not run_dir.is_dir():
            continue
        summary = rundir.read_summary(run_dir)
        if summary is None or summary.status not in ("completed", "diverged"):
            raise SystemExit(f"{run_dir}: not completed")
        finals[str(run_dir.relative_to(out))] = summary.final
    return finals


def _worst(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> str:
    """The largest difference between the two paths' final numbers (runs and keys of both),
    with the run and number it is in."""
    if set(a) != set(b):
        raise SystemExit("the two paths trained different runs")
    gaps = [(abs(a[run][k] - b[run][k]), run, k, a[run][k], b[run][k])
            for run in a for k in sorted(a[run].keys() & b[run].keys())]  # fmt: skip
    gaps = [gap for gap in gaps if gap[0] == gap[0]]  # NaN: a diverged run on both
    if not gaps:
        return "none"
    gap, run, key, alone, grouped = max(gaps)
    return f"{gap:.2g} ({run}: {key} {alone:.6g} alone, {grouped:.6g} grouped)"


def _vectorized(out: Path) -> tuple[int, int]:
    """(runs that trained in a group, all runs) under `out`."""
    found = [rundir.read_summary(d) for d in out.glob("**/runs/*") if d.is_dir()]
    return sum(1 for s in found if s and s.vectorized), len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--claims", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the default claims pass (about 20 minutes)")
    args = parser.parse_args()
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "quickstart_seeds.yaml"
        path.write_text(yaml.safe_dump(_ablation(args.seeds), sort_keys=False))
        alone = _run(path, Path(tmp) / "alone", args.jobs, 1)
        grouped = _run(path, Path(tmp) / "grouped", args.jobs, 16)
        worst = _worst(_finals(Path(tmp) / "alone"), _finals(Path(tmp) / "grouped"))
        runs = 3 * args.seeds
        _report(f"quickstart ablation, {runs} runs ({args.seeds} seeds x 3 arms), --jobs "
                f"{args.jobs}, diagnostics off", alone, grouped, worst,
                _vectorized(Path(tmp) / "grouped"))  # fmt: skip
        found["quickstart"] = {"per_seed_s": alone, "vectorized_s": grouped,
                               "ratio": alone / grouped}  # fmt: skip
        if args.claims:
            alone = _claims(Path(tmp) / "claims-alone", args.seeds, args.jobs, 1)
            grouped = _claims(Path(tmp) / "claims-grouped", args.seeds, args.jobs, 16)
            worst = _worst(_finals(Path(tmp) / "claims-alone"),
                           _finals(Path(tmp) / "claims-grouped"))  # fmt: skip
            _report(f"claims run --quick --seeds {args.seeds}, --jobs {args.jobs}", alone,
                    grouped, worst, _vectorized(Path(tmp) / "claims-grouped"))  # fmt: skip
            found["claims"] = {"per_seed_s": alone, "vectorized_s": grouped,
                               "ratio": alone / grouped}  # fmt: skip
    print(json.dumps(found))


def _report(what: str, alone: float, grouped: float, worst: str,
            vectorized: tuple[int, int]) -> None:  # fmt: skip
    print(f"{what}, cold JAX compilation cache, {os.cpu_count()} CPUs")
    print(f"  per-seed path (--group-size 1): {alone:7.1f} s")
    print(f"  vectorized groups (default):    {grouped:7.1f} s  "
          f"({vectorized[0]} of {vectorized[1]} runs in groups)")  # fmt: skip
    print(f"  ratio: {alone / grouped:.2f}x; largest final-metric difference: {worst}")
    print("  load: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
