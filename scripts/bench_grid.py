"""Speedup of `bnbench ablate --jobs 2` over `--jobs 1`, and peak memory, measured in one run.

Runs the same small MLP grid (8 runs: 2 arms x 2 learning rates x 2 seeds on the offline digits
set) into two fresh results directories, once with --jobs 1 and once with --jobs 2, each as
`bnbench ablate` in a subprocess, and prints wall times, the speedup, whether both produced the
same numbers, and the peak resident memory of the whole process tree (sampled from /proc).
Then the same for the quickstart ablation with --jobs 2 (peak memory only).

    python scripts/bench_grid.py [--steps 600] [--skip-quickstart]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bnbench.results import rundir

ROOT = Path(__file__).resolve().parent.parent


def grid_spec(steps: int, backend: str) -> dict:
    """The 8-run grid (also run by bench_executors.py, so their numbers compare)."""
    return {
        "name": f"bench_grid_{backend}",
        "base": str(ROOT / "configs" / "mlp_digits.yaml"),
        "overrides": {"backend": backend,"training.steps": steps, "training.epochs": None,
                      "training.eval_every": steps // 6,
                      "training.target_metric": None, "training.target_value": None},
        "arms": {"no_bn": {"model.norm.kind": "none"}, "bn": {"model.norm.kind": "batch"}},
        "grid": {"training.learning_rate": [0.1, 0.5]},
        "seeds": [0, 1],
    }  # fmt: skip


def _tree_rss_kib(root_pid: int) -> int:
    """Resident memory of `root_pid` and all its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="utf-8") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        pid, parent = int(entry), int(fields["PPid"].strip())
        children.setdefault(parent, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_ablate(ablation: Path, out: Path, jobs: int) -> tuple[float, int, float]:
    """Wall seconds, peak tree RSS (KiB) and CPU seconds (user + system) of one `bnbench ablate`.

    The CPU time is that of the whole process tree: the workers are reaped by `ablate`, and
    `ablate` by this process, so their times add up in `RUSAGE_CHILDREN`.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [sys.executable, "-m", "bnbench", "ablate", str(ablation), "--out", str(out),
               "--jobs", str(jobs), "--quiet", "--no-plots"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"ablate failed:\n{proc.stderr.read().decode() if proc.stderr else ''}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, peak, cpu


def test_losses(out: Path) -> dict[str, float]:
    """Run id -> final test loss of every run of the ablation in `out`."""
    return {run.name: _summary(run).final["test_loss"] for run in sorted((out / "runs").iterdir())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run")
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--skip-quickstart", action="store_true")
    args = parser.parse_args()
    print(f"8-run MLP grid on digits (2 arms x 2 learning rates x 2 seeds), {args.steps} steps "
          f"per run, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'backend':<12}{'jobs 1 s':>10}{'jobs 2 s':>10}{'speedup':>9}{'peak MiB 1/2':>15}"
          f"{'cores busy 1/2':>16}{'same numbers':>14}")  # fmt: skip
    bounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            ablation = Path(tmp) / f"grid_{backend}.yaml"
            ablation.write_text(yaml.safe_dump(grid_spec(args.steps, backend), sort_keys=False))
            one, one_peak, one_cpu = run_ablate(ablation, Path(tmp) / f"{backend}1", 1)
            two, two_peak, two_cpu = run_ablate(ablation, Path(tmp) / f"{backend}2", 2)
            a, b = test_losses(Path(tmp) / f"{backend}1"), test_losses(Path(tmp) / f"{backend}2")
            same = a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-4 * abs(a[k]) for k in a)
            peaks = f"{one_peak / 1024:.0f}/{two_peak / 1024:.0f}"
            busy = f"{one_cpu / one:.2f}/{two_cpu / two:.2f}"
            print(f"{backend:<12}{one:>10.1f}{two:>10.1f}{one / two:>8.2f}x{peaks:>15}{busy:>16}"
                  f"{'yes' if same else 'NO':>14}", flush=True)  # fmt: skip
            bounds.append((backend, one_cpu / one, one_cpu / two_cpu))
        cores = os.cpu_count() or 1
        for backend, busy_one, cpu_ratio in bounds:
            # With `cores` cores and the same CPU work, wall time cannot drop below cpu / cores.
            print(f"{backend}: --jobs 1 already keeps {busy_one:.2f} of {cores} cores busy, so "
                  f"--jobs 2 can be at most {cores / busy_one:.2f}x faster at equal CPU work "
                  f"(CPU work jobs 2 / jobs 1: {1 / cpu_ratio:.2f})")  # fmt: skip
        if not args.skip_quickstart:
            quick = ROOT / "configs" / "ablations" / "quickstart.yaml"
            seconds, peak, _ = run_ablate(quick, Path(tmp) / "quickstart", 2)
            print(f"quickstart ablation (9 runs), --jobs 2: {seconds:.1f} s wall, "
                  f"peak RSS {peak / 1024:.0f} MiB (all processes)")  # fmt: skip


def _summary(run: Path) -> rundir.RunSummary:
    summary = rundir.read_summary(run)
    if summary is None:
        raise SystemExit(f"{run}: unfinished run")
    return summary


if __name__ == "__main__":
    main()
