"""What ran a run: library versions and the machine, for run summaries and ablation manifests."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

import bnbench

_LIBRARIES = ("keras", "tensorflow", "jax", "jaxlib", "torch", "numpy", "scikit-learn", "pydantic")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that can change a run's numbers."""
    versions = {"bnbench": bnbench.__version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, Any]:
    """CPU and OS description; GPU names when a backend is already imported and sees one."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpus is not None:
        info["cuda_visible_devices"] = gpus
    return info


def cpu_name() -> str:
    """The CPU's model name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
