"""Definitions that scale: spec-level arguments, block templates and per-index patterns.

A spec may name values once and blocks once, then use them many times::

    arguments: {res4_depth: 6}          # a family's scalars: a spec that extends this one
                                        # overrides them one by one
    blocks:
      stage:                            # a template: typed parameters and one node
        params:
          depth: {type: integer, minimum: 1}
          width: {type: integer, minimum: 1}
          stride: {default: 2}
        node:
          type: Sequential
          layers:
            - name: res_blocks
              type: Repeat
              times: {arg: depth}
              layer:
                type: Bottleneck
                out_channels: {arg: width}
                stride: {first: {arg: stride}, rest: 1}   # per-index: block 0, the others
                se_ratio: {cycle: [0.0625, 0.0]}          # per-index: blocks 0, 2, 4 ... / 1, 3 ...
    backbone:
      - {name: res4, use: stage, args: {depth: {arg: res4_depth}, width: 96}}

``{arg: NAME}`` is replaced by a value, whole and typed: inside a template by the instance's
argument (checked against the parameter's JSON Schema) or else the spec's ``arguments``
entry; elsewhere by the spec's ``arguments``.
A node ``{use: NAME, args: {...}}`` (with its own ``name`` and ``inputs``) becomes the
template's node. A ``Repeat`` whose layer holds ``{cycle: [...]}`` (copy ``i`` takes item
``i % len``) or ``{first: A, rest: B}`` becomes the ``Sequential`` of its copies, keyed
``0 .. times-1`` as a ``Repeat``'s are. No code runs and no string is spliced: the result is an
ordinary spec, which is what is validated, fingerprinted and saved. Every expanded value keeps
the position it was written at, so later errors point into the template or at the argument.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ..errors import Problem, SpecError
from ..layers import closest_names
from ._limits import Limits, limit_problem
from ._source import Location, SourceMap, SpecPath

__all__ = ["BLOCK_KEYS", "SECTIONS", "TEMPLATE_SCHEMA", "expand_definitions"]

SECTIONS = ("arguments", "blocks")
"""The top-level keys this module reads and removes."""

BLOCK_KEYS = ("name", "use", "args", "inputs")
"""The keys of a node made from a block (``use`` names it)."""

_IDENTIFIER = "^[A-Za-z_][A-Za-z0-9_]*$"

TEMPLATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a block template: typed parameters and the node they fill in",
    "properties": {
        "description": {"type": "string"},
        "params": {
            "type": "object",
            "propertyNames": {"pattern": _IDENTIFIER},
            "additionalProperties": {
                "type": "object",
                "description": "the JSON Schema of the argument's value; `default` makes it "
                "optional",
            },
        },
        "node": {"type": "object", "description": "a node; {arg: NAME} marks where a value goes"},
    },
    "required": ["node"],
    "additionalProperties": False,
}
ARGUMENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "named values the spec refers to as {arg: NAME}; a spec that extends this "
    "one overrides them one by one",
    "propertyNames": {"pattern": _IDENTIFIER},
}
INSTANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a node made from a block template: {use: NAME, args: {...}}",
    "properties": {
        "name": {"type": "string", "pattern": _IDENTIFIER},
        "use": {"type": "string", "pattern": _IDENTIFIER, "description": "a block's name"},
        "args": {"type": "object", "propertyNames": {"pattern": _IDENTIFIER}},
        "inputs": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["use"],
    "additionalProperties": False,
}
_CHECK = Draft202012Validator
_SECTIONS_VALIDATOR = _CHECK(
    {
        "type": "object",
        "properties": {
            "arguments": ARGUMENTS_SCHEMA,
            "blocks": {
                "type": "object",
                "propertyNames": {"pattern": _IDENTIFIER},
                "additionalProperties": TEMPLATE_SCHEMA,
            },
        },
    }
)
_INSTANCE_VALIDATOR = _CHECK(INSTANCE_SCHEMA)


@dataclass(frozen=True)
class _Template:
    name: str
    params: Mapping[str, Mapping[str, Any]]
    node: Mapping[str, Any]
    path: SpecPath


@dataclass(frozen=True)
class _Value:
    """An argument's value and where it was written (for locations in the expanded spec)."""

    value: Any
    origin: SpecPath
    smap: SourceMap


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "arg" in value


def _is_pattern(value: Any) -> bool:
    return isinstance(value, dict) and (
        (set(value) == {"cycle"}) or (set(value) == {"first", "rest"})
    )


def _uses_definitions(value: Any) -> bool:
    if isinstance(value, dict):
        if _is_ref(value) or _is_pattern(value) or "use" in value:
            return True
        return any(_uses_definitions(v) for v in value.values())
    if isinstance(value, list):
        return any(_uses_definitions(v) for v in value)
    return False


class _Expander:
    def __init__(self, smap: SourceMap, templates: dict[str, _Template], limits: Limits) -> None:
        self.smap = smap
        self.templates = templates
        self.limits = limits
        self.out = SourceMap()
        self.spec_arguments: dict[str, _Value] = {}
        self.problems: list[Problem] = []
        self.emitted = 0

    # -- locations ------------------------------------------------------------------------
    def _mark(self, out_path: SpecPath, origin: SpecPath, smap: SourceMap) -> None:
        loc = smap.locate(origin)
        if loc is not None:
            self.out.values[out_path] = loc
        key = smap.keys.get(origin)
        if key is not None:
            self.out.keys[out_path] = key
        self.emitted += 1
        if self.emitted > self.limits.values:
            what = "expanding blocks and patterns gives too many values"
            raise SpecError([self._limit("values", what, out_path)])

    def _limit(self, name: str, what: str, path: SpecPath) -> Problem:
        problem = limit_problem(name, self.limits, what, path)
        return self.out.problem(problem.message, path, hint=problem.hint)

    # -- expansion --------------------------------------------------------------------------
    def expand(
        self,
        value: Any,
        origin: SpecPath,
        out_path: SpecPath,
        scope: Mapping[str, _Value],
        where: str,
        stack: tuple[str, ...] = (),
    ) -> Any:
        """``value`` (written at ``origin``) with references and blocks replaced."""
        if len(out_path) > self.limits.nesting:
            raise SpecError(
                [self._limit("nesting", "blocks inside blocks nest too deep", out_path)]
            )
        if _is_ref(value):
            return self._reference(value, origin, out_path, scope, where)
        self._mark(out_path, origin, self.smap)
        if isinstance(value, list):
            return [
                self.expand(item, (*origin, i), (*out_path, i), scope, where, stack)
                for i, item in enumerate(value)
            ]
        if not isinstance(value, dict):
            return value
        if "use" in value and "type" not in value:
            return self._instance(value, origin, out_path, scope, where, stack)
        return {
            key: self.expand(item, (*origin, key), (*out_path, key), scope, where, stack)
            for key, item in value.items()
        }

    def _reference(
        self,
        value: dict[str, Any],
        origin: SpecPath,
        out_path: SpecPath,
        scope: Mapping[str, _Value],
        where: str,
    ) -> Any:
        name = value["arg"]
        found = scope.get(name) if isinstance(name, str) else None
        if found is None:
            known = sorted(scope)
            near = closest_names(str(name), known, n=1) if isinstance(name, str) else []
            self.problems.append(
                self.smap.problem(
                    f"{{arg: {name!r}}} names no {where}; known: {', '.join(known) or 'none'}",
                    (*origin, "arg"),
                    value=name,
                    hint=f"did you mean {near[0]!r}?" if near else None,
                )
            )
            return None
        self.copy_marks(found.value, found.origin, out_path, found.smap)
        return copy.deepcopy(found.value)

    def copy_marks(self, value: Any, origin: SpecPath, out_path: SpecPath, smap: SourceMap) -> None:
        self._mark(out_path, origin, smap)
        if isinstance(value, dict):
            for key, item in value.items():
                self.copy_marks(item, (*origin, key), (*out_path, key), smap)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.copy_marks(item, (*origin, index), (*out_path, index), smap)

    def _instance(
        self,
        value: dict[str, Any],
        origin: SpecPath,
        out_path: SpecPath,
        scope: Mapping[str, _Value],
        where: str,
        stack: tuple[str, ...],
    ) -> Any:
        shape = [
            self.smap.problem(f"block instance: {error.message}", (*origin, *error.path))
            for error in _INSTANCE_VALIDATOR.iter_errors(value)
        ]
        if shape:
            self.problems.extend(shape)
            return None
        name = value["use"]
        template = self.templates.get(name)
        if template is None:
            known = sorted(self.templates)
            near = closest_names(name, known, n=1)
            self.problems.append(
                self.smap.problem(
                    f"block {name!r} is not defined; blocks: {', '.join(known) or 'none'}",
                    (*origin, "use"),
                    value=name,
                    hint=f"did you mean {near[0]!r}?" if near else "define it under `blocks:`",
                )
            )
            return None
        if name in stack:
            chain = " -> ".join((*stack, name))
            self.problems.append(
                self.smap.problem(f"block {name!r} instantiates itself: {chain}", origin)
            )
            return None
        arguments = self._arguments(template, value.get("args", {}), origin, scope, where)
        if arguments is None:
            return None
        node = self.expand(
            template.node,
            (*template.path, "node"),
            out_path,
            {**self.spec_arguments, **arguments},  # its parameters, then the spec's arguments
            f"parameter of block {name!r} nor spec argument",
            (*stack, name),
        )
        if not isinstance(node, dict):
            return node
        self._mark(out_path, origin, self.smap)  # the node itself is where it is used
        own = {key: copy.deepcopy(value[key]) for key in ("name", "inputs") if key in value}
        for key, item in own.items():
            self.copy_marks(item, (*origin, key), (*out_path, key), self.smap)
        return {**own, **{k: v for k, v in node.items() if k not in own}}

    def _arguments(
        self,
        template: _Template,
        given: Mapping[str, Any],
        origin: SpecPath,
        scope: Mapping[str, _Value],
        where: str,
    ) -> dict[str, _Value] | None:
        before = len(self.problems)
        arguments: dict[str, _Value] = {}
        for key in given:
            if key not in template.params:
                known = ", ".join(template.params) or "none"
                near = closest_names(key, list(template.params), n=1)
                self.problems.append(
                    self.smap.problem(
                        f"block {template.name!r} has no parameter {key!r}; parameters: {known}",
                        (*origin, "args", key),
                        key=True,
                        hint=f"did you mean {near[0]!r}?" if near else None,
                    )
                )
        for key, schema in template.params.items():
            if key in given and _is_ref(given[key]) and given[key]["arg"] in scope:
                arguments[key] = scope[given[key]["arg"]]  # located where it was written
            elif key in given:
                at = (*origin, "args", key)
                probe = _Expander(self.smap, self.templates, self.limits)
                probe.spec_arguments = self.spec_arguments
                value = probe.expand(given[key], at, (), scope, where)
                self.problems.extend(probe.problems)
                if probe.problems:
                    continue
                arguments[key] = _Value(value, at, self.smap)
            elif "default" in schema:
                at = (*template.path, "params", key, "default")
                arguments[key] = _Value(schema["default"], at, self.smap)
            else:
                self.problems.append(
                    self.smap.problem(
                        f"block {template.name!r} needs argument {key!r}",
                        (*origin, "args") if given else origin,
                        hint=f"give it under args: {{{key}: ...}}",
                    )
                )
                continue
            checked = {k: v for k, v in schema.items() if k not in ("default", "description")}
            for error in _CHECK(checked).iter_errors(arguments[key].value):
                self.problems.append(
                    self.smap.problem(
                        f"argument {key!r} of block {template.name!r}: {error.message}",
                        arguments[key].origin,
                        value=arguments[key].value,
                    )
                )
        return arguments if len(self.problems) == before else None


def _templates(data: Mapping[str, Any], smap: SourceMap) -> dict[str, _Template]:
    problems = [
        smap.problem(error.message, tuple(error.absolute_path))
        for error in _SECTIONS_VALIDATOR.iter_errors({k: data[k] for k in SECTIONS if k in data})
    ]
    templates: dict[str, _Template] = {}
    for name, body in (data.get("blocks") or {}).items():
        if not isinstance(body, dict):
            continue
        for param, schema in (body.get("params") or {}).items():
            try:
                _CHECK.check_schema(schema)
            except SchemaError as exc:
                problems.append(
                    smap.problem(
                        f"parameter {param!r} of block {name!r} is not a valid JSON Schema: "
                        f"{exc.message}",
                        ("blocks", name, "params", param, *exc.path),
                    )
                )
        templates[name] = _Template(
            name, body.get("params") or {}, body.get("node", {}), ("blocks", name)
        )
    if problems:
        raise SpecError(problems)
    return templates


# -- per-index patterns -----------------------------------------------------------------------
def _pattern_at(value: Any, index: int) -> Any:
    if _is_pattern(value):
        if "cycle" in value:
            items = value["cycle"]
            return copy.deepcopy(items[index % len(items)])
        return copy.deepcopy(value["first"] if index == 0 else value["rest"])
    if isinstance(value, dict):
        if value.get("type") == "Repeat":
            return value  # a nested Repeat's patterns index its own copies
        return {k: _pattern_at(v, index) for k, v in value.items()}
    if isinstance(value, list):
        return [_pattern_at(v, index) for v in value]
    return value


def _has_pattern(value: Any) -> bool:
    if _is_pattern(value):
        return True
    if isinstance(value, dict):
        return value.get("type") != "Repeat" and any(_has_pattern(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_pattern(v) for v in value)
    return False


def _pattern_problems(value: Any, path: SpecPath, smap: SourceMap) -> list[Problem]:
    """Patterns left outside a Repeat's layer, or malformed ones."""
    problems: list[Problem] = []
    if _is_pattern(value):
        problems.append(
            smap.problem(
                "a per-index pattern ({cycle: [...]} or {first: ..., rest: ...}) is only "
                "allowed inside a Repeat's layer",
                path,
            )
        )
    elif isinstance(value, dict):
        for key, item in value.items():
            problems.extend(_pattern_problems(item, (*path, key), smap))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(_pattern_problems(item, (*path, index), smap))
    return problems


def _unroll(value: Any, path: SpecPath, expander: _Expander) -> Any:
    """Each Repeat whose layer holds patterns, as the Sequential of its copies."""
    if isinstance(value, list):
        return [_unroll(item, (*path, i), expander) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    times, layer = value.get("times"), value.get("layer")
    if (
        value.get("type") == "Repeat"
        and isinstance(times, int)
        and not isinstance(times, bool)
        and 1 <= times <= expander.limits.modules
        and _has_pattern(layer)
    ):
        for bad in _bad_cycles(layer, (*path, "layer"), expander.out):
            expander.problems.append(bad)
        if expander.problems:
            return value
        assert isinstance(layer, dict)
        unnamed = {k: v for k, v in layer.items() if k != "name"}
        copies = []
        for index in range(times):
            copies.append(_unroll(_pattern_at(unnamed, index), (*path, "layers", index), expander))
            expander.copy_marks(
                copies[-1], (*path, "layer"), (*path, "layers", index), expander.out
            )
        unrolled = {k: v for k, v in value.items() if k not in ("type", "times", "layer")}
        return {"type": "Sequential", **unrolled, "layers": copies}
    return {k: _unroll(v, (*path, k), expander) for k, v in value.items()}


def _bad_cycles(value: Any, path: SpecPath, smap: SourceMap) -> list[Problem]:
    problems: list[Problem] = []
    if _is_pattern(value) and "cycle" in value:
        items = value["cycle"]
        if not isinstance(items, list) or not items:
            problems.append(smap.problem("`cycle` must be a non-empty list", (*path, "cycle")))
    elif isinstance(value, dict) and value.get("type") != "Repeat":
        for key, item in value.items():
            problems.extend(_bad_cycles(item, (*path, key), smap))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.extend(_bad_cycles(item, (*path, index), smap))
    return problems


def expand_definitions(
    data: dict[str, Any], smap: SourceMap, limits: Limits
) -> tuple[dict[str, Any], SourceMap]:
    """``data`` with its arguments, block instances and per-index patterns expanded, and the
    source map of the result; a document that uses none of them is returned as it is.

    Raises ``SpecError`` listing every problem (unknown block or argument, an argument its
    parameter's schema refuses, a pattern outside a Repeat) at its ``file:line:column``.
    """
    if not any(k in data for k in SECTIONS) and not _uses_definitions(data):
        return data, smap
    templates = _templates(data, smap)
    expander = _Expander(smap, templates, limits)
    spec_arguments = {
        key: _Value(value, ("arguments", key), smap)
        for key, value in (data.get("arguments") or {}).items()
    }
    expander.spec_arguments = spec_arguments
    result: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            continue
        result[key] = expander.expand(value, (key,), (key,), spec_arguments, "spec argument")
    if expander.problems:
        raise SpecError(_by_position(expander.problems))
    expander.out.values.setdefault((), smap.values.get((), Location("<mapping>")))
    unrolled: dict[str, Any] = _unroll(result, (), expander)
    problems = expander.problems or _pattern_problems(unrolled, (), expander.out)
    if problems:
        raise SpecError(_by_position(problems))
    return unrolled, expander.out


def _by_position(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.column or 0))
