"""Read one spec file into plain data plus the source position of every key and value.

YAML is composed with PyYAML's safe loader (no tags that construct objects); JSON is parsed with
the standard library and positioned through the same composer, since JSON is YAML's flow style.
Only JSON-like values survive: anything else (dates, binary, non-string keys) is a problem here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import PathPart, Problem, SpecError
from ._limits import (
    Limits,
    check_document,
    check_json_text,
    check_yaml_text,
    current_limits,
    limit_problem,
)

__all__ = ["Location", "SourceMap", "read_document", "read_text", "read_value"]

SpecPath = tuple[PathPart, ...]

# libyaml's safe loader when PyYAML was built with it (several times faster), with positions too.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Location:
    file: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based


@dataclass
class SourceMap:
    """Spec path -> where its value (and, for mapping entries, its key) was written."""

    values: dict[SpecPath, Location] = field(default_factory=dict)
    keys: dict[SpecPath, Location] = field(default_factory=dict)

    def locate(self, path: SpecPath, *, key: bool = False) -> Location | None:
        """The closest known location: the path itself, else its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return None

    def overlay(self, other: SourceMap, replaced_lists: set[SpecPath]) -> SourceMap:
        """Positions after ``other`` was merged on top: lists it replaced lose old positions."""

        def kept(path: SpecPath) -> bool:
            return not any(path[: len(p)] == p and len(path) > len(p) for p in replaced_lists)

        values = {p: loc for p, loc in self.values.items() if kept(p)}
        keys = {p: loc for p, loc in self.keys.items() if kept(p)}
        values.update(other.values)
        keys.update(other.keys)
        return SourceMap(values, keys)

    def problem(self, message: str, path: SpecPath, *, key: bool = False, **extra: Any) -> Problem:
        loc = self.locate(path, key=key)
        if loc is None:
            return Problem(message, path, **extra)
        return Problem(message, path, file=loc.file, line=loc.line, column=loc.column, **extra)


def _loc(file: str, node: yaml.Node) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


_MERGE = "tag:yaml.org,2002:merge"


def _positions(file: str, node: yaml.Node, path: SpecPath, out: SourceMap) -> Iterator[Problem]:
    """Record positions under ``node``; yield problems for duplicate keys.

    Merge keys (``<<: *base``, YAML 1.1) are honoured as the loader honours them: the mapping's
    own keys win over merged ones, and of several merged mappings the first wins; a key that
    overrides a merged one is not a duplicate.
    """
    out.values[path] = _loc(file, node)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            child = (*path, key) if isinstance(key, str) else path
            if key in seen:
                loc = _loc(file, key_node)
                yield Problem(
                    f"key {key!r} appears twice; the second would silently win",
                    child,
                    file=loc.file,
                    line=loc.line,
                    column=loc.column,
                )
            seen.add(key)
            out.keys[child] = _loc(file, key_node)
            yield from _positions(file, value_node, child, out)
        own = {(*path, key) for key in seen if isinstance(key, str)}
        for value_node in merges:
            _merged_positions(file, value_node, path, out, own)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _positions(file, item, (*path, index), out)


def _merged_positions(
    file: str, value_node: yaml.Node, path: SpecPath, out: SourceMap, own: set[SpecPath]
) -> None:
    """Positions of the entries a merge key brings in, where the mapping does not set them."""
    sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
    for source in sources:
        if not isinstance(source, yaml.MappingNode):
            continue  # the loader reports what cannot be merged
        part = SourceMap()
        for _ in _positions(file, source, path, part):
            pass  # duplicates inside the merged mapping are reported where it is written
        for table, target in ((part.values, out.values), (part.keys, out.keys)):
            for entry, loc in table.items():
                if len(entry) > len(path) and entry[: len(path) + 1] not in own:
                    target.setdefault(entry, loc)


def _fold_merges(node: yaml.Node, file: str, done: set[int]) -> None:
    """Replace every merge key by the entries it brings in, as YAML 1.1 says: the mapping's own
    keys win, and of several merged mappings the first that has a key wins.

    Done here rather than by the loader, whose rule has changed between PyYAML releases.
    """
    if id(node) in done:
        return
    done.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _fold_merges(item, file, done)
    if not isinstance(node, yaml.MappingNode):
        return
    own: list[tuple[yaml.Node, yaml.Node]] = []
    sources: list[yaml.Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            sources.extend(merged)
        else:
            own.append((key_node, value_node))
            _fold_merges(value_node, file, done)
    if not sources:
        return
    taken = {k.value for k, _ in own if isinstance(k, yaml.ScalarNode)}
    brought: list[tuple[yaml.Node, yaml.Node]] = []
    for source in sources:
        if not isinstance(source, yaml.MappingNode):
            loc = _loc(file, source)
            raise SpecError(
                [
                    Problem(
                        "`<<` merges mappings only (a mapping or a list of mappings)",
                        file=loc.file,
                        line=loc.line,
                        column=loc.column,
                    )
                ]
            )
        _fold_merges(source, file, done)
        for key_node, value_node in source.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key not in taken:
                taken.add(key)
                brought.append((key_node, value_node))
    node.value = brought + own


def _json_like(value: Any, path: SpecPath, smap: SourceMap) -> Iterator[Problem]:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                yield smap.problem(
                    f"key {key!r} is a {type(key).__name__}; keys must be strings (quote it)",
                    path,
                )
                continue
            yield from _json_like(item, (*path, key), smap)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_like(item, (*path, index), smap)
    elif not (value is None or isinstance(value, bool | int | float | str)):
        yield smap.problem(
            f"value of type {type(value).__name__} is not allowed; use a string, number, "
            "boolean, null, list or mapping (quote dates and the like)",
            path,
            value=str(value),
        )


def _yaml_problem(file: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    text = " ".join(
        str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part
    )
    if mark is None:
        return Problem(f"not valid YAML: {exc}", file=file)
    return Problem(
        f"not valid YAML: {text or exc}", file=file, line=mark.line + 1, column=mark.column + 1
    )


def read_text(path: Path, limits: Limits | None = None) -> str:
    """A spec file's text; a problem naming the file when it cannot be read as UTF-8 or is
    larger than ``limits.file_bytes`` (checked before it is read)."""
    limits = limits or current_limits()
    try:
        size = path.stat().st_size
        if size > limits.file_bytes:
            what = f"the file has {size:,} bytes"
            raise SpecError([limit_problem("file_bytes", limits, what, file=str(path))])
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([Problem(f"not UTF-8 text: {exc.reason}", file=str(path))]) from exc
    except OSError as exc:
        raise SpecError([Problem(f"cannot read: {exc.strerror}", file=str(path))]) from exc


def read_document(
    path: Path, text: str | None = None, limits: Limits | None = None
) -> tuple[dict[str, Any], SourceMap]:
    """Parse one YAML or JSON file into a plain mapping and the positions of its entries.

    Its size, nesting and alias expansion are checked against ``limits`` before it is parsed.
    """
    file = str(path)
    limits = limits or current_limits()
    if text is None:
        text = read_text(path)
    smap = SourceMap()
    problems: list[Problem] = []
    node: yaml.Node | None = None
    data: Any
    if path.suffix.lower() == ".json":
        check_json_text(text, file, limits)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                [
                    Problem(
                        f"not valid JSON: {exc.msg}", file=file, line=exc.lineno, column=exc.colno
                    )
                ]
            ) from exc
        for name, what, at in check_document(data, limits):  # JSON has no aliases: its size
            raise SpecError([limit_problem(name, limits, what, at, file=file)])
        try:
            node = yaml.compose(text, Loader=_SafeLoader)
        except yaml.YAMLError:
            node = None  # valid JSON that YAML 1.1 reads differently: no positions, still valid
        if node is not None:
            problems.extend(_positions(file, node, (), smap))
    else:
        check_yaml_text(text, file, limits)
        try:
            loader = _SafeLoader(text)
            try:
                node = loader.get_single_node()
                if node is not None:
                    problems.extend(_positions(file, node, (), smap))
                    _fold_merges(node, file, set())
                data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
        except yaml.YAMLError as exc:
            raise SpecError([_yaml_problem(file, exc)]) from exc
        except (ValueError, TypeError) as exc:  # e.g. an unhashable key
            raise SpecError([Problem(f"not valid YAML: {exc}", file=file)]) from exc
    smap.values.setdefault((), Location(file, 1, 1))
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise SpecError(
            [smap.problem(f"a spec must be a mapping of keys, this file is {kind}", ())]
        )
    problems.extend(_json_like(data, (), smap))
    if problems:
        raise SpecError(problems)
    return data, smap


def read_value(text: str, where: str, limits: Limits | None = None) -> Any:
    """One YAML value written outside a file (an override's right-hand side), within limits."""
    limits = limits or current_limits()
    check_yaml_text(text, where, limits)
    try:
        return yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_problem(where, exc)]) from exc
    except (ValueError, TypeError) as exc:
        raise SpecError([Problem(f"not valid YAML: {exc}", file=where)]) from exc
