"""Turn JSON Schema errors into Problems: every one found, located, with what would be valid.

Besides the schema, checks that JSON Schema cannot say: numbers are finite, integers are
within ``Limits.integer``, and a node or head name is one a torch module can take.

Where the schema wants an integer, only an integer is accepted: ``8.0`` is refused (write
``8``), as torch would refuse it; where it wants a number, ``8.0`` and ``8`` are the same value
(and the same fingerprint).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from torch import nn

from ..errors import PathPart, Problem, SpecError
from ..layers import LAYERS, Graph, LayerRegistry, closest_names
from ._limits import current_limits, limit_problem, repeated_blocks
from ._preprocess import PREPROCESS_SCHEMA, fill_preprocess_defaults, preprocess_problems
from ._schema import schema_validator
from ._source import SourceMap

__all__ = ["document_problems", "resolve_preprocess", "schema_problems"]

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
    for error in _strict(schema_validator(registry)).iter_errors(data):
        for problem in _translate(error, smap, registry):
            key = (problem.path, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    problems.extend(_value_problems(data, smap))
    problems.extend(_name_problems(data, smap, registry))
    problems.extend(_repeat_problems(data, smap))
    problems.extend(preprocess_problems(data, smap))
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.column or 0))


def document_problems(data: Any, smap: SourceMap, schema: dict[str, Any]) -> list[Problem]:
    """Every problem of ``data`` (read by ``read_document``) against any JSON Schema, located
    and sorted like a spec's: the same messages for other data files (key maps)."""
    problems: list[Problem] = []
    seen: set[tuple[Any, ...]] = set()
    for error in _strict(Draft202012Validator(schema)).iter_errors(data):
        for problem in _translate(error, smap, LAYERS):
            key = (problem.path, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.column or 0))


_SECTION_VALIDATOR = Draft202012Validator(
    {"type": "object", "properties": {"preprocess": PREPROCESS_SCHEMA}}
)


def resolve_preprocess(section: Any) -> dict[str, Any]:
    """A ``preprocess`` section given on its own (not in a spec), validated by the spec's schema
    and with its defaults written out; ``SpecError`` listing every problem otherwise.

        >>> resolve_preprocess({"mean": [0.5] * 3, "std": [0.25] * 3})["crop_offset"]
        'round'
    """
    data: dict[str, Any] = {"preprocess": json.loads(json.dumps(section, default=str))}
    smap = SourceMap()
    problems = [
        problem
        for error in _SECTION_VALIDATOR.iter_errors(data)
        for problem in _translate(error, smap, LAYERS)
    ]
    problems.extend(preprocess_problems(data, smap))
    if problems:
        raise SpecError(problems)
    fill_preprocess_defaults(data)
    resolved: dict[str, Any] = data["preprocess"]
    return resolved


# The last few strict validators (the spec schema's and any data file's), so validating a key
# map does not evict the spec schema's.
_strict_cache: list[tuple[Draft202012Validator, Draft202012Validator]] = []
_STRICT_CACHE_SIZE = 4


def _strict(base: Draft202012Validator) -> Draft202012Validator:
    """``base`` whose ``integer`` is an int only (JSON Schema also counts 8.0 as an integer)."""
    for known, cached in _strict_cache:
        if known is base:
            return cached
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    plain = Draft202012Validator.VALIDATORS

    def const(validator: Any, expected: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if _integral_float_for(instance, [expected]):
            yield ValidationError(f"{expected!r} was expected")
        else:
            yield from plain["const"](validator, expected, instance, schema)

    def enum(validator: Any, options: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if _integral_float_for(instance, options):
            yield ValidationError(f"{instance!r} is not one of {options!r}")
        else:
            yield from plain["enum"](validator, options, instance, schema)

    cls = validators.extend(  # type: ignore[no-untyped-call]
        type(base), {"const": const, "enum": enum}, type_checker=checker
    )
    strict: Draft202012Validator = cls(base.schema)
    _strict_cache[:] = [*_strict_cache[-(_STRICT_CACHE_SIZE - 1) :], (base, strict)]
    return strict


def _repeat_problems(data: Any, smap: SourceMap) -> Iterator[Problem]:
    """Repeats and depths that ask for more blocks than ``Limits.modules``, refused before any
    module is built (building counts modules too, for blocks of many modules)."""
    limits = current_limits()
    for key in ("backbone", "neck", "heads"):
        part = data.get(key) if isinstance(data, dict) else None
        blocks = repeated_blocks(part)
        if blocks > limits.modules:
            what = f"{key} asks for {blocks:,} blocks once repeats and depths are expanded"
            problem = limit_problem("modules", limits, what, (key,))
            yield smap.problem(problem.message, (key,), hint=problem.hint)


def _integral_float_for(instance: Any, options: Any) -> bool:
    """8.0 where the schema names the integer 8: refused like any float for an integer."""
    return isinstance(instance, float) and any(
        isinstance(o, int) and not isinstance(o, bool) and o == instance for o in options
    )


def _value_problems(data: Any, smap: SourceMap) -> Iterator[Problem]:
    """Numbers that are not finite, integers beyond ``Limits.integer``, an input clip beyond
    ``Limits.input_size``."""
    limits = current_limits()
    clip = data.get("input") if isinstance(data, dict) else None
    for axis in ("frames", "height", "width"):
        size = clip.get(axis) if isinstance(clip, dict) else None
        if isinstance(size, int) and limits.input_size < size <= limits.integer:
            problem = limit_problem("input_size", limits, f"{axis} {size} is too large", ())
            yield smap.problem(problem.message, ("input", axis), value=size, hint=problem.hint)
    stack: list[tuple[tuple[PathPart, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            yield smap.problem(
                f"{value} is not a finite number; every number in a spec must be finite",
                path,
                value=str(value),
            )
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > limits.integer:
            problem = limit_problem("integer", limits, f"{value} is too large", path)
            yield smap.problem(problem.message, path, value=value, hint=problem.hint)


# Names a child module cannot take: what its container already has (methods, ``training``,
# ``_modules``, a graph's ``wiring`` ...) and Python's own dunder names. Nodes live in a
# Sequential or a Graph, heads in a ModuleDict; every name is checked against all of them, so
# whether a name is taken never depends on where it is used.
def _taken(probe: nn.Module) -> frozenset[str]:
    return frozenset(name for name in dir(probe) if name not in probe._modules)


_CONTAINERS = (
    (_taken(nn.Module()), "every torch module"),
    (_taken(nn.Sequential()), "torch's Sequential"),
    (_taken(nn.ModuleDict()), "torch's ModuleDict"),
    (_taken(Graph({"node": nn.Identity()}, {"node": ("input",)})), "a backbone graph"),
)


def reserved_name_reason(name: str) -> str | None:
    """Why ``name`` cannot name a module in a container of this package, or None if it can."""
    if not name:
        return "it is empty"
    if "." in name:
        return "a dot separates names in state-dict keys"
    if name.startswith("__") and name.endswith("__"):
        return "it is a Python special name"
    for taken, owner in _CONTAINERS:
        if name in taken:
            return f"it is an attribute of {owner}"
    return None


def _name_problems(data: Any, smap: SourceMap, registry: LayerRegistry) -> Iterator[Problem]:
    """Node names (``name:``) and head names that torch would refuse as module names."""
    heads = data.get("heads") if isinstance(data, dict) else None
    if isinstance(heads, dict):
        for head in heads:
            reason = reserved_name_reason(str(head))
            if reason is not None:
                yield smap.problem(
                    f"head name {head!r} cannot name a module: {reason}; choose another name",
                    ("heads", head),
                    key=True,
                    value=head,
                )
    known = set(registry.names())
    stack: list[tuple[tuple[PathPart, ...], Any]] = [
        ((key,), data[key])
        for key in ("backbone", "neck", "heads")
        if isinstance(data, dict) and key in data
    ]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            name = value.get("name")
            kind = value.get("type")
            if isinstance(kind, str) and kind in known and isinstance(name, str):
                reason = reserved_name_reason(name)
                if reason is not None:
                    yield smap.problem(
                        f"node name {name!r} cannot name a module: {reason}; choose another name",
                        (*path, "name"),
                        value=name,
                    )
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))


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
        yield smap.problem(
            f"expected {_show(expected)}, got {_show(value)}",
            path,
            value=value,
            hint=_integral_hint(value),
        )
    elif kind == "type":
        yield smap.problem(
            f"expected {_expected(schema)}, got {_kind(value)} {_show(value)}",
            path,
            value=value,
            hint=_integral_hint(value),
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
        hint=_integral_hint(error.instance),
    )


def _integral_hint(value: Any) -> str | None:
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return f"write {int(value)}: an integer is written without a decimal point"
    return None
