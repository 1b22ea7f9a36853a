"""Run identity: a stable hash of a resolved config and the readable run id built on it.

Run ids are a deterministic function of the resolved config (the same spec gives the same id on
every machine), which is what lets a re-run of an ablation find the runs it already finished.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """`json.dumps`' `default`: numpy scalars as Python numbers, paths as strings.

    Raises:
        TypeError: any other type, as `json.dumps` expects.
    """
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def config_hash(resolved: Mapping[str, Any]) -> str:
    """A stable hash of a resolved config: canonical JSON, sorted keys."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=jsonable)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def slug(text: str, limit: int = 48) -> str:
    """A file-name-safe, readable version of `text`."""
    cleaned = re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")
    return cleaned[:limit] or "run"


def run_id(resolved: Mapping[str, Any], label: str | None = None) -> str:
    """Deterministic run id: a readable slug plus the first 10 hex digits of the config hash."""
    name = label or str(resolved.get("name", "run"))
    return f"{slug(name)}-{config_hash(resolved)[:10]}"
