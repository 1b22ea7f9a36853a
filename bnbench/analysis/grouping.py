"""Group separately trained runs by the settings in which their resolved configs differ.

Each config is flattened to dotted keys (`model.norm.kind`, `model.blocks.0.units`: the spelling
of `--set`). A key whose value is not the same in every run (or that some run lacks) is a
grouping key, and a group is one combination of their values, labelled like
`model.norm.kind=batch, training.learning_rate=0.1`. The seed is never a grouping key, so runs
that differ only by seed are the seeds of one group; neither is the config's `name`, a label a
user picks per run (`tiny-s0`, `tiny-s1`) rather than a setting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Config keys that never define a group: the seed (runs of one setting differ by it) and the name.
NOT_GROUPING = ("seed", "name")
ABSENT = "(absent)"  # how a label shows a key that a run's config does not have


@dataclass(frozen=True)
class Group:
    """Runs whose configs agree on every grouping key.

    Attributes:
        label: The grouping keys' values, e.g. "model.norm.kind=batch, training.steps=500";
            "all runs" when no key differs.
        values: Grouping key -> this group's value (`ABSENT` when its configs lack it).
        members: Indices of its runs in the order they were given.
    """

    label: str
    values: dict[str, Any]
    members: tuple[int, ...]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`config` as dotted key -> leaf value; list items are keyed by index (`blocks.0.units`).

    An empty mapping or list is a leaf of its own, so that "no blocks" and "absent" differ.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{dotted}."))
        elif isinstance(value, list) and value:
            flat.update(flatten({str(i): item for i, item in enumerate(value)}, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Dotted keys whose value is not the same in every config, in the configs' own key order.

    `NOT_GROUPING` keys are left out.
    """
    flats = [flatten(config) for config in configs]
    keys = list(dict.fromkeys(key for flat in flats for key in flat))
    differing = []
    for key in keys:
        if key in NOT_GROUPING:
            continue
        values = {_canonical(flat[key]) if key in flat else None for flat in flats}
        if len(values) > 1:
            differing.append(key)
    return differing


def group_runs(configs: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[Group]]:
    """Group runs by the keys in which their configs differ.

    Args:
        configs: Each run's resolved config, in the order the runs were given.

    Returns:
        (the grouping keys, the groups in order of their first run).
    """
    keys = differing_keys(configs)
    found: dict[str, list[int]] = {}
    values: dict[str, dict[str, Any]] = {}
    for index, config in enumerate(configs):
        flat = flatten(config)
        mine = {key: flat.get(key, ABSENT) for key in keys}
        identity = _canonical(mine)
        found.setdefault(identity, []).append(index)
        values.setdefault(identity, mine)
    labels = {identity: label_of(values[identity]) for identity in found}
    if len(set(labels.values())) < len(labels):  # e.g. the string "0.1" beside the number 0.1
        labels = {identity: label_of(values[identity], exact=True) for identity in found}
    labels = _short_models(keys, values, labels)
    return keys, [Group(labels[i], values[i], tuple(found[i])) for i in found]


# Two architectures differ in dozens of `model.*` keys (every block's every field): past this
# many, a label names the model by number ("model 2 differs") and the notes list the keys.
MODEL_KEYS_SHOWN = 3


def model_keys(keys: Sequence[str]) -> list[str]:
    """The grouping keys a label replaces by "model N" (none when at most MODEL_KEYS_SHOWN)."""
    found = [key for key in keys if key.startswith("model.")]
    return found if len(found) > MODEL_KEYS_SHOWN else []


def _short_models(
    keys: list[str], values: dict[str, dict[str, Any]], labels: dict[str, str]
) -> dict[str, str]:
    """Labels with the model's many differing keys said as "model N differs"."""
    replaced = model_keys(keys)
    if not replaced:
        return labels
    models: dict[str, int] = {}
    short = {}
    for identity, mine in values.items():
        model = _canonical({key: mine[key] for key in replaced})
        number = models.setdefault(model, len(models) + 1)
        rest = {key: value for key, value in mine.items() if key not in replaced}
        short[identity] = ", ".join(
            [f"model {number} differs", *([label_of(rest)] if rest else [])]
        )
    return short if len(set(short.values())) == len(short) else labels


def label_of(values: Mapping[str, Any], *, exact: bool = False) -> str:
    """E.g. "model.norm.kind=batch, training.learning_rate=0.1"; "all runs" without keys.

    Args:
        values: Grouping key -> value.
        exact: Show every value as JSON (strings quoted), for labels that would otherwise merge.
    """
    if not values:
        return "all runs"
    text = _canonical if exact else show
    return ", ".join(f"{key}={text(value)}" for key, value in values.items())


def show(value: Any) -> str:
    """A config value as `--set` would take it: YAML's true/false/null, floats exactly."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as this float: labels never merge
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
