"""Ablation specs and their expansion into matched arms × grid cells × paired seeds.

An ablation is data beside the run spec it varies. `expand` is a pure function from the
ablation (and its base spec) to the list of planned runs; every planned run is validated before
anything trains, so a grid with one invalid cell fails up front.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bnbench.config.backend_policy import choose_backend
from bnbench.config.identity import config_hash, run_id
from bnbench.config.loading import EXCLUSIVE_KEYS, apply_overrides, set_dotted, validate
from bnbench.config.schema import RunSpec
from bnbench.config.sets import parse_sets, refuse_shadowed_sets, shown_value
from bnbench.config.yamlfile import SourceMap, load_yaml
from bnbench.errors import SpecError


class AblationSpec(BaseModel):
    """The ablation file, validated."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    base: str | dict[str, Any]
    overrides: dict[str, Any] = {}
    arms: dict[str, dict[str, Any]] = Field(min_length=1)
    grid: dict[str, list[Any]] = {}
    exclude: list[dict[str, Any]] = []
    seeds: list[int] | None = None
    repeats: int | None = Field(None, ge=1)
    reference: str | None = None
    mixed_backends: bool = Field(
        False, description="let arms of one comparison run on different backends"
    )

    @field_validator("grid")
    @classmethod
    def _non_empty_lists(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"grid key {key!r} has no values; give at least one")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"grid key {key!r} repeats a value: {values}")
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None:
            if not value:
                raise ValueError("give at least one seed")
            if len(set(value)) != len(value) or min(value) < 0:
                raise ValueError(f"seeds must be distinct non-negative integers, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AblationSpec:
        if self.seeds is not None and self.repeats is not None:
            raise ValueError("give seeds or repeats, not both")
        if "grid" in self.model_fields_set and not self.grid:
            raise ValueError("grid is empty; remove it or give at least one key with values")
        if self.reference is not None and self.reference not in self.arms:
            raise ValueError(
                f"reference {self.reference!r} is not an arm; arms: {', '.join(self.arms)}"
            )
        for arm, overrides in self.arms.items():
            both = sorted(set(overrides) & set(self.grid))
            if both:
                raise ValueError(f"arm {arm!r} sets {', '.join(both)}, which the grid varies")
            if {"seed", "name"} & set(overrides):
                raise ValueError(
                    f"arm {arm!r} sets seed or name; seeds come from `seeds`/`repeats` and "
                    "the name is the arm's"
                )
        for entry in self.exclude:
            if "arm" in entry and entry["arm"] not in self.arms:
                raise ValueError(f"exclude names unknown arm {entry['arm']!r}")
            unknown = [k for k in entry if k != "arm" and k not in self.grid]
            if unknown:
                raise ValueError(
                    f"exclude keys must be 'arm' or grid keys ({', '.join(self.grid) or 'none'}),"
                    f" got {', '.join(unknown)}"
                )
        return self

    @property
    def seed_list(self) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        return list(range(self.repeats or 1))

    @property
    def reference_arm(self) -> str:
        return self.reference or next(iter(self.arms))


@dataclass(frozen=True)
class PlannedRun:
    """One run of the expanded ablation."""

    index: int
    arm: str
    grid: dict[str, Any]
    seed: int
    spec: RunSpec
    run_id: str

    @property
    def cell(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.grid.items())

    @property
    def where(self) -> str:
        """The run in words, for messages: "arm 'bn', training.learning_rate=0.1, seed 0"."""
        return f"arm {self.arm!r}" + (f", {_label(self.grid)}" if self.grid else "") + (
            f", seed {self.seed}"
        )

    def entry(self) -> dict[str, Any]:
        """What the run directory records about its place in the ablation."""
        return {"arm": self.arm, "grid": self.grid, "seed": self.seed, "cell": self.cell}


@dataclass(frozen=True)
class Ablation:
    """A loaded ablation: its spec, resolved data, and the planned runs.

    Attributes:
        spec: The ablation file, validated.
        resolved: What the results tree records as `ablation.yaml`: the file with its base
            spec inlined, its seeds listed, its reference arm named, and under `set` the
            command line's `--set` overrides (absent when there were none).
        runs: The expanded runs.
    """

    spec: AblationSpec
    resolved: dict[str, Any]
    runs: list[PlannedRun]

    @property
    def sets(self) -> dict[str, Any]:
        """The command line's `--set` overrides, by dotted key."""
        return dict(self.resolved.get(SET_KEY) or {})


# The key of `ablation.yaml` that records the `--set` overrides an ablation was run with.
SET_KEY = "set"


def load_ablation(path: Path, sets: Iterable[str] = ()) -> Ablation:
    """Read, validate and expand an ablation file.

    Args:
        path: the ablation file.
        sets: 'dotted.key=value' overrides from the command line (`--set`). Each acts as one
            more entry at the end of the file's `overrides`: it changes the base spec of every
            run, and the arms and the grid are applied after it. A key that an arm or the grid
            also sets (or replaces: `training.steps` and `training.epochs`) is refused, since
            it would be silently undone there; so are `seed` and `name`, which the ablation
            gives each run. `seeds=[0, 1, 2]` replaces the file's seeds (or repeats) instead:
            more seeds for a tree already trained train only the new runs.

    Raises:
        SpecError: anything wrong with the ablation, its base spec, a `--set`, or any
            expanded run.
    """
    command_line = parse_sets(sets)
    data, where = load_yaml(path)
    if "seeds" in command_line:  # the ablation's own key: as if the file said it
        data = {**data, "seeds": command_line.pop("seeds")}
        data.pop("repeats", None)
    if "arms" not in data and ("model" in data or "dataset" in data):
        raise SpecError(
            f"{path}: this is a run spec (it has model/dataset and no arms); "
            "use bnbench validate or bnbench train"
        )
    spec = validate(AblationSpec, data, where)
    refuse_shadowed_sets(spec.grid, spec.arms, command_line)
    if isinstance(spec.base, str):
        try:
            base_path = (path.parent / spec.base).resolve()
        except (OSError, ValueError) as err:  # a NUL byte, a loop of links
            raise SpecError(f"{where.where(('base',))}: base {spec.base!r}: {err}") from None
        base, _ = load_yaml(base_path)
        base_where = str(base_path)
    else:
        base, base_where = spec.base, f"{path} (base)"
    runs = expand(spec, base, base_where, where, command_line)
    return Ablation(spec, _resolved(spec, base, command_line), runs)


def _resolved(spec: AblationSpec, base: dict[str, Any], sets: Mapping[str, Any]) -> dict[str, Any]:
    out = spec.model_dump(mode="json")
    out["base"] = base
    out["seeds"] = spec.seed_list
    out["reference"] = spec.reference_arm
    out.pop("repeats", None)
    if not sets:  # no key at all, so that trees written before --set existed still match
        return out
    ordered: dict[str, Any] = {}
    for key, value in out.items():
        ordered[key] = value
        if key == "overrides":  # where a reader looks for what every run was given
            ordered[SET_KEY] = dict(sets)
    return ordered


def _matches(entry: dict[str, Any], arm: str, cell: dict[str, Any]) -> bool:
    wanted = {k: v for k, v in entry.items() if k != "arm"}
    return entry.get("arm", arm) == arm and all(cell.get(k) == v for k, v in wanted.items())


def _excluded(spec: AblationSpec, arm: str, cell: dict[str, Any]) -> bool:
    return any(_matches(entry, arm, cell) for entry in spec.exclude)


def _check_excludes(spec: AblationSpec, cells: list[dict[str, Any]], where: SourceMap) -> None:
    """An exclude entry that matches no run is a typo (a value not in the grid, say).

    Raises:
        SpecError: it matches nothing.
    """
    for index, entry in enumerate(spec.exclude):
        if not any(_matches(entry, arm, cell) for arm in spec.arms for cell in cells):
            raise SpecError(
                f"{where.where(('exclude', index))}: exclude entry {entry} matches no run; "
                f"the grid is {spec.grid}"
            )


def _blame(err: SpecError, keys: list[str], arm: str, where: SourceMap | None, source: str,
           sets: Mapping[str, Any]) -> str:  # fmt: skip
    """Where an error in an expanded run comes from: a --set, the ablation file's arm, grid or
    overrides (the file and line), the arm's name, or else the base."""
    for key, value in sets.items():
        if key in str(err):
            return f"--set {key}={shown_value(value)}"
    if where is not None:
        for key in keys:
            if key in str(err):
                section = ("grid", key) if key in where_keys(where, "grid") else ("arms", arm, key)
                return where.where(section)
        for key in where_keys(where, "overrides"):
            if key in str(err):
                return where.where(("overrides", key))
        if str(err).startswith("name:"):  # the run's name is its arm's
            return where.where(("arms", arm))
    return source


def where_keys(where: SourceMap, section: str) -> set[str]:
    """The keys a section of the ablation file gives (those it has lines for)."""
    return {str(path[1]) for path in where.lines() if len(path) == 2 and path[0] == section}


def expand(
    spec: AblationSpec,
    base: dict[str, Any],
    source: str = "base",
    ablation_where: SourceMap | None = None,
    sets: Mapping[str, Any] | None = None,
) -> list[PlannedRun]:
    """Cross arms × grid cells × seeds into validated, uniquely identified runs.

    Every arm and cell gets the same seeds, so runs can be compared pair by pair. The run's
    `name` is its arm, so the run id (slug + hash of the resolved config) says which arm it is.
    The base gets the file's `overrides`, then `sets` (the command line's `--set`), then each
    arm's and grid cell's values.

    Raises:
        SpecError: a dotted key that does not exist, a value of the wrong type, two arms that
            produce identical runs, or a grid that excludes everything.
    """
    sets = sets or {}
    try:
        common = apply_overrides(base, spec.overrides.items(), RunSpec, EXCLUSIVE_KEYS)
    except SpecError as err:
        given = where_keys(ablation_where, "overrides") if ablation_where is not None else set()
        key = next((k for k in given if k in str(err)), None)
        origin = ablation_where.where(("overrides", key)) if ablation_where and key else "overrides"
        raise SpecError(f"{origin}: {err}") from None
    for key, value in sets.items():
        try:
            common = apply_overrides(common, [(key, value)], RunSpec, EXCLUSIVE_KEYS)
        except SpecError as err:
            raise SpecError(f"--set {key}={shown_value(value)}: {err}") from None
    keys = list(spec.grid)
    cells = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*spec.grid.values())
    ]
    if ablation_where is not None:
        _check_excludes(spec, cells, ablation_where)
    runs: list[PlannedRun] = []
    seen: dict[str, str] = {}
    for arm, arm_overrides in spec.arms.items():
        for cell in cells:
            if _excluded(spec, arm, cell):
                continue
            for seed in spec.seed_list:
                where = f"arm {arm!r}" + (f", {_label(cell)}" if cell else "") + f", seed {seed}"
                try:
                    data = apply_overrides(
                        common, [*arm_overrides.items(), *cell.items()], RunSpec, EXCLUSIVE_KEYS
                    )
                    set_dotted(data, "seed", seed, RunSpec)
                    set_dotted(data, "name", arm, RunSpec)
                    run_spec = validate(RunSpec, data, None)
                except SpecError as err:
                    keys = [*arm_overrides, *cell]
                    origin = _blame(err, keys, arm, ablation_where, source, sets)
                    raise SpecError(f"{origin}: {where}: {err}") from None
                runs.append(PlannedRun(len(runs), arm, cell, seed, run_spec, ""))
                body = run_spec.model_dump(mode="json", exclude={"name"})
                fingerprint = config_hash(body)
                if fingerprint in seen:
                    raise SpecError(
                        f"{where} is identical to {seen[fingerprint]}; arms must differ"
                    )
                seen[fingerprint] = where
    if not runs:
        raise SpecError("the ablation expands to no runs (every grid cell is excluded)")
    runs = _same_backend(spec, runs)
    return [PlannedRun(r.index, r.arm, r.grid, r.seed, r.spec, _run_id(r)) for r in runs]


def _label(cell: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.items())


def _run_id(run: PlannedRun) -> str:
    resolved = run.spec.model_dump(mode="json")
    values = "-".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in run.grid.items())
    label = "-".join(p for p in (run.arm, values, f"s{run.seed}") if p)
    return run_id(resolved, label=label)


def _same_backend(spec: AblationSpec, runs: list[PlannedRun]) -> list[PlannedRun]:
    """Pin every run's backend; within a grid cell all arms use the reference arm's choice.

    With `backend: auto` the policy could pick different backends for arms that differ in
    structure (say, a conv arm and a dense arm): then a BN-vs-none difference would partly be a
    backend difference. Unless `mixed_backends` is set, the reference arm's choice wins.
    """
    chosen = {(r.arm, r.cell, r.seed): choose_backend(r.spec) for r in runs}
    pinned = []
    for r in runs:
        backend = chosen[(r.arm, r.cell, r.seed)]
        if not spec.mixed_backends:
            backend = chosen.get((spec.reference_arm, r.cell, r.seed), backend)
        new_spec = r.spec.model_copy(update={"backend": backend})
        pinned.append(PlannedRun(r.index, r.arm, r.grid, r.seed, new_spec, ""))
    return pinned
