"""Real small filesystems for tests: a tmpfs of a given size, optionally made read-only."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(mount: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a tmpfs of `size` at `mount` (needs root or CAP_SYS_ADMIN; the test is skipped
    elsewhere), unmounted afterwards."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def make_read_only(mount: Path) -> None:
    """Remount the tmpfs at `mount` read-only (even root cannot write it then)."""
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
