"""Wall time of `bnbench claims run --quick --jobs 2` (and, with --full, of the full suite).

Each pass runs in a subprocess into a fresh results directory (a temporary one unless --out is
given), includes the report at the end (verdict table and figures), and is timed from the
command's start to its exit. Per claim, the seconds between its first and last run's summary
are printed too, from the run directories.

    python scripts/bench_claims.py [--full | --skip-quick] [--jobs 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bnbench.claims.registry import CLAIMS


def _pass(out: Path, jobs: int, quick: bool) -> float:
    command = [sys.executable, "-m", "bnbench", "claims", "run", "--out", str(out), "--jobs",
               str(jobs), "--quiet", *(["--quick"] if quick else [])]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _claim_seconds(out: Path) -> dict[str, float]:
    """Per claim: from the earliest run start to the latest summary write, in seconds."""
    seconds = {}
    for claim_id in CLAIMS:
        summaries = list((out / claim_id / "runs").glob("*/summary.json"))
        if not summaries:
            continue
        ends = [p.stat().st_mtime for p in summaries]
        starts = [p.parent.joinpath("config.yaml").stat().st_mtime for p in summaries]
        seconds[claim_id] = max(ends) - min(starts)
    return seconds


def _report(name: str, out: Path, wall: float) -> None:
    data = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    runs = sum(len(list((out / c / "runs").iterdir())) for c in CLAIMS if (out / c).is_dir())
    print(f"{name}: {wall:.0f} s wall ({wall / 60:.1f} min) for {len(data['claims'])} claims, "
          f"{runs} runs, report included")  # fmt: skip
    for claim_id, seconds in _claim_seconds(out).items():
        print(f"  {claim_id:<22} {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also time the full suite")
    parser.add_argument("--skip-quick", action="store_true", help="time only the full suite")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="keep the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.out or Path(scratch)
        passes = [] if args.skip_quick else [("quick", True)]
        passes += [("full", False)] if args.full or args.skip_quick else []
        for name, quick in passes:
            out = root / name
            wall = _pass(out, args.jobs, quick)
            flag = "--quick " if quick else ""
            _report(f"claims run {flag}--jobs {args.jobs} ({name} budget)", out, wall)


if __name__ == "__main__":
    main()
