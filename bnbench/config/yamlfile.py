"""Reading a spec file: safe YAML only, with the line of every key for error messages.

YAML tags are refused (specs are plain data), duplicate keys are an error, and every key's line
is kept so that a validation error can say "file, line N".

A spec is a hand-written file of a few dozen keys, so anything far larger is refused before
PyYAML builds it: a file over `MAX_BYTES`, a document that expands (through `&anchor`/`*alias`)
to more than `MAX_NODES` nodes — a 300-byte "billion laughs" file expands to 10^8 — or one nested
deeper than `MAX_DEPTH`, which would overflow PyYAML's recursive composer. The check walks the
parser's event stream, which is iterative and never expands an alias.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bnbench.errors import SpecError

MAX_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 100


class YamlSyntaxError(SpecError):
    """Text that is not valid YAML (as opposed to YAML that is refused: tags, bombs, depth)."""


class SourceMap:
    """Line numbers of the keys of a YAML document, by dotted path."""

    def __init__(self, node: yaml.Node | None, source: str) -> None:
        self.source = source
        self.overridden: set[tuple[str, ...]] = set()
        self._lines: dict[tuple[Any, ...], int] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        # Recursion is safe here: `check_size` has bounded the depth and the expanded size.
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

    def lines(self) -> list[tuple[Any, ...]]:
        """Every key path the document gives, in no particular order."""
        return list(self._lines)

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


def read_spec_text(path: Path) -> str:
    """The text of a spec file: a regular file of at most `MAX_BYTES` bytes of UTF-8.

    Raises:
        SpecError: the path is missing, a directory, a pipe or device, too large, unreadable,
            or not UTF-8.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        raise SpecError(f"{path}: cannot be read ({_reason(err)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise SpecError(f"{path}: is a directory; expected a YAML spec file")
    if not stat.S_ISREG(info.st_mode):
        # A FIFO would block forever and /dev/zero never ends.
        raise SpecError(f"{path}: is not a regular file (a pipe or device?); expected a YAML file")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # the size may have changed since stat
    except OSError as err:
        raise SpecError(f"{path}: cannot be read ({_reason(err)})") from None
    if len(raw) > MAX_BYTES:
        raise SpecError(f"{path}: is larger than {MAX_BYTES // 1024} KiB; a spec is a small file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SpecError(
            f"{path}, line {line}: is not UTF-8 text (byte 0x{raw[err.start]:02x}); "
            "save the file as UTF-8"
        ) from None


def _reason(err: Exception) -> str:
    return (err.strerror if isinstance(err, OSError) else None) or str(err)


@dataclass
class _Open:
    """A collection whose end event has not come yet."""

    anchor: str | None
    opened: int  # nodes counted before it
    level: int  # its nesting level; the document's top node is level 1
    deepest: int  # the deepest level reached inside it so far, aliases expanded


def check_size(text: str, source: str) -> None:
    """Refuse YAML that expands to more than `MAX_NODES` nodes or nests past `MAX_DEPTH`.

    Works on the parser's events, counting each alias as the size and depth of the node it
    names, so a bomb is refused after reading its few hundred bytes, never expanded.

    Raises:
        SpecError: too large or too deep, or an alias inside the node it names (a cycle).
        yaml.YAMLError: the text is not YAML (the caller reports it).
    """
    count = 0
    aliased = False
    stack: list[_Open] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, height)
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        level = len(stack) + 1  # of a node that starts here
        if isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            if done.anchor is not None:
                anchors[done.anchor] = (count - done.opened, done.deepest - done.level + 1)
            if stack:
                stack[-1].deepest = max(stack[-1].deepest, done.deepest)
            continue
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append(_Open(event.anchor, count, level, level))
            count += 1
            deepest = level
        elif isinstance(event, yaml.AliasEvent):
            if any(open_.anchor == event.anchor for open_ in stack):
                raise SpecError(
                    f"{source}, line {_line(event)}: the alias *{event.anchor} is inside the "
                    "node it names; specs cannot be recursive"
                )
            # An undefined alias counts as one node; the composer reports it.
            size, height = anchors.get(event.anchor or "", (1, 1))
            count += size
            deepest = level + height - 1
            aliased = True
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                anchors[event.anchor] = (1, 1)
            count += 1
            deepest = level
        else:
            continue  # stream and document events
        if stack:
            stack[-1].deepest = max(stack[-1].deepest, deepest)
        if deepest > MAX_DEPTH:
            raise SpecError(
                f"{source}, line {_line(event)}: nested more than {MAX_DEPTH} levels deep; "
                "a spec is a few levels of mappings and lists"
            )
        if count > MAX_NODES:
            how, hint = ("expands to", " (YAML aliases?)") if aliased else ("has", "")
            raise SpecError(
                f"{source}, line {_line(event)}: {how} more than {MAX_NODES:,} nodes{hint}; "
                "a spec is a few dozen keys"
            )


def _line(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark else 0


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Safely parse YAML text into plain data and its node graph (for line numbers).

    Raises:
        YamlSyntaxError: not valid YAML (or more than one document).
        SpecError: a tag, or too large or too deep.
    """
    try:
        check_size(text, source)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.constructor.ConstructorError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else "?"
        problem = err.problem or str(err)
        if "could not determine a constructor" not in problem:
            raise YamlSyntaxError(f"{source}, line {line}: invalid YAML: {problem}") from None
        tag = problem.split()[-1]
        raise SpecError(
            f"{source}, line {line}: YAML tags such as {tag} are refused; "
            "specs are plain data (safe loading only)"
        ) from None
    except yaml.reader.ReaderError as err:
        line = text[: err.position].count("\n") + 1
        what = err.character if isinstance(err.character, int) else ord(err.character)
        raise YamlSyntaxError(
            f"{source}, line {line}: invalid YAML: control character #x{what:04x} is not allowed"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}, line {mark.line + 1}" if mark else source
        problem = getattr(err, "problem", None) or str(err)
        raise YamlSyntaxError(f"{where}: invalid YAML: {problem}") from None
    return data, node


def load_yaml(path: Path) -> tuple[dict[str, Any], SourceMap]:
    """Safely read a YAML mapping from `path`.

    Raises:
        SpecError: the file is missing, not a regular file, too large, not UTF-8, empty, not
            YAML, uses tags, expands too far, or is not a mapping.
    """
    data, node = parse_yaml(read_spec_text(path), str(path))
    if data is None:
        raise SpecError(f"{path}: the file is empty; expected a spec mapping")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data, SourceMap(node, str(path))
