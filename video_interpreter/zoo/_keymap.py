"""Key maps as data: the ``KeyMap`` a file describes, read and checked entry by entry.

A file is read like a spec (YAML or JSON, positions kept), checked against the key-map JSON
Schema (``key_map.schema.json``, beside this module), then entry by entry for what a schema
cannot say (regexes compile, templates name existing groups, sizes agree with outputs). Every
problem is reported at once, each at its ``file:line:col`` and entry path
(``transforms[2].concat.dim``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import KeyMapError, PathPart, Problem, SpecError
from ..spec import Location, SourceMap, document_problems, read_document
from ._templates import Template

__all__ = [
    "OPERATIONS",
    "KeyMap",
    "KeyMapSource",
    "Rule",
    "Transform",
    "key_map_from_dict",
    "read_key_map",
    "resolve_key_map",
]

Shape = tuple[int, ...]

# The transforms, in the order the docs present them.
OPERATIONS = ("concat", "split", "reshape", "unsqueeze", "expand", "copy", "fill", "drop")

_SCHEMA_FILE = Path(__file__).resolve().parent / "key_map.schema.json"


@cache
def key_map_schema() -> dict[str, Any]:
    """The JSON Schema of key-map files."""
    schema: dict[str, Any] = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


@dataclass(frozen=True)
class Transform:
    """One entry of ``transforms``. ``pattern`` drives it: every key it matches (``from``, or
    ``like`` for fill) is one application; ``inputs`` name the further keys an application
    consumes (concat), ``outputs`` the keys it produces, all from the match's groups."""

    op: str
    index: int
    pattern: re.Pattern[str] | None
    inputs: tuple[Template, ...] = ()
    outputs: tuple[Template, ...] = ()
    dim: int = 0
    sizes: Shape | None = None
    parts: int | None = None
    shape: Shape | None = None
    source_shape: Shape | None = None
    size: int = 1
    new: bool = True
    value: float | None = None
    like: Template | None = None  # drop: the key whose shape and dtype export restores it with
    dtype: str | None = None
    where: str = ""

    @property
    def label(self) -> str:
        """``transforms[2] (concat) at file.yaml:12:5``: how errors name this entry."""
        return f"transforms[{self.index}] ({self.op})" + (f" at {self.where}" if self.where else "")


@dataclass(frozen=True)
class Rule:
    """One entry of ``rules``: a source key that ``pattern`` matches is renamed, the matched
    part replaced by ``replace``."""

    pattern: re.Pattern[str]
    replace: Template
    index: int = 0
    where: str = ""

    @property
    def label(self) -> str:
        return f"rules[{self.index}]" + (f" at {self.where}" if self.where else "")

    def rename(self, key: str) -> str | None:
        """``key`` renamed by this rule, or None when the rule does not match it."""
        match = self.pattern.search(key)
        if match is None:
            return None
        return key[: match.start()] + self.replace.expand(match) + key[match.end() :]


@dataclass(frozen=True)
class KeyMap:
    """How another library's state dict becomes the state dict of the spec ``architecture``:
    ``transforms`` in order, then ``rules`` (first match renames) and ``drop`` for the source
    keys no transform consumed. Build one with ``read_key_map(path)``, ``key_map_from_dict``,
    or ``key_map(architecture, source)`` for the maps shipped with the package."""

    source: str
    architecture: str | None = None
    transforms: tuple[Transform, ...] = ()
    rules: tuple[Rule, ...] = ()
    drop: tuple[re.Pattern[str], ...] = ()
    # Source modules that hold no weights (a max-pool) and have no counterpart in the target:
    # name -> what that changes. Reported as notes, since no key says it.
    no_counterpart: Mapping[str, str] = dataclass_field(default_factory=dict)
    origin: str = "<key map>"

    def target_key(self, key: str) -> str | None:
        """The key a source key is renamed to by ``rules``, or None when ``drop`` drops it."""
        if any(p.search(key) for p in self.drop):
            return None
        for rule in self.rules:
            renamed = rule.rename(key)
            if renamed is not None:
                return renamed
        raise KeyMapError(f"{self.source} key {key!r} matches no rule of the key map {self.origin}")


# -- reading ----------------------------------------------------------------------------------


class _Reader:
    """Turns checked data into a ``KeyMap``, collecting every semantic problem with its place."""

    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.problems: list[Problem] = []

    def problem(self, message: str, path: tuple[PathPart, ...], hint: str | None = None) -> None:
        self.problems.append(self.smap.problem(message, path, hint=hint))

    def where(self, path: tuple[PathPart, ...]) -> str:
        return str(self.smap.problem("", path).location)

    def regex(self, text: str, path: tuple[PathPart, ...]) -> re.Pattern[str] | None:
        try:
            return re.compile(text)
        except re.error as exc:
            self.problem(f"'{text}' is not a valid regex: {exc.msg} at position {exc.pos}", path)
            return None

    def template(
        self, text: str, path: tuple[PathPart, ...], pattern: re.Pattern[str] | None
    ) -> Template | None:
        try:
            template = Template.parse(text)
        except ValueError as exc:
            self.problem(f"'{text}': {exc}", path)
            return None
        reason = template.check_against(pattern)
        if reason is not None:
            self.problem(f"'{text}': {reason}", path)
            return None
        return template

    def templates(
        self, texts: list[str], path: tuple[PathPart, ...], pattern: re.Pattern[str] | None
    ) -> tuple[Template, ...]:
        out = [self.template(t, (*path, i), pattern) for i, t in enumerate(texts)]
        return tuple(t for t in out if t is not None)

    def transform(self, index: int, entry: Mapping[str, Any]) -> Transform | None:
        ((op, body),) = entry.items()
        path: tuple[PathPart, ...] = ("transforms", index, op)
        before = len(self.problems)
        sources = body.get("from")
        pattern: re.Pattern[str] | None = None
        inputs: tuple[Template, ...] = ()
        if op == "concat":
            pattern = self.regex(sources[0], (*path, "from", 0))
            inputs = tuple(
                t
                for i, text in enumerate(sources[1:], start=1)
                if (t := self.template(text, (*path, "from", i), pattern)) is not None
            )
        elif op == "fill":
            if "like" in body:
                pattern = self.regex(body["like"], (*path, "like"))
        else:
            pattern = self.regex(sources, (*path, "from"))
        if op == "drop":
            outputs: tuple[Template, ...] = ()
        elif isinstance(body["to"], list):
            outputs = self.templates(body["to"], (*path, "to"), pattern)
        else:
            single = self.template(body["to"], (*path, "to"), pattern)
            outputs = (single,) if single is not None else ()
        like = None
        if op == "drop" and "like" in body:
            like = self.template(body["like"], (*path, "like"), pattern)
        self._check(op, body, path)
        if len(self.problems) > before:
            return None
        return Transform(
            op=op,
            index=index,
            pattern=pattern,
            inputs=inputs,
            outputs=outputs,
            dim=body.get("dim", 0),
            sizes=tuple(body["sizes"]) if "sizes" in body else None,
            parts=body.get("parts"),
            shape=tuple(body["shape"]) if "shape" in body else None,
            source_shape=tuple(body["source_shape"]) if "source_shape" in body else None,
            size=body.get("size", 1),
            new=body.get("new", True),
            value=float(body["value"]) if "value" in body else None,
            like=like,
            dtype=body.get("dtype"),
            where=self.where(("transforms", index)),
        )

    def _check(self, op: str, body: Mapping[str, Any], path: tuple[PathPart, ...]) -> None:
        """What the schema cannot say: counts that must agree, exclusive options."""
        sizes = body.get("sizes")
        if op == "concat" and sizes is not None and len(sizes) != len(body["from"]):
            self.problem(
                f"{len(sizes)} sizes for {len(body['from'])} inputs; give one size per input",
                (*path, "sizes"),
            )
        if op == "split":
            outputs = len(body["to"])
            if (sizes is None) == ("parts" not in body):
                self.problem(
                    "give either sizes (a list, one per output) or parts (equal parts)", path
                )
            elif sizes is not None and len(sizes) != outputs:
                self.problem(
                    f"{len(sizes)} sizes for {outputs} outputs; give one size per output",
                    (*path, "sizes"),
                )
            elif "parts" in body and body["parts"] != outputs:
                self.problem(
                    f"parts {body['parts']} for {outputs} outputs; they must be equal",
                    (*path, "parts"),
                )
        for field in ("shape", "source_shape"):
            shape = body.get(field)
            wildcards = shape.count(-1) if isinstance(shape, list) else 0
            allowed = 1 if (op, field) == ("reshape", "shape") else 0
            if wildcards > allowed:
                self.problem(
                    f"{shape} has {wildcards} -1; "
                    + ("at most one size may be -1" if allowed else "give every size"),
                    (*path, field),
                )
        if op == "fill" and ("like" in body) == ("shape" in body):
            self.problem("give either like (a pattern of keys to copy) or shape", path)
        if op == "drop" and "value" not in body:
            for field in ("like", "shape", "dtype"):
                if field in body:
                    self.problem(
                        f"{field} restores a dropped tensor on export and needs value: (what "
                        "every element of it holds)",
                        (*path, field),
                    )
        if op == "drop" and "like" in body and "shape" in body:
            self.problem("give like or shape, not both", path)

    def rule(self, index: int, entry: Mapping[str, Any]) -> Rule | None:
        path: tuple[PathPart, ...] = ("rules", index)
        pattern = self.regex(entry["match"], (*path, "match"))
        if pattern is None:
            return None
        replace = self.template(entry["replace"], (*path, "replace"), pattern)
        if replace is None:
            return None
        return Rule(pattern, replace, index, self.where(path))

    def key_map(self, data: Mapping[str, Any], origin: str) -> KeyMap:
        transforms = [self.transform(i, e) for i, e in enumerate(data.get("transforms", []))]
        rules = [self.rule(i, e) for i, e in enumerate(data.get("rules", []))]
        drop = [self.regex(p, ("drop", i)) for i, p in enumerate(data.get("drop", []))]
        if self.problems:
            raise KeyMapError(self.problems)
        return KeyMap(
            source=data["source"],
            architecture=data.get("architecture"),
            transforms=tuple(t for t in transforms if t is not None),
            rules=tuple(r for r in rules if r is not None),
            drop=tuple(p for p in drop if p is not None),
            no_counterpart=dict(data.get("no_counterpart") or {}),
            origin=origin,
        )


def _checked(data: Mapping[str, Any], smap: SourceMap, origin: str) -> KeyMap:
    problems = document_problems(dict(data), smap, key_map_schema())
    if problems:
        raise KeyMapError(problems)
    return _Reader(smap).key_map(data, origin)


def read_key_map(path: str | Path) -> KeyMap:
    r"""Read and check a key-map file (YAML or JSON).

    Every problem is reported at once (``KeyMapError.problems``), each located.

    Examples:
        >>> from pathlib import Path
        >>> from video_interpreter.zoo import read_key_map
        >>> text = "source: mine\nrules:\n  - {match: '^x$', replac: y}\n"
        >>> _ = Path("mine.yaml").write_text(text)
        >>> read_key_map("mine.yaml")
        Traceback (most recent call last):
        ...
        video_interpreter.errors.KeyMapError: 2 problems in key map:
          mine.yaml:3:5: rules[0]: missing required key 'replace'
          mine.yaml:3:20: rules[0].replac: unknown key 'replac'; ... (did you mean 'replace'?)
    """
    path = Path(path)
    try:
        data, smap = read_document(path)
    except SpecError as exc:
        raise KeyMapError(exc.problems) from None
    return _checked(data, smap, str(path))


def key_map_from_dict(data: Mapping[str, Any], origin: str = "<key map>") -> KeyMap:
    r"""A ``KeyMap`` from data shaped like a key-map file, checked the same way.

    Examples:
        >>> from video_interpreter.zoo import key_map_from_dict
        >>> km = key_map_from_dict(
        ...     {"source": "mine", "rules": [{"match": "^(.*)$", "replace": r"backbone.\1"}]}
        ... )
        >>> km.target_key("fc.weight")
        'backbone.fc.weight'
    """
    smap = SourceMap(values={(): Location(origin)})
    return _checked(data, smap, origin)


# What a caller may pass for a key map: the object, a file, or data shaped like a file.
KeyMapSource = KeyMap | str | Path | Mapping[str, Any]


def resolve_key_map(value: KeyMapSource) -> KeyMap:
    """A ``KeyMap`` from the object itself, a key-map file, or data shaped like one::

    km = resolve_key_map("my_map.yaml")
    """
    if isinstance(value, KeyMap):
        return value
    if isinstance(value, str | Path):
        return read_key_map(value)
    return key_map_from_dict(value)
