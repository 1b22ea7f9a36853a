"""Reading specs: safe YAML with line numbers, dotted overrides, and readable validation errors.

Everything a user can get wrong in a spec file ends here as a `SpecError` whose message names the
file, the line, the dotted key path and the value received.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bnbench.errors import SpecError
from bnbench.registries import suggest

ModelT = TypeVar("ModelT", bound=BaseModel)


class SourceMap:
    """Line numbers of the keys of a YAML document, by dotted path."""

    def __init__(self, node: yaml.Node | None, source: str) -> None:
        self.source = source
        self.overridden: set[tuple[str, ...]] = set()
        self._lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self._lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                line = key.start_mark.line + 1
                if key.value in seen:
                    dotted = ".".join(str(p) for p in (*path, key.value))
                    raise SpecError(
                        f"{self.source}, line {line}: duplicate key {dotted!r} "
                        f"(first given on line {seen[key.value]})"
                    )
                seen[key.value] = line
                child = (*path, key.value)
                self._walk(value, child)
                self._lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, index))

    def where(self, path: Iterable[Any]) -> str:
        """'file, line N' for the deepest known prefix of `path`, or the --set that gave it."""
        path = tuple(path)
        for key in self.overridden:
            if tuple(str(p) for p in path[: len(key)]) == key:
                return f"--set {'.'.join(key)}"
        while path and path not in self._lines:
            path = path[:-1]
        line = self._lines.get(path)
        return f"{self.source}, line {line}" if line else self.source


def load_yaml(path: Path) -> tuple[dict[str, Any], SourceMap]:
    """Safely read a YAML mapping from `path`.

    Raises:
        SpecError: the file is missing, empty, not YAML, uses tags, or is not a mapping.
    """
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else "?"
        tag = err.problem.split()[-1] if err.problem else "this one"
        raise SpecError(
            f"{path}, line {line}: YAML tags such as {tag} are refused; "
            "specs are plain data (safe loading only)"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        raise SpecError(f"{path}: the file is empty; expected a spec mapping")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data, SourceMap(node, str(path))


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split 'a.b.c=value' into the dotted key and the YAML-parsed value.

    Raises:
        SpecError: no '=' or an empty key.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set expects KEY=VALUE with a dotted key, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
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
    fields: Mapping[str, Any] | None = schema_fields(schema)
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
            node = node[index]
            fields = None
            continue
        if not isinstance(node, dict):
            raise SpecError(f"{here}: cannot set a key inside a {type(node).__name__} value")
        valid = fields if fields is not None else _block_fields(node)
        if valid is not None and part not in valid:
            raise SpecError(
                f"{here}: unknown key{suggest(part, valid)}; valid keys: {', '.join(valid)}"
            )
        if last:
            node[part] = value
            return
        sub = valid[part] if valid is not None else None
        if part not in node or node[part] is None:
            node[part] = {}
        node = node[part]
        fields = schema_fields(sub) if sub is not None else None


def _block_fields(node: dict[str, Any]) -> Mapping[str, Any] | None:
    from bnbench.config import Conv2DBlock, DenseBlock, FlattenBlock, GlobalAvgPoolBlock

    kinds: dict[str, type[BaseModel]] = {
        "dense": DenseBlock,
        "conv2d": Conv2DBlock,
        "flatten": FlattenBlock,
        "global_avg_pool": GlobalAvgPoolBlock,
    }
    kind = kinds.get(str(node.get("type")))
    return schema_fields(kind) if kind else None


def schema_fields(model: Any) -> Mapping[str, Any] | None:
    """The field names of a pydantic model class mapped to their nested model class (or None)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        nested = None
        for candidate in _annotation_models(field.annotation):
            nested = candidate
            break
        out[name] = nested
    return out


def _annotation_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
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


def format_errors(
    err: ValidationError, schema: type[BaseModel], data: Any, where: SourceMap | None
) -> str:
    """One line per problem: location, dotted key, what was received, what was expected."""
    lines = []
    for problem in err.errors():
        loc = _user_loc(problem["loc"], data)
        dotted = ".".join(str(p) for p in loc) or "(top level)"
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
                message = f"{message} (got {received!r})"
        lines.append(f"{prefix}{dotted}: {message}")
    # Unions report one error per member; keep each message once.
    return "\n".join(dict.fromkeys(lines))


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
    fields = schema_fields(schema)
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):
            node = node[part] if part < len(node) else None
            fields = _block_fields(node) if isinstance(node, dict) else None
            continue
        if fields is None or part not in fields:
            return []
        sub = fields[part]
        node = node.get(part) if isinstance(node, dict) else None
        fields = schema_fields(sub) if sub is not None else None
    return list(fields) if fields else []
