"""Bounds on what a spec may ask for, each checked before its cost is paid.

Without them a 2 KB spec can take the machine: YAML aliases that expand to billions of values,
interpolations that double a string at every level, nesting that overflows Python's recursion,
a ``depth: 100000`` that builds for a minute, sizes whose weights need terabytes. Every default
is far above what any real video model needs; a spec beyond one is refused with a ``SpecError``
that names the bound and says how to raise it.

The bounds in force are ``current_limits()``: ``DEFAULT_LIMITS`` unless a ``with
raised_limits(...)`` block (or ``load_spec``/``build_model``'s ``limits=``) says otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import yaml
from torch import nn
from torch.nn.modules.module import register_module_module_registration_hook

from ..errors import PathPart, Problem, SpecError

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "check_document",
    "check_json_text",
    "check_parameters",
    "check_yaml_text",
    "current_limits",
    "limit_problem",
    "module_budget",
    "raised_limits",
]


@dataclass(frozen=True)
class Limits:
    """The largest spec this package agrees to read and build.

    Each field is a bound no real video model comes near; raise one with
    ``Limits(parameters=50_000_000_000)``, passed as ``limits=`` to ``load_spec`` and
    ``build_model``, or for a whole block of code with ``with raised_limits(parameters=...)``.
    """

    file_bytes: int = 4 * 1024 * 1024
    """Size of one spec file (specs are a few kilobytes)."""
    values: int = 100_000
    """Values in one document (every list, mapping and scalar), YAML aliases and
    interpolations expanded: each is counted as often as it appears once resolved."""
    nesting: int = 32
    """Lists and mappings inside each other (a spec nests about 8 deep)."""
    string_chars: int = 100_000
    """Characters of one string once its interpolations are resolved."""
    integer: int = 2**24
    """Magnitude of any integer in a spec (widths, classes, sizes: 16,777,216)."""
    input_size: int = 8192
    """Frames, height and width of the input clip, each (some layers build tables per axis)."""
    modules: int = 20_000
    """Modules built from one spec, repeats and depths expanded (ResNet-1001 has 3,000)."""
    parameters: int = 20_000_000_000
    """Parameters of one model, counted on the meta device before any weight is allocated."""

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{item.name} must be a positive integer, got {value!r}")

    def replace(self, **changes: int) -> Limits:
        """A copy with some bounds changed; an unknown name lists the known ones."""
        known = {item.name for item in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(
                f"unknown limit {', '.join(map(repr, unknown))}; known limits: "
                + ", ".join(sorted(known))
            )
        return dataclasses.replace(self, **changes)


DEFAULT_LIMITS = Limits()
_current: ContextVar[Limits] = ContextVar("video_interpreter_limits", default=DEFAULT_LIMITS)


def current_limits() -> Limits:
    """The bounds in force here: ``DEFAULT_LIMITS`` unless ``raised_limits`` says otherwise.

    Examples:
        >>> from video_interpreter.spec import current_limits, raised_limits
        >>> with raised_limits(parameters=123_456_789_000):
        ...     current_limits().parameters
        123456789000
    """
    return _current.get()


@contextlib.contextmanager
def raised_limits(limits: Limits | None = None, /, **changes: int) -> Iterator[Limits]:
    """Use other bounds inside a ``with`` block (this thread or task only).

    ``with raised_limits(parameters=50_000_000_000): load_model(path)``; or pass a whole
    ``Limits``. Despite the name, a bound may be lowered too.

    Examples:
        >>> from video_interpreter import build_model, raised_limits
        >>> with raised_limits(parameters=100_000_000_000):  # more than the default allows
        ...     model = build_model("tiny_r2plus1d", device="meta")
    """
    chosen = (limits or current_limits()).replace(**changes)
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)


def _how_to_raise(name: str) -> str:
    return (
        f"raise it with load_spec/build_model(..., limits=Limits({name}=...)), "
        f"`with raised_limits({name}=...)`, or `--limit {name}=...` on the command line"
    )


def limit_problem(
    name: str,
    limits: Limits,
    what: str,
    path: tuple[PathPart, ...] = (),
    *,
    file: str | None = None,
    line: int | None = None,
    column: int | None = None,
) -> Problem:
    """A problem for a bound exceeded: what, the bound's name and value, how to raise it."""
    bound = getattr(limits, name)
    return Problem(
        f"{what}, over the limit of {bound:,} (Limits.{name})",
        path,
        file=file,
        line=line,
        column=column,
        hint=_how_to_raise(name),
    )


# -- documents: text before it is parsed, data before it is used -----------------------------


def check_size(text: str, file: str, limits: Limits) -> None:
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > limits.file_bytes:
        raise SpecError(
            [limit_problem("file_bytes", limits, f"the file has {size:,} bytes", file=file)]
        )


def check_yaml_text(text: str, file: str, limits: Limits) -> None:
    """Refuse YAML whose nesting or alias expansion is beyond the limits, before composing it.

    One pass over the parser's events (no recursion, no nodes built): every alias counts the
    values of its anchor again, and adds the anchor's height to the nesting where it is used.
    Malformed YAML is left for the composer to report.
    """
    check_size(text, file, limits)
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, height)
    stack: list[tuple[int, int, str | None, yaml.Event]] = []  # (values, height, anchor, start)
    total = 0

    def refuse(name: str, what: str, event: yaml.Event) -> SpecError:
        mark = event.start_mark
        line, column = (None, None) if mark is None else (mark.line + 1, mark.column + 1)
        return SpecError([limit_problem(name, limits, what, file=file, line=line, column=column)])

    def add(values: int, height: int, event: yaml.Event) -> None:
        nonlocal total
        total += values
        if total > limits.values:
            raise refuse("values", "the document has too many values (aliases expanded)", event)
        depth = len(stack) + height
        if depth > limits.nesting:
            raise refuse("nesting", f"lists and mappings nest {depth} deep here", event)
        if stack:
            count, inner, anchor, start = stack[-1]
            stack[-1] = (count + values, max(inner, height), anchor, start)

    try:
        for event in yaml.parse(text, Loader=_loader()):
            if isinstance(event, yaml.ScalarEvent):
                if len(event.value) > limits.string_chars:
                    what = f"a string of {len(event.value):,} characters"
                    raise refuse("string_chars", what, event)
                if event.anchor is not None:
                    sizes[event.anchor] = (1, 0)
                add(1, 0, event)
            elif isinstance(event, yaml.AliasEvent):
                values, height = sizes.get(event.anchor or "", (1, 0))
                add(values, height, event)
            elif isinstance(event, yaml.CollectionStartEvent):
                if len(stack) + 1 > limits.nesting:
                    raise refuse(
                        "nesting", f"lists and mappings nest {len(stack) + 1} deep here", event
                    )
                stack.append((0, 0, event.anchor, event))
            elif isinstance(event, yaml.CollectionEndEvent) and stack:
                values, height, anchor, start = stack.pop()
                total -= values  # counted again below, with the collection itself
                if anchor is not None:
                    sizes[anchor] = (values + 1, height + 1)
                add(values + 1, height + 1, start)
    except yaml.YAMLError:
        return


def _loader() -> type[yaml.SafeLoader]:
    found: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return found


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_json_text(text: str, file: str, limits: Limits) -> None:
    """Refuse JSON nested beyond the limit before the standard library's parser recurses."""
    check_size(text, file, limits)
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limits.nesting:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - text.rfind("\n", 0, match.start())
                raise SpecError(
                    [
                        limit_problem(
                            "nesting",
                            limits,
                            f"lists and mappings nest {depth} deep here",
                            file=file,
                            line=line,
                            column=column,
                        )
                    ]
                )
        elif token in "]}":
            depth = max(0, depth - 1)


def check_document(
    data: Any, limits: Limits, *, where: str | None = None
) -> Iterator[tuple[str, str, tuple[PathPart, ...]]]:
    """Walk plain data without recursion, sharing and cycles counted as expansions: yield
    ``(limit name, what, path)`` for the first bound exceeded, then stop."""
    stack: list[tuple[Any, tuple[PathPart, ...]]] = [(data, ())]
    count = 0
    while stack:
        value, path = stack.pop()
        count += 1
        if count > limits.values:
            yield "values", "the document holds too many values", path
            return
        if isinstance(value, dict | list):
            if len(path) + 1 > limits.nesting:
                yield "nesting", f"lists and mappings nest {len(path) + 1} deep here", path
                return
            items: Iterable[tuple[PathPart, Any]] = (
                value.items() if isinstance(value, dict) else enumerate(value)
            )
            stack.extend((item, (*path, key)) for key, item in items)
        elif isinstance(value, str) and len(value) > limits.string_chars:
            yield "string_chars", f"a string of {len(value):,} characters", path
            return


# -- building: modules counted as they are made, parameters counted on meta -----------------

_budget = threading.local()


def _count_module(module: nn.Module, name: str, submodule: nn.Module | None) -> None:
    left: int | None = getattr(_budget, "left", None)
    if left is None or submodule is None:
        return
    _budget.left = left - 1
    if left <= 0:
        _budget.left = None  # report once; the builder may register more while unwinding
        limits: Limits = _budget.limits
        raise SpecError(
            [
                limit_problem(
                    "modules",
                    limits,
                    "the spec builds too many modules (repeats and depths expanded)",
                )
            ]
        )


_hook_lock = threading.Lock()
_hook_users = 0
_hook_handle: Any = None


@contextlib.contextmanager
def module_budget(limits: Limits) -> Iterator[None]:
    """Refuse, in this thread, to construct more than ``limits.modules`` modules.

    Counted through torch's public module-registration hook, installed only while a budget is
    open anywhere, so building stops at the limit instead of after a ``depth: 100000``.
    """
    global _hook_users, _hook_handle
    outer = getattr(_budget, "left", None), getattr(_budget, "limits", None)
    with _hook_lock:
        if _hook_users == 0:
            _hook_handle = register_module_module_registration_hook(_count_module)
        _hook_users += 1
    _budget.left, _budget.limits = limits.modules, limits
    try:
        yield
    finally:
        _budget.left, _budget.limits = outer
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0:
                _hook_handle.remove()
                _hook_handle = None


def check_parameters(modules: Iterable[nn.Module], limits: Limits) -> int:
    """The parameters of ``modules`` (meta tensors: counted, never allocated), or a
    ``SpecError`` when they are more than ``limits.parameters``."""
    total = sum(p.numel() for module in modules for p in module.parameters())
    if total > limits.parameters:
        size = total * 4
        shown = f"{size / 2**30:,.0f} GiB" if size >= 2**30 else f"{size / 2**20:,.1f} MiB"
        what = f"the model has {total:,} parameters ({shown} in float32)"
        raise SpecError([limit_problem("parameters", limits, what)])
    return total


# Parameters that repeat what their mapping builds, by the registry's naming convention:
# ``times`` (Repeat), ``depth`` (ResStage, a Swin or MViT stage), ``depths`` (one per stage).
_REPEATS = ("times", "depth")
_REPEAT_LISTS = ("depths",)


def repeated_blocks(data: Any) -> int:
    """How many blocks a spec asks for once repeats and depths are expanded (a lower bound of
    its modules), counted on the document without building anything."""

    def count(value: Any) -> int:
        if isinstance(value, list):
            return sum(count(item) for item in value)
        if not isinstance(value, dict):
            return 0
        times = 1
        for key in _REPEATS:
            factor = value.get(key)
            if isinstance(factor, int) and not isinstance(factor, bool) and factor > 0:
                times *= factor
        for key in _REPEAT_LISTS:
            factors = value.get(key)
            if isinstance(factors, list):
                times *= max(
                    1,
                    sum(f for f in factors if isinstance(f, int) and not isinstance(f, bool)),
                )
        inner = sum(count(item) for item in value.values())
        return times * max(1, inner)

    return count(data)
