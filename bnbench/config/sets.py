"""`--set` on an ablation (`plan`, `ablate`): parsing, the keys arms and grid would undo, and
the options that reproduce a recorded set.

Each `--set` acts as one more entry at the end of the ablation's `overrides`; arms and the grid
are applied after it, which is why a `--set` of a key they set is refused rather than ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from bnbench.config.loading import EXCLUSIVE_KEYS, parse_assignment
from bnbench.errors import SpecError


def parse_sets(sets: Iterable[str]) -> dict[str, Any]:
    """['training.steps=20', ...] -> {'training.steps': 20, ...}; a repeated key keeps its last.

    Raises:
        SpecError: an item is not 'dotted.key=value'.
    """
    found: dict[str, Any] = {}
    for text in sets:
        key, value = parse_assignment(text)
        found.pop(key, None)  # in the order last given
        found[key] = value
    return found


def refuse_shadowed_sets(
    grid: Iterable[str], arms: Mapping[str, Mapping[str, Any]], sets: Mapping[str, Any]
) -> None:
    """Refuse a `--set` that an arm or the grid would undo in some runs (it would do nothing
    there, silently), and a `--set` of what the ablation gives each run (seed, name).

    Two keys collide when they are equal, when one lies inside the other (`model.norm` and
    `model.norm.kind`), or when one replaces the other (`training.steps`, `training.epochs`).

    Raises:
        SpecError: naming the option, who sets the key, and what to do instead.
    """
    owners = [("the grid", key, "every run") for key in grid]
    owners += [(f"arm {arm!r}", key, "its runs") for arm, keys in arms.items() for key in keys]
    for key, value in sets.items():
        option = f"--set {key}={shown_value(value)}"
        if key.split(".")[0] in ("seed", "name"):
            raise SpecError(
                f"{option}: the ablation gives every run its seed (seeds or repeats) and its "
                "name (its arm), so this --set would do nothing; change the ablation file"
            )
        for owner, other, scope in owners:
            how = _collision(key, other)
            if how:
                raise SpecError(
                    f"{option}: {owner} sets {other}, which {how} in {scope} (arms and the "
                    "grid are applied after --set, so it would be silently undone); change "
                    "the ablation file instead"
                )


def _collision(key: str, other: str) -> str:
    """How setting `other` after `key` undoes it: '' when it does not."""
    if other == key:
        return "overrides it"
    if other.startswith(f"{key}."):
        return "overrides part of it"
    if key.startswith(f"{other}."):
        return "replaces it"
    if EXCLUSIVE_KEYS.get(key) == other:
        return f"clears {key}"
    return ""


def shown_value(value: Any) -> str:
    """A --set value as it would be typed."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def set_options(sets: Mapping[str, Any]) -> str:
    """The `--set` options that give `sets`: '--set training.steps=20 --set ...'."""
    return " ".join(f"--set {key}={shown_value(value)}" for key, value in sets.items())
