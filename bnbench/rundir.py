"""The run directory: atomic writes, completeness markers, deterministic run ids.

A run directory is complete when it holds `summary.json` and no `INCOMPLETE` marker. The marker
is written before anything else and removed only after the summary is in place, so a run killed
at any moment (Ctrl-C, `kill -9`, power loss) is recognisably incomplete.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

INCOMPLETE = "INCOMPLETE"
SUMMARY = "summary.json"
CONFIG = "config.yaml"
HISTORY = "history.csv"
MODEL = "model.keras"
TRACEBACK = "traceback.txt"
FINISHED_STATUSES = ("completed", "diverged", "failed")
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    atomic_write_text(path, buffer.getvalue())


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary, or None when the run is incomplete or never started."""
    if (run_dir / INCOMPLETE).exists():
        return None
    return read_json(run_dir / SUMMARY)


def run_state(run_dir: Path) -> str:
    """'missing', 'incomplete', or the finished status ('completed', 'diverged', 'failed')."""
    if not run_dir.exists():
        return "missing"
    summary = read_summary(run_dir)
    if summary is None or summary.get("status") not in FINISHED_STATUSES:
        return "incomplete"
    return str(summary["status"])


def config_hash(resolved: Mapping[str, Any]) -> str:
    """A stable hash of a resolved config: canonical JSON, sorted keys."""
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def slug(text: str, limit: int = 48) -> str:
    """A file-name-safe, readable version of `text`."""
    cleaned = re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_")
    return cleaned[:limit] or "run"


def run_id(resolved: Mapping[str, Any], label: str | None = None) -> str:
    """Deterministic run id: a readable slug plus the first 10 hex digits of the config hash."""
    name = label or str(resolved.get("name", "run"))
    return f"{slug(name)}-{config_hash(resolved)[:10]}"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
