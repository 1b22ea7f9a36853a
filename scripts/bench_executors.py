"""What running a grid elsewhere costs: Ray and concurrent shards against plain `--jobs 2`.

The 8-run MLP grid of `bench_grid.py` (2 arms x 2 learning rates x 2 seeds, digits), each time
into a fresh results folder, as `bnbench ablate` in a subprocess:

1. `--jobs 2` (worker processes here), the reference;
2. `--executor ray --address ...` on a Ray cluster of 2 CPUs started on this machine beforehand
   (`ray start` is not timed), one CPU per run;
3. three `--shard i/3` invocations at once on one folder, against the reference.

It prints wall times, the ratio to the reference (target for Ray: at most 1.15x) and whether
every variant produced the reference's numbers. Needs `pip install "bnbench[ray]"`.

    python scripts/bench_executors.py [--steps 2000] [--backend tensorflow]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from bench_grid import grid_spec, test_losses

# What the grid shares with bench_grid.py, so that the numbers are comparable.
COMMON = ["--quiet", "--no-plots"]


def _ablate(ablation: Path, out: Path, *options: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "bnbench", "ablate", str(ablation), "--out", str(out),
               *COMMON, *options]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _timed(*procs: subprocess.Popen[bytes]) -> float:
    start = time.perf_counter()
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            sys.exit(f"ablate failed:\n{err.decode()}")
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_ray(temp: str) -> str:
    port = _free_port()
    ray = shutil.which("ray") or sys.exit('no `ray` command: pip install "bnbench[ray]"')
    subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2",
                    "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
                    "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True)  # fmt: skip
    return f"127.0.0.1:{port}"


def _same(a: dict[str, float], b: dict[str, float]) -> str:
    same = a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 * abs(b[k]) for k in b)
    return "yes" if same else "NO"


def main() -> None:
    # A cluster started here, reached by address: no token authentication (Ray turns it on for
    # a cluster started where ~/.ray/auth_token exists, and the client must then opt in too).
    os.environ["RAY_AUTH_MODE"] = "disabled"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run")
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax"])
    args = parser.parse_args()
    print(f"8-run MLP grid on digits, {args.steps} steps per run, {args.backend}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ablation = root / "grid.yaml"
        ablation.write_text(yaml.safe_dump(grid_spec(args.steps, args.backend), sort_keys=False))
        # A first run fills the JAX compilation cache and the OS file cache for every variant.
        _timed(_ablate(ablation, root / "warm", "--jobs", "2"))
        local = _timed(_ablate(ablation, root / "local", "--jobs", "2"))
        reference = test_losses(root / "local")
        rows = [("local --jobs 2", local, "yes")]

        temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must be short
        try:
            address = _start_ray(temp)
            ray = _timed(_ablate(ablation, root / "ray", "--executor", "ray", "--address",
                                 address))  # fmt: skip
            rows.append(("ray, 2-CPU cluster", ray, _same(test_losses(root / "ray"), reference)))
        finally:
            subprocess.run([shutil.which("ray") or "ray", "stop", "--force"],
                           capture_output=True)  # fmt: skip
            shutil.rmtree(temp, ignore_errors=True)

        shards = [_ablate(ablation, root / "shards", "--shard", f"{i}/3") for i in (1, 2, 3)]
        sharded = _timed(*shards)
        rows.append(("3 shards at once", sharded, _same(test_losses(root / "shards"), reference)))
    print(f"{'variant':<22}{'wall s':>9}{'vs local':>10}{'same numbers':>14}")
    for name, seconds, same in rows:
        print(f"{name:<22}{seconds:>9.1f}{seconds / local:>9.2f}x{same:>14}")


if __name__ == "__main__":
    main()
