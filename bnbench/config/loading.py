"""Reading specs: safe YAML with line numbers, dotted overrides, and readable validation errors.

Everything a user can get wrong in a spec file ends here as a `SpecError` whose message names the
file, the line, the dotted key path and the value received.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError

from bnbench.config.registries import suggest
from bnbench.config.schema import RunSpec
from bnbench.config.yamlfile import SourceMap, YamlSyntaxError, load_yaml, parse_yaml
from bnbench.errors import SpecError

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split 'a.b.c=value' into the dotted key and the YAML-parsed value.

    A value that is not YAML is kept as the string given ('--set name=a: b').

    Raises:
        SpecError: no '=', an empty key, or a value too large or too deeply nested.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set expects KEY=VALUE with a dotted key, got {_clip(repr(text))}")
    try:
        value, _ = parse_yaml(raw, f"--set {key.strip()}") if raw.strip() else ("", None)
    except YamlSyntaxError:  # a tag, a bomb or deep nesting is refused, not kept as a string
        value = raw
    return key.strip(), value


def set_dotted(data: dict[str, Any], dotted: str, value: Any, schema: type[BaseModel]) -> None:
    """Set `data[a][b][c] = value` for 'a.b.c', creating mappings that the schema allows.

    Keys are checked against `schema` so that a typo is reported with the closest valid key
    instead of being silently added. Integer parts index into lists ('model.blocks.0.units').

    Raises:
        SpecError: a part of the key does not exist in the schema or in the data.
    """
    parts = dotted.split(".")
    node: Any = data
    shape: Shape = schema
    for depth, part in enumerate(parts):
        here = ".".join(parts[: depth + 1])
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise SpecError(f"{here}: {part!r} is not an index of a list of {len(node)} items")
            index = int(part)
            if last:
                node[index] = value
                return
            node = node[index]  # a list's items share the list's shape
            continue
        if not isinstance(node, dict):
            raise SpecError(f"{here}: cannot set a key inside a {type(node).__name__} value")
        valid = fields_of(shape, node)
        if valid is not None and part not in valid:
            raise SpecError(
                f"{here}: unknown key{suggest(part, valid)}; valid keys: {', '.join(valid)}"
            )
        if last:
            node[part] = value
            return
        shape = valid[part] if valid is not None else None
        if part not in node or node[part] is None:
            node[part] = {}
        node = node[part]


@dataclass(frozen=True)
class Tagged:
    """The members of a discriminated union, by the value of their tag field."""

    tag: str
    members: Mapping[Any, type[BaseModel]]


# What a dotted key can walk into: a model class, a discriminated union, or plain data (None).
Shape = type[BaseModel] | Tagged | None


def fields_of(shape: Shape, node: Any) -> Mapping[str, Shape] | None:
    """The keys valid in `node` when it has `shape`, each mapped to its own shape.

    A discriminated union resolves through the node's tag (`{type: dense, ...}` -> `DenseBlock`);
    None when the shape is plain data or the tag names no member.
    """
    if isinstance(shape, Tagged):
        tag = node.get(shape.tag) if isinstance(node, dict) else None
        shape = shape.members.get(tag)
    return schema_fields(shape)


def schema_fields(model: Any) -> Mapping[str, Shape] | None:
    """The field names of a pydantic model class mapped to the shape of their values."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    return {name: _shape(field.annotation) for name, field in model.model_fields.items()}


def _shape(annotation: Any) -> Shape:
    """The model class or discriminated union inside an annotation (through lists, Optional)."""
    models = _annotation_models(annotation)
    if len(models) == 1:
        return models[0]
    if not models:
        return None
    tags = set.intersection(*(set(_literal_fields(m)) for m in models))
    if len(tags) != 1:
        return None  # a plain union: the members cannot be told apart from the data
    tag = tags.pop()
    return Tagged(tag, {value: m for m in models for value in _literal_fields(m)[tag]})


def _literal_fields(model: type[BaseModel]) -> dict[str, tuple[Any, ...]]:
    """Fields of `model` annotated with a `Literal`, with their allowed values."""
    return {
        name: get_args(field.annotation)
        for name, field in model.model_fields.items()
        if get_origin(field.annotation) is Literal
    }


def _annotation_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_annotation_models(arg))
    return found


def apply_overrides(
    data: dict[str, Any],
    assignments: Iterable[str | tuple[str, Any]],
    schema: type[BaseModel],
    exclusive: Mapping[str, str] | None = None,
    where: SourceMap | None = None,
) -> dict[str, Any]:
    """Return a copy of `data` with each 'dotted.key=value' (or (key, value) pair) applied.

    Args:
        exclusive: key -> key it replaces: setting the first to a value clears the second.
        where: the file's source map; overridden keys are marked there, so that an error in a
            value from the command line is not blamed on a line of the file.
    """
    out = copy.deepcopy(data)
    for item in assignments:
        key, value = parse_assignment(item) if isinstance(item, str) else item
        set_dotted(out, key, value, schema)
        other = (exclusive or {}).get(key)
        if other and value is not None and _has_dotted(out, other):
            set_dotted(out, other, None, schema)
        if where is not None:
            where.overridden.add(tuple(key.split(".")))
    return out


def _has_dotted(data: dict[str, Any], dotted: str) -> bool:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return node is not None


def validate(schema: type[ModelT], data: Any, where: SourceMap | None) -> ModelT:
    """Validate `data` against `schema`, turning pydantic's errors into one readable SpecError."""
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_errors(err, schema, data, where)) from None


# A spec with thousands of unknown keys is a wrong file, not thousands of typos: list the first
# few problems (each clipped to a line's worth) and count the rest.
MAX_LISTED_ERRORS = 20
MAX_LINE = 500
MAX_VALUE = 80


def _clip(text: str, limit: int = MAX_VALUE) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def format_errors(
    err: ValidationError, schema: type[BaseModel], data: Any, where: SourceMap | None
) -> str:
    """One line per problem: location, dotted key, what was received, what was expected.

    At most `MAX_LISTED_ERRORS` lines, then how many more problems there are.
    """
    lines = []
    for problem in err.errors():
        loc = _user_loc(problem["loc"], data)
        dotted = ".".join(_clip(str(p)) for p in loc) or "(top level)"
        prefix = f"{where.where(loc)}: " if where else ""
        kind = problem["type"]
        if kind == "extra_forbidden":
            valid = _valid_keys_at(schema, loc[:-1], data)
            hint = suggest(str(loc[-1]), valid) if valid else ""
            listing = f"; valid keys here: {', '.join(valid)}" if valid else ""
            lines.append(f"{prefix}{dotted}: unknown key{hint}{listing}")
            continue
        message = problem["msg"].removeprefix("Value error, ")
        if kind != "missing" and "input" in problem and "got " not in message:
            received = problem["input"]
            if not isinstance(received, dict | list):
                message = f"{message} (got {_clip(repr(received))})"
        lines.append(f"{prefix}{dotted}: {message}")
    # Unions report one error per member; keep each message once.
    unique = [_clip(line, MAX_LINE) for line in dict.fromkeys(lines)]
    if len(unique) > MAX_LISTED_ERRORS:
        more = len(unique) - MAX_LISTED_ERRORS
        unique = [*unique[:MAX_LISTED_ERRORS], f"... and {more:,} more problems"]
    return "\n".join(unique)


def _user_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop the union tags pydantic inserts into error paths ('dense', 'float', ...).

    A part is kept when it exists in the data, or when it is the last part (a missing or extra
    key); anything else, or anything below a scalar, is a tag.
    """
    out: list[Any] = []
    node = data
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
        elif isinstance(node, dict) and last:
            node = None
        else:
            continue
        out.append(part)
    return tuple(out)


def _valid_keys_at(schema: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str]:
    shape: Shape = schema
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):
            node = node[part] if part < len(node) else None
            continue
        fields = fields_of(shape, node)
        if fields is None or part not in fields:
            return []
        shape = fields[part]
        node = node.get(part) if isinstance(node, dict) else None
    return list(fields_of(shape, node) or [])


# Giving the length in one unit replaces the other, so `--set training.steps=500` works on a spec
# that says `epochs: 10` (both at once is an error).
EXCLUSIVE_KEYS = {"training.steps": "training.epochs", "training.epochs": "training.steps"}


def load_run_spec(path: Path, overrides: Iterable[str | tuple[str, Any]] = ()) -> RunSpec:
    """Read, override and validate a run spec file.

    Args:
        path: the YAML file.
        overrides: 'dotted.key=value' strings (as from --set) or (key, value) pairs.

    Raises:
        SpecError: anything wrong with the file, an override or a value.
    """
    data, where = load_yaml(path)
    if "arms" in data and "base" in data:
        raise SpecError(
            f"{path}: this is an ablation spec (it has base and arms); "
            "use bnbench plan or bnbench ablate"
        )
    data = apply_overrides(data, overrides, RunSpec, EXCLUSIVE_KEYS, where)
    return validate(RunSpec, data, where)
