"""Turn JSON Schema errors into Problems: every one found, located, with what would be valid."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jsonschema.exceptions import ValidationError

from ..errors import Problem
from ..layers import LAYERS, LayerRegistry, closest_names
from ._schema import schema_validator
from ._source import SourceMap

__all__ = ["schema_problems"]

_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "mapping",
    type(None): "null",
}


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _expected(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "a valid value"
    if "description" in schema and ("anyOf" in schema or "enum" in schema):
        return str(schema["description"])
    if "enum" in schema:
        return "one of " + ", ".join(_show(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind or "a valid value")


def schema_problems(
    data: dict[str, Any], smap: SourceMap, registry: LayerRegistry = LAYERS
) -> list[Problem]:
    """Every schema problem in ``data``, sorted by position in the source."""
    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for error in schema_validator(registry).iter_errors(data):
        for problem in _translate(error, smap, registry):
            key = (problem.path, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.column or 0))


def _translate(
    error: ValidationError, smap: SourceMap, registry: LayerRegistry
) -> Iterator[Problem]:
    path = tuple(error.absolute_path)
    value = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    expected: Any = error.validator_value  # the keyword's value in the schema
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        for key in list(value):
            if key in schema.get("properties", {}):
                continue
            near = closest_names(str(key), allowed, n=1)
            hint = f"did you mean {near[0]!r}?" if near else None
            valid = f"valid keys: {', '.join(allowed)}" if allowed else "no keys are allowed here"
            yield smap.problem(
                f"unknown key {key!r}; {valid}", (*path, key), key=True, value=key, hint=hint
            )
    elif kind == "required" and isinstance(value, dict):
        for key in expected:
            if key not in value:
                where = f" for {value['type']}" if isinstance(value.get("type"), str) else ""
                yield smap.problem(f"missing required key {key!r}{where}", path)
    elif kind == "enum" and path and path[-1] == "type" and isinstance(value, str):
        yield smap.problem(registry.unknown_message(value), path, value=value)
    elif kind == "enum":
        options = [str(v) for v in expected]
        near = closest_names(str(value), options, n=1) if isinstance(value, str) else []
        yield smap.problem(
            f"{_show(value)} is not one of {', '.join(_show(v) for v in expected)}",
            path,
            value=value,
            hint=f"did you mean {near[0]!r}?" if near else None,
        )
    elif kind == "const":
        yield smap.problem(f"expected {_show(expected)}, got {_show(value)}", path, value=value)
    elif kind == "type":
        yield smap.problem(
            f"expected {_expected(schema)}, got {_kind(value)} {_show(value)}", path, value=value
        )
    elif kind in ("anyOf", "oneOf"):
        yield from _translate_alternatives(error, smap, registry)
    elif kind == "propertyNames":
        yield smap.problem(
            f"name {_show(value)} must be a Python identifier (letters, digits, _)", path
        )
    else:
        yield smap.problem(f"{_show(value)}: {error.message}", path, value=value)


def _translate_alternatives(
    error: ValidationError, smap: SourceMap, registry: LayerRegistry
) -> Iterator[Problem]:
    """Report the branch the value was evidently meant for (same JSON type), else the union."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    for subs in branches.values():
        type_mismatch = any(s.validator == "type" and not s.relative_path for s in subs)
        if not type_mismatch:
            for sub in subs:
                yield from _translate(sub, smap, registry)
            return
    yield smap.problem(
        f"expected {_expected(error.schema)}, got {_kind(error.instance)} {_show(error.instance)}",
        tuple(error.absolute_path),
        value=error.instance,
    )
