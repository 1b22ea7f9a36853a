"""The files at the top of an ablation's results tree, typed: `ablation.yaml`, `manifest.json`
and the tables' `summary.json`; each with its writer and reader here.

Readers outside `bnbench.results` get these types, never the raw mappings: a key's default (a
tree copied without its ablation.yaml, a manifest written before it listed the plan) is decided
once, here. `runs.csv` rows are `bnbench.results.rows.RunRow`; run directories are `rundir`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from bnbench.config.ablation import SET_KEY
from bnbench.config.identity import jsonable
from bnbench.results.files import create_exclusive, read_mapping, write_json
from bnbench.results.layout import ABLATION, MANIFEST, TABLES

# --- ablation.yaml: the resolved ablation ---------------------------------------------------------


@dataclass(frozen=True)
class StoredAblation:
    """A tree's `ablation.yaml`: the resolved ablation (`config.ablation.Ablation.resolved`).

    Attributes:
        data: The file's mapping as written ({} for a tree without one): what an ablation is
            compared by and what exports flatten.
    """

    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        """Whether the tree has an ablation.yaml (with anything in it)."""
        return bool(self.data)

    @property
    def name(self) -> str | None:
        """The ablation's name; None when not recorded."""
        name = self.data.get("name")
        return str(name) if name else None

    @property
    def arms(self) -> dict[str, Any]:
        """Arm name -> its changes to the base spec, in the declared order."""
        arms = self.data.get("arms")
        if isinstance(arms, dict):
            return {str(arm): changes for arm, changes in arms.items()}
        return {str(arm): {} for arm in arms} if isinstance(arms, list) else {}

    @property
    def reference(self) -> str | None:
        """The reference arm, when the ablation names one."""
        reference = self.data.get("reference")
        return str(reference) if reference else None

    @property
    def grid(self) -> dict[str, list[Any]]:
        """Grid key -> its values (empty without a grid)."""
        grid = self.data.get("grid")
        if not isinstance(grid, dict):
            return {}
        return {str(k): list(v) if isinstance(v, list) else [v] for k, v in grid.items()}

    @property
    def seeds(self) -> Any:
        """The seeds as written (a list or a count); None when absent."""
        return self.data.get("seeds")

    @property
    def overrides(self) -> Any:
        """The overrides of the base spec as written; None when absent."""
        return self.data.get("overrides")

    @property
    def sets(self) -> dict[str, Any]:
        """The `--set` overrides it was run with (empty without any)."""
        sets = self.data.get(SET_KEY)
        return dict(sets) if isinstance(sets, dict) else {}

    def differs_in(self, resolved: Mapping[str, Any]) -> list[str]:
        """The top-level keys in which `resolved` (another resolved ablation) differs, sorted."""
        keys = set(self.data) | set(resolved)
        return sorted(k for k in keys if self.data.get(k) != resolved.get(k))


def read_ablation(root: Path) -> StoredAblation:
    """The tree's `ablation.yaml` (empty when absent).

    Raises:
        SpecError: the file cannot be parsed or is not a mapping; the message names it.
    """
    return StoredAblation(read_mapping(root / ABLATION))


def create_ablation(root: Path, resolved: Mapping[str, Any]) -> bool:
    """Write `ablation.yaml` unless another invocation did; whether this call wrote it."""
    text = yaml.safe_dump(dict(resolved), sort_keys=False)
    return create_exclusive(root / ABLATION, text.encode("utf-8"))


# --- manifest.json: what ran the ablation, and its plan -------------------------------------------


class _Record(BaseModel):
    # Unknown keys are kept: a file written by a newer version still reads.
    model_config = ConfigDict(extra="allow")


class PlannedRunRecord(_Record):
    """One planned run as the manifest lists it (`bnbench status` shows those not started)."""

    run_id: str
    arm: str = "?"
    cell: str = ""
    seed: int = -1


class Manifest(_Record):
    """The content of `manifest.json`: versions, machine, start and end times, the plan.

    `finished_at` stays None until the last invocation working on the tree finishes; `plan`
    is None in a manifest written before it listed the planned runs.
    """

    ablation: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    versions: dict[str, str] = {}
    machine: dict[str, Any] = {}
    backends: list[str] = []
    runs: int | None = None
    plan: list[PlannedRunRecord] | None = None
    # More seeds or grid values added later (`bnbench.ablate.extend`): when, what, run counts.
    extended: list[dict[str, Any]] = []


def create_manifest(root: Path, manifest: Manifest) -> bool:
    """Write `manifest.json` unless another invocation did; whether this call wrote it."""
    text = json.dumps(manifest.model_dump(), indent=2, default=jsonable) + "\n"
    return create_exclusive(root / MANIFEST, text.encode("utf-8"))


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Write `manifest.json` atomically, replacing any there (a new plan, a finish time)."""
    write_json(root / MANIFEST, manifest.model_dump())


def read_manifest(root: Path) -> Manifest | None:
    """The tree's manifest; None when it has none.

    Raises:
        SpecError: the file cannot be parsed, is not a mapping, or does not fit `Manifest`.
    """
    from pydantic import ValidationError

    from bnbench.errors import SpecError

    data = read_mapping(root / MANIFEST)
    if not data:
        return None
    try:
        return Manifest.model_validate(data)
    except ValidationError as error:
        raise SpecError(f"{root / MANIFEST}: {error.errors()[0]['msg']}") from None


def mark_finished(root: Path) -> None:
    """Record in the manifest that the ablation finished now (no-op without a manifest)."""
    manifest = read_manifest(root)
    if manifest is not None:
        stamped = manifest.model_copy(update={"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        write_manifest(root, stamped)


# --- summary.json: the ablation's tables ----------------------------------------------------------


class TablesSummary(_Record):
    """The content of the tables' `summary.json` (`bnbench report`): one row per arm and grid
    cell, with the choices the statistics were made under and what each statistic means."""

    name: str | None = None
    reference: str | None = None
    metric: str | None = None
    score: str | None = None
    grid_keys: list[str] = []
    select_by: str | None = None
    choices: dict[str, Any] = {}
    definitions: dict[str, str] = {}
    rows: list[dict[str, Any]] = []


def write_tables_summary(root: Path, summary: TablesSummary) -> Path:
    """Write the tables' `summary.json`; its path."""
    path = root / TABLES["json"]
    write_json(path, summary.model_dump())
    return path


def read_tables_summary(root: Path) -> TablesSummary:
    """The tables' `summary.json`.

    Raises:
        SpecError: it is missing, cannot be parsed or does not fit `TablesSummary`.
    """
    from pydantic import ValidationError

    from bnbench.errors import SpecError

    path = root / TABLES["json"]
    try:
        return TablesSummary.model_validate(read_mapping(path, missing_ok=False))
    except ValidationError as error:
        raise SpecError(f"{path}: {error.errors()[0]['msg']}") from None
