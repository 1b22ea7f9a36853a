"""More seeds or grid values for an ablation that already has a results tree.

Run ids are hashes of each run's resolved config, so a run of the extended ablation that the
tree already holds has the same id and folder there: adding seeds (or values to a grid key)
trains only the new runs. Anything else that differs (the base spec, the overrides, an arm,
`--set`, the exclusions, a grid key) changes what the old runs mean, and stays refused by
`destination_refusal`. An extension is recorded in manifest.json under `extended`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from bnbench.results import files, tree_files
from bnbench.results.layout import ABLATION

# The keys of ablation.yaml that an extension may grow.
GROWABLE = ("seeds", "grid")


def added(existing: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any] | None:
    """What `resolved` adds to the ablation `existing` ({"seeds": [...], "grid": {...}}), when
    it only adds seeds or values of grid keys already there; else None (also when equal)."""
    if existing == resolved or existing.get("name") != resolved.get("name"):
        return None
    rest = {k: v for k, v in existing.items() if k not in GROWABLE}
    if rest != {k: v for k, v in resolved.items() if k not in GROWABLE}:
        return None
    old_seeds, new_seeds = existing.get("seeds") or [], resolved.get("seeds") or []
    old_grid, new_grid = existing.get("grid") or {}, resolved.get("grid") or {}
    if not set(old_seeds) <= set(new_seeds) or set(old_grid) != set(new_grid):
        return None
    if any(value not in new_grid[key] for key, values in old_grid.items() for value in values):
        return None
    grid = {key: [v for v in values if v not in old_grid[key]] for key, values in new_grid.items()}
    return {
        "seeds": [seed for seed in new_seeds if seed not in old_seeds],
        "grid": {key: values for key, values in grid.items() if values},
    }


def describe(extra: dict[str, Any]) -> str:
    """'seeds 2, 3 and training.learning_rate=0.3' for messages."""
    parts = []
    if extra["seeds"]:
        parts.append("seeds " + ", ".join(map(str, extra["seeds"])))
    parts += [f"{key}={', '.join(map(str, values))}" for key, values in extra["grid"].items()]
    return " and ".join(parts)


def record(results_dir: Path, resolved: dict[str, Any], extra: dict[str, Any],
           plan: list[tree_files.PlannedRunRecord]) -> None:  # fmt: skip
    """Write the extended ablation.yaml and add the extension to manifest.json.

    Args:
        results_dir: the results tree.
        resolved: the extended ablation, as ablation.yaml records it.
        extra: what it adds (`added`).
        plan: the manifest's planned runs of the extended ablation.
    """
    manifest = tree_files.read_manifest(results_dir) or tree_files.Manifest()
    entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra,
             "runs_before": manifest.runs, "runs_after": len(plan)}  # fmt: skip
    updated = manifest.model_copy(update={"runs": len(plan), "plan": plan, "finished_at": None,
                                          "extended": [*manifest.extended, entry]})  # fmt: skip
    tree_files.write_manifest(results_dir, updated)
    files.atomic_write_text(results_dir / ABLATION, yaml.safe_dump(resolved, sort_keys=False))
