"""Run bnbench as a user would see it: in a real 80-column pseudo-terminal, or through a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env(columns: int) -> dict[str, str]:
    env = dict(os.environ, COLUMNS=str(columns), LINES="50", TERM="xterm")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)
    env["NO_COLOR"] = "1"  # plain characters, so the test reads what a reader reads
    return env


def in_terminal(*args: str, columns: int = 80, cwd: Path | None = None) -> tuple[int, str]:
    """`python -m bnbench ARGS` with stdout and stderr on a pseudo-tty of `columns` columns."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "bnbench", *args], stdin=subprocess.DEVNULL, stdout=follower,
        stderr=follower, env=_env(columns), cwd=cwd, close_fds=True,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    code = process.wait(timeout=300)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def through_pipe(*args: str, columns: int = 80, cwd: Path | None = None) -> tuple[int, str]:
    """`python -m bnbench ARGS` with stdout on a pipe, as in `bnbench report DIR | less`."""
    done = subprocess.run(
        [sys.executable, "-m", "bnbench", *args], capture_output=True, text=True,
        env=_env(columns), cwd=cwd, timeout=300, check=False,
    )
    return done.returncode, done.stdout + done.stderr
