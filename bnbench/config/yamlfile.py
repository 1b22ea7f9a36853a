"""Reading a spec file: safe YAML only, with the line of every key for error messages.

YAML tags are refused (specs are plain data), duplicate keys are an error, and every key's line
is kept so that a validation error can say "file, line N".
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from bnbench.errors import SpecError


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
