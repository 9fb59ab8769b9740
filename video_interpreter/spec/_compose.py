"""Compose a spec through omegaconf: ``extends:`` chains, dotlist overrides, interpolation.

A document with none of the three skips omegaconf, which would return it unchanged.

omegaconf objects never leave this module: the result is a plain dict. Interpolation between
values of the spec (``${input.frames}``) is allowed; resolvers (``${oc.env:HOME}`` or anything
registered by other code) are refused before anything is resolved, so a spec cannot read the host.
``extends`` reads only the spec's own folder, the architectures folders and spec names, unless
the caller allows more.

Before resolving, the cost of resolving is measured (values, nesting, string length of the
result, each reference counted as often as it is used) and refused beyond ``Limits``; unknown
top-level keys are refused first, so a bomb under a key the schema would reject costs nothing.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import PathPart, Problem, SpecError
from ..layers import closest_names
from ._limits import Limits, check_document, current_limits, limit_problem
from ._lookup import architecture_roots, find_spec_file
from ._source import Location, SourceMap, SpecPath, read_document, read_text, read_value

__all__ = ["TOP_LEVEL_KEYS", "Composed", "compose", "parse_dotted_path"]


@dataclass(frozen=True)
class Composed:
    data: dict[str, Any]
    smap: SourceMap


_INTERPOLATION = re.compile(r"\$\{([^{}]*)")
_REFERENCE = re.compile(r"(?<!\\)\$\{([^${}\\]*)\}")

# The keys a spec may have at its top (the schema's); checked before anything is resolved.
TOP_LEVEL_KEYS = (
    "arguments",
    "backbone",
    "blocks",
    "description",
    "extends",
    "heads",
    "init",
    "input",
    "name",
    "neck",
    "preprocess",
    "spec_version",
    "version",
)


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


@dataclass
class _Chain:
    """What one composition shares across its ``extends`` chain."""

    limits: Limits
    allow_external: bool
    home: Path  # the spec's own folder (the working directory for a mapping)

    def trusted(self) -> tuple[Path, ...]:
        """The folders whose files ``extends`` may name (looked up only when a spec extends)."""
        return (self.home, *(root.resolve() for root in architecture_roots()))


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


def _merge_base(
    config: DictConfig,
    data: Mapping[str, Any],
    smap: SourceMap,
    here: Path,
    stack: tuple[Path, ...],
    chain: _Chain,
) -> tuple[DictConfig, SourceMap]:
    """Merge ``config`` onto the base its ``extends`` names (looked up from ``here``)."""
    parent = data.get("extends")
    if parent is None:
        return config, smap
    if not isinstance(parent, str) or not parent:
        raise SpecError([smap.problem("`extends` must be a file path or spec name", ("extends",))])
    base_path = find_spec_file(parent, relative_to=here)
    if base_path is None:
        raise SpecError(
            [
                smap.problem(
                    f"`extends` names {parent!r}, which was not found in {here} "
                    "nor among the known specs",
                    ("extends",),
                )
            ]
        )
    resolved = base_path.resolve()
    trusted = () if chain.allow_external else chain.trusted()
    if not chain.allow_external and not _inside(resolved, trusted):
        folders = ", ".join(str(folder) for folder in trusted)
        raise SpecError(
            [
                smap.problem(
                    f"`extends` names {parent!r}, a file outside the spec's own folder and the "
                    f"architectures folders ({folders}); it was not read",
                    ("extends",),
                    hint="copy the base next to the spec, or pass allow_external_extends=True "
                    "(--allow-external-extends) if you trust it",
                )
            ]
        )
    if resolved in stack:
        names = " -> ".join(p.name for p in (*stack, resolved))
        raise SpecError([smap.problem(f"`extends` cycle: {names}", ("extends",), key=True)])
    base, base_map = _load_chain(resolved, (*stack, resolved), chain)
    try:
        merged = OmegaConf.merge(base, config)
    except OmegaConfBaseException as exc:
        raise SpecError([_omegaconf_problem(exc, smap, f"cannot merge onto {parent}")]) from exc
    assert isinstance(merged, DictConfig)
    return merged, base_map.overlay(smap, set(_list_paths(dict(data), ())))


def _load_chain(
    path: Path, stack: tuple[Path, ...], chain: _Chain, text: str | None = None
) -> tuple[DictConfig, SourceMap]:
    if text is None:
        text = read_text(path, chain.limits)
    data, smap = read_document(path, text, chain.limits)
    problems = list(_resolver_problems(data, (), smap))
    if problems:
        raise SpecError(problems)
    config = _create(data, smap)
    return _merge_base(config, data, smap, path.parent, stack, chain)


def _apply_override(config: DictConfig, smap: SourceMap, item: str, limits: Limits) -> SourceMap:
    where = Location(f"--set {item}")
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError([Problem("an override must look like key.path=value", file=where.file)])
    path = parse_dotted_path(key)
    if path[:1] == ("extends",):
        raise SpecError(
            [
                Problem(
                    "`extends` cannot be overridden: overrides apply after the extends chain is "
                    "merged; write `extends:` in the spec file (or in the mapping) instead",
                    path,
                    file=where.file,
                )
            ]
        )
    value = read_value(text, where.file, limits) if text.strip() else ""
    height = _height(value)
    if len(path) + height > limits.nesting:
        what = f"the override nests {len(path) + height} deep"
        raise SpecError([limit_problem("nesting", limits, what, path, file=where.file)])
    local = SourceMap({path: where}, {path: where})
    for end in range(1, len(path)):  # what the override creates is blamed on the override
        if path[:end] not in smap.values:
            local.values[path[:end]] = where
    problems = list(_resolver_problems(value, path, local))
    if problems:
        raise SpecError(problems)
    try:
        OmegaConf.update(config, key, value, merge=True)
    except (OmegaConfBaseException, ValueError, KeyError, IndexError, TypeError) as exc:
        raise SpecError([Problem(f"cannot apply: {exc}".split("\n")[0], file=where.file)]) from exc
    replaced = {path} if isinstance(value, list) else set()
    return smap.overlay(local, replaced)


def _height(value: Any) -> int:
    """How many lists and mappings nest in ``value`` (0 for a scalar); ``value`` is small."""
    if isinstance(value, dict):
        return 1 + max((_height(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_height(v) for v in value), default=0)
    return 0


def _top_level_problems(config: DictConfig, smap: SourceMap) -> list[Problem]:
    """Unknown top-level keys, found before any interpolation is resolved (and paid for)."""
    problems: list[Problem] = []
    for key in config:
        if key in TOP_LEVEL_KEYS:
            continue
        near = closest_names(str(key), TOP_LEVEL_KEYS, n=1)
        problems.append(
            smap.problem(
                f"unknown key {key!r}; valid keys: {', '.join(TOP_LEVEL_KEYS)}",
                (str(key),),
                key=True,
                value=key,
                hint=f"did you mean {near[0]!r}?" if near else None,
            )
        )
    return problems


class _RefusedError(Exception):
    def __init__(self, name: str, what: str, path: SpecPath) -> None:
        super().__init__(what)
        self.name, self.what, self.path = name, what, path


def _expansion_problems(raw: Any, smap: SourceMap, limits: Limits) -> list[Problem]:
    """What resolving would cost, measured without resolving: values, nesting and string length
    of the resolved document, each reference counted as often as it is used."""
    memo: dict[SpecPath, tuple[int, int, int]] = {}  # path -> (values, characters, height)
    resolving: list[SpecPath] = []

    def lookup(path: SpecPath) -> tuple[bool, Any]:
        value = raw
        for part in path:
            inside = (isinstance(value, dict) and part in value) or (
                isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
            )
            if not inside:
                return False, None
            value = value[part]
        return True, value

    def target(reference: str, at: SpecPath) -> SpecPath:
        dots = len(reference) - len(reference.lstrip("."))
        rest = parse_dotted_path(reference[dots:])
        return (*at[: len(at) - dots], *rest) if dots else rest

    def measure(path: SpecPath, value: Any) -> tuple[int, int, int]:
        if path in memo:
            return memo[path]
        if path in resolving:
            return 1, 0, 0  # a cycle: omegaconf reports it
        if len(resolving) >= limits.nesting:
            what = "values refer to values through too many references"
            raise _RefusedError("nesting", what, path)
        resolving.append(path)
        values = chars = height = 0
        stack: list[tuple[SpecPath, Any, int]] = [(path, value, 0)]
        while stack:
            at, item, depth = stack.pop()
            if isinstance(item, dict | list):
                values, chars, height = values + 1, chars + 2, max(height, depth + 1)
                pairs = item.items() if isinstance(item, dict) else enumerate(item)
                stack.extend(((*at, k), v, depth + 1) for k, v in pairs)
            elif isinstance(item, str) and "${" in item:
                count, size, inner = reference_string(at, item)
                values, chars, height = values + count, chars + size, max(height, depth + inner)
            else:
                values, chars = values + 1, chars + len(str(item))
            if values > limits.values:
                what = "interpolation expands the document to too many values"
                raise _RefusedError("values", what, at)
            if height > limits.nesting:
                what = f"once interpolated, lists and mappings nest {height} deep here"
                raise _RefusedError("nesting", what, at)
        resolving.pop()
        memo[path] = (values, chars, height)
        return memo[path]

    def reference_string(at: SpecPath, text: str) -> tuple[int, int, int]:
        literal = _REFERENCE.sub("", text)
        if "${" in literal.replace("\\${", ""):
            raise _RefusedError(
                "",
                "cannot read this interpolation: write one value's path at a time, e.g. "
                "${input.frames} (an interpolation inside another, or one left open, is not "
                "supported)",
                at,
            )
        whole = _REFERENCE.fullmatch(text) is not None
        values, chars, height = 1, len(literal), 0
        for reference in _REFERENCE.findall(text):
            where = target(reference.strip(), at)
            found, value = lookup(where)
            if not found:
                continue  # omegaconf reports the missing key
            count, size, inner = measure(where, value)
            if whole:
                values, height = count, inner
            chars += size
        if not whole and chars > limits.string_chars:
            what = f"once interpolated, this string has {chars:,} characters"
            raise _RefusedError("string_chars", what, at)
        return values, chars, height

    try:
        measure((), raw)
    except _RefusedError as exc:
        if not exc.name:
            return [smap.problem(exc.what, exc.path)]
        problem = limit_problem(exc.name, limits, exc.what, exc.path)
        return [smap.problem(problem.message, exc.path, hint=problem.hint)]
    return []


def _check_plain(data: Any, smap: SourceMap, limits: Limits) -> None:
    for name, what, path in check_document(data, limits):
        problem = limit_problem(name, limits, what, path)
        raise SpecError([smap.problem(problem.message, path, hint=problem.hint)])


def compose(
    source: Path | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    limits: Limits | None = None,
    allow_external_extends: bool = False,
) -> Composed:
    """Load ``source`` with its ``extends`` chain, apply overrides, resolve interpolations.

    ``extends`` may name spec names and files under the spec's own folder (the working
    directory for a mapping) or the architectures folders; any other file only with
    ``allow_external_extends``. Every step stays within ``limits``.
    """
    limits = limits or current_limits()
    if isinstance(source, Path):
        resolved = source.resolve()
        chain = _Chain(limits, allow_external_extends, resolved.parent)
        text = read_text(resolved, limits)
        document, smap = read_document(resolved, text, limits)
        if not overrides and not _needs_omegaconf(document):
            # omegaconf would return it unchanged
            return Composed(_plain(document), smap)
        config, smap = _load_chain(resolved, (resolved,), chain, text)
    else:
        here = Path.cwd().resolve()
        chain = _Chain(limits, allow_external_extends, here)
        smap = SourceMap({(): Location("<mapping>")})
        _check_plain(dict(source), smap, limits)
        problems = list(_resolver_problems(dict(source), (), smap))
        if problems:
            raise SpecError(problems)
        if not overrides and not _needs_omegaconf(dict(source)):
            return Composed(_plain(copy.deepcopy(dict(source))), smap)
        config = _create(source, smap)
        config, smap = _merge_base(config, dict(source), smap, here, (), chain)
    for item in overrides:
        smap = _apply_override(config, smap, item, limits)
    problems = _top_level_problems(config, smap)
    if not problems:
        try:
            raw = OmegaConf.to_container(config, resolve=False)
        except OmegaConfBaseException as exc:
            raise SpecError([_omegaconf_problem(exc, smap, "cannot load")]) from exc
        problems = _expansion_problems(raw, smap, limits)
    if problems:
        raise SpecError(problems)
    try:
        resolved_data = OmegaConf.to_container(config, resolve=True)
    except OmegaConfBaseException as exc:
        raise SpecError([_omegaconf_problem(exc, smap, "cannot resolve interpolation")]) from exc
    assert isinstance(resolved_data, dict)
    _check_plain(resolved_data, smap, limits)
    return Composed(_plain(resolved_data), smap)


def _plain(data: dict[Any, Any]) -> dict[str, Any]:
    data.pop("extends", None)
    return {str(k): v for k, v in data.items()}
