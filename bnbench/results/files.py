"""Writing and reading the files of a results tree: atomic writes and one guarded parser.

Every file bnbench writes goes through a temporary file in the same folder and a rename, so a
reader (or a run killed mid-write) never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bnbench.config.identity import jsonable
from bnbench.errors import SpecError

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
    """Write `text` as UTF-8, atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=jsonable) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    """Write `data` as YAML (keys in their given order), atomically."""
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> None:
    """Write `rows` under the header `columns`, atomically; None is an empty cell.

    Floats are written with `repr`, so that a value read back is the value written.
    """
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


def parse_file(path: Path) -> Any:
    """The content of a JSON (`.json`) or YAML (any other suffix) file, safely parsed.

    Raises:
        SpecError: the file cannot be read or parsed; the message names the path.
    """
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        raise SpecError(f"cannot read {str(path)!r}: {error}") from error


def read_mapping(path: Path, *, missing_ok: bool = True) -> dict[str, Any]:
    """A mapping from a JSON or YAML file; {} when the file is absent and `missing_ok`.

    Raises:
        SpecError: the file cannot be parsed or does not hold a mapping.
    """
    if missing_ok and not path.is_file():
        return {}
    data = parse_file(path)
    if not isinstance(data, dict):
        raise SpecError(f"{str(path)!r}: expected a mapping, got {type(data).__name__}")
    return data
