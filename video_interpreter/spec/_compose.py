"""Compose a spec through omegaconf: ``extends:`` chains, dotlist overrides, interpolation.

A document with none of the three skips omegaconf, which would return it unchanged.

omegaconf objects never leave this module: the result is a plain dict. Interpolation between
values of the spec (``${input.frames}``) is allowed; resolvers (``${oc.env:HOME}`` or anything
registered by other code) are refused before anything is resolved, so a spec cannot read the host.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import PathPart, Problem, SpecError
from ._lookup import find_spec_file
from ._source import Location, SourceMap, SpecPath, read_document, read_text

__all__ = ["Composed", "Source", "compose", "parse_dotted_path"]


@dataclass(frozen=True)
class Source:
    """A file a spec was composed from, with the text that was read."""

    path: Path
    text: str

    def unchanged(self) -> bool:
        try:
            return self.path.read_text(encoding="utf-8") == self.text
        except (OSError, UnicodeDecodeError):
            return False


@dataclass(frozen=True)
class Composed:
    data: dict[str, Any]
    smap: SourceMap
    sources: tuple[Source, ...] = ()  # every file read, the spec's own first


_INTERPOLATION = re.compile(r"\$\{([^{}]*)")


def parse_dotted_path(key: str) -> SpecPath:
    """``backbone[3].stride`` or ``backbone.3.stride`` -> ``("backbone", 3, "stride")``."""
    parts: list[PathPart] = []
    for piece in re.split(r"\.|\[|\]", key):
        if piece:
            parts.append(int(piece) if piece.isascii() and piece.isdigit() else piece)
    return tuple(parts)


def _resolver_problems(value: Any, path: SpecPath, smap: SourceMap) -> Iterator[Problem]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _resolver_problems(item, (*path, key), smap)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _resolver_problems(item, (*path, index), smap)
    elif isinstance(value, str):
        for inner in _INTERPOLATION.findall(value):
            if ":" in inner:
                yield smap.problem(
                    f"resolver interpolation ${{{inner}}} is not allowed: a spec may only refer "
                    "to its own values, e.g. ${input.frames}",
                    path,
                    value=value,
                )


def _list_paths(value: Any, path: SpecPath) -> Iterator[SpecPath]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _list_paths(item, (*path, key))
    elif isinstance(value, list):
        yield path


def _omegaconf_problem(exc: OmegaConfBaseException, smap: SourceMap, what: str) -> Problem:
    full_key = getattr(exc, "full_key", None)
    path = parse_dotted_path(str(full_key)) if full_key else ()
    message = str(exc).split("\n")[0]
    return smap.problem(f"{what}: {message}", path)


def _create(data: Mapping[str, Any], smap: SourceMap) -> DictConfig:
    try:
        return OmegaConf.create(dict(data))
    except OmegaConfBaseException as exc:
        raise SpecError([_omegaconf_problem(exc, smap, "cannot load")]) from exc


def _needs_omegaconf(data: Any) -> bool:
    """Whether composing changes anything: a base to merge or a value to interpolate."""
    if isinstance(data, dict):
        return data.get("extends") is not None or any(_needs_omegaconf(v) for v in data.values())
    if isinstance(data, list):
        return any(_needs_omegaconf(v) for v in data)
    return isinstance(data, str) and "${" in data


def _load_chain(
    path: Path, stack: tuple[Path, ...], sources: list[Source], text: str | None = None
) -> tuple[DictConfig, SourceMap]:
    if text is None:
        text = read_text(path)
        sources.append(Source(path, text))
    data, smap = read_document(path, text)
    problems = list(_resolver_problems(data, (), smap))
    if problems:
        raise SpecError(problems)
    config = _create(data, smap)
    parent = data.get("extends")
    if parent is None:
        return config, smap
    if not isinstance(parent, str) or not parent:
        raise SpecError([smap.problem("`extends` must be a file path or spec name", ("extends",))])
    base_path = find_spec_file(parent, relative_to=path.parent)
    if base_path is None:
        raise SpecError(
            [
                smap.problem(
                    f"`extends` names {parent!r}, which was not found next to "
                    f"{path.name} nor among the known specs",
                    ("extends",),
                )
            ]
        )
    resolved = base_path.resolve()
    if resolved in stack:
        chain = " -> ".join(p.name for p in (*stack, resolved))
        raise SpecError([smap.problem(f"`extends` cycle: {chain}", ("extends",), key=True)])
    base, base_map = _load_chain(resolved, (*stack, resolved), sources)
    try:
        merged = OmegaConf.merge(base, config)
    except OmegaConfBaseException as exc:
        raise SpecError([_omegaconf_problem(exc, smap, f"cannot merge onto {parent}")]) from exc
    assert isinstance(merged, DictConfig)
    return merged, base_map.overlay(smap, set(_list_paths(data, ())))


def _apply_override(config: DictConfig, smap: SourceMap, item: str) -> SourceMap:
    where = Location(f"override {item!r}")
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError([Problem("an override must look like key.path=value", file=where.file)])
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"value is not valid YAML: {exc}", file=where.file)]) from exc
    local = SourceMap({parse_dotted_path(key): where})
    problems = list(_resolver_problems(value, parse_dotted_path(key), local))
    if problems:
        raise SpecError(problems)
    try:
        OmegaConf.update(config, key, value, merge=True)
    except (OmegaConfBaseException, ValueError, KeyError, IndexError, TypeError) as exc:
        raise SpecError([Problem(f"cannot apply: {exc}".split("\n")[0], file=where.file)]) from exc
    replaced = {parse_dotted_path(key)} if isinstance(value, list) else set()
    return smap.overlay(local, replaced)


def compose(source: Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> Composed:
    """Load ``source`` with its ``extends`` chain, apply overrides, resolve interpolations."""
    sources: list[Source] = []
    if isinstance(source, Path):
        resolved = source.resolve()
        text = read_text(resolved)
        sources.append(Source(resolved, text))
        document, smap = read_document(resolved, text)
        if not overrides and not _needs_omegaconf(document):
            # omegaconf would return it unchanged
            return Composed(_plain(document), smap, tuple(sources))
        config, smap = _load_chain(resolved, (resolved,), sources, text)
    else:
        smap = SourceMap({(): Location("<mapping>")})
        problems = list(_resolver_problems(dict(source), (), smap))
        if problems:
            raise SpecError(problems)
        if not overrides and not _needs_omegaconf(dict(source)):
            return Composed(_plain(copy.deepcopy(dict(source))), smap)
        config = _create(source, smap)
    for item in overrides:
        smap = _apply_override(config, smap, item)
    try:
        resolved_data = OmegaConf.to_container(config, resolve=True)
    except OmegaConfBaseException as exc:
        raise SpecError([_omegaconf_problem(exc, smap, "cannot resolve interpolation")]) from exc
    assert isinstance(resolved_data, dict)
    return Composed(_plain(resolved_data), smap, tuple(sources))


def _plain(data: dict[Any, Any]) -> dict[str, Any]:
    data.pop("extends", None)
    return {str(k): v for k, v in data.items()}
