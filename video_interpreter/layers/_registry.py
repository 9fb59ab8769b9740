"""The closed registry of layer names a spec may use (private machinery; see ``layers``).

A registered layer is an ``nn.Module`` class (or a function returning one), a JSON Schema for
the parameters a spec may give it, and its type declaration: the layouts it ``accepts`` and an
``output`` function giving its output type from its input type and parameters. Input sizes are
never written in a spec: ``infer`` maps a constructor argument to a function of the input type
(``{"in_channels": channels}``), filled in by type propagation. The registry checks at
registration time that schema and signature agree, so a spec can never reach a constructor
argument the schema does not know.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from torch import nn

from ..errors import RegistrationError, RegistryError
from ._types import Layout, SampleType, channels, features

if TYPE_CHECKING:
    from ._builder import BuildContext

__all__ = [
    "ENTRY_POINT_GROUP",
    "LAYERS",
    "LayerEntry",
    "LayerRegistry",
    "OutputFn",
    "channels",
    "closest_names",
    "features",
    "register_layer",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "video_interpreter.layers"

InferFn = Callable[[SampleType], Any]
OutputFn = Callable[..., SampleType]
"""``output(x, **params)`` (or ``output(ctx, x, **params)`` for a layer that takes the build
context): the output type for input type ``x``; raises ``ShapeError`` for what it refuses."""
LayerFactory = Callable[["BuildContext", dict[str, Any]], nn.Module]
T = TypeVar("T", bound=Callable[..., Any])
R = TypeVar("R")

# Keys every node may carry besides its parameters.
NODE_KEYS = ("type", "name", "inputs")
NAME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
    "description": "module name in the state dict (a Python identifier); default: the index",
}
INPUTS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
    "minItems": 1,
    "description": "backbone nodes, the neck and heads only: the names of the earlier nodes "
    "this node reads ('input': the clip); default: the node before it",
}
Arity = Literal["one", "many"]


def closest_names(name: str, known: Sequence[str], n: int = 3) -> list[str]:
    """The known names closest to ``name``, for did-you-mean hints (case-insensitive)."""
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def _json_default(value: Any) -> tuple[bool, Any]:
    """A signature default as a JSON value, if it is one."""
    if value is None or isinstance(value, bool | int | float | str):
        return True, value
    if isinstance(value, tuple | list) and all(
        isinstance(v, bool | int | float | str) for v in value
    ):
        return True, list(value)
    return False, None


@dataclass(frozen=True)
class LayerEntry:
    """A registered layer: its name, how to build it, and the schema of its parameters."""

    name: str
    obj: Callable[..., nn.Module]
    params: Mapping[str, Any]
    required: tuple[str, ...]
    infer: Mapping[str, InferFn]
    takes_context: bool
    description: str
    family: str
    accepts: frozenset[Layout] | None = None  # None: every layout
    output: OutputFn | None = None  # None: found by running the module on the meta device
    arity: Arity = "one"  # "many": a merge, taking the tuple of its inputs' types and tensors

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema of a node of this type, ``type`` and ``name`` included."""
        return {
            "type": "object",
            "description": self.description,
            "properties": {
                "type": {"const": self.name},
                "name": NAME_SCHEMA,
                "inputs": INPUTS_SCHEMA,
                **{k: dict(v) for k, v in self.params.items()},
            },
            "required": ["type", *self.required],
            "additionalProperties": False,
        }

    def defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.params.items() if "default" in v}

    def create(self, ctx: BuildContext, params: dict[str, Any]) -> nn.Module:
        """Construct the module for one node, filling inferred sizes from ``ctx.in_type``."""
        if self.takes_context:
            return self.obj(ctx, **params)
        inferred = {arg: fn(ctx.in_type) for arg, fn in self.infer.items()}
        return self.obj(**inferred, **params)


@dataclass(eq=False)
class LayerRegistry:
    """Name -> layer. Refuses a second object under a taken name; lookups suggest close names."""

    entry_point_group: str | None = ENTRY_POINT_GROUP
    _entries: dict[str, LayerEntry] = field(default_factory=dict)
    _entry_points_loaded: bool = False
    # What later stages derive from the entries (the spec schema and its validator), dropped
    # whenever an entry is added, so nothing derived can be stale.
    _derived: dict[str, Any] = field(default_factory=dict, repr=False)

    def register(
        self,
        obj: Callable[..., nn.Module],
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        infer: Mapping[str, InferFn] | None = None,
        takes_context: bool = False,
        description: str | None = None,
        accepts: Iterable[Layout] | None = None,
        output: OutputFn | None = None,
        arity: Arity = "one",
    ) -> LayerEntry:
        layer_name = str(name or getattr(obj, "__name__", ""))
        if not layer_name.isidentifier():
            raise RegistrationError(f"layer name {layer_name!r} must be a Python identifier")
        existing = self._entries.get(layer_name)
        if existing is not None:
            if existing.obj is obj:
                return existing
            raise RegistrationError(
                f"layer name {layer_name!r} is already registered to "
                f"{existing.family}.{getattr(existing.obj, '__qualname__', existing.obj)}; "
                f"refusing {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}. "
                "Register it under another name."
            )
        entry = _make_entry(
            obj,
            layer_name,
            dict(params or {}),
            dict(infer or {}),
            takes_context,
            description,
            None if accepts is None else frozenset(accepts),
            output,
            arity,
        )
        self._entries[layer_name] = entry
        self._derived.clear()
        return entry

    def derived(self, key: str, make: Callable[[], R]) -> R:
        """``make()``'s result, kept until the next registration (schemas, validators)."""
        self._load_entry_points()
        if key not in self._derived:
            self._derived[key] = make()
        result: R = self._derived[key]
        return result

    def get(self, name: str) -> LayerEntry:
        self._load_entry_points()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        near = closest_names(name, self.names())
        hint = f"did you mean {', '.join(near)}?" if near else "no registered name is close"
        return (
            f"unknown layer type {name!r}: {hint} "
            f"({len(self._entries)} layers are registered; `video-interpreter layers` lists them)"
        )

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def entries(self) -> Iterator[LayerEntry]:
        self._load_entry_points()
        for name in sorted(self._entries):
            yield self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __len__(self) -> int:
        self._load_entry_points()
        return len(self._entries)

    def _load_entry_points(self) -> None:
        """Import third-party layer packages once; importing them registers their layers."""
        if self._entry_points_loaded or self.entry_point_group is None:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            try:
                loaded = ep.load()
            except Exception as exc:
                raise RegistrationError(
                    f"entry point {ep.name!r} ({ep.value}) in group {self.entry_point_group!r} "
                    f"failed to import: {exc}"
                ) from exc
            if callable(loaded) and not isinstance(loaded, type):
                loaded(self)  # a ``register(registry)`` hook
            logger.debug("loaded layer entry point %s", ep.value)


def _make_entry(
    obj: Callable[..., nn.Module],
    name: str,
    params: dict[str, Any],
    infer: dict[str, InferFn],
    takes_context: bool,
    description: str | None,
    accepts: frozenset[Layout] | None,
    output: OutputFn | None,
    arity: Arity,
) -> LayerEntry:
    """Check the schema against the signature and fill defaults from it."""
    where = f"layer {name!r}"
    for key in NODE_KEYS:
        if key in params:
            raise RegistrationError(f"{where}: parameter {key!r} is reserved for every node")
    signature = inspect.signature(obj)
    accepted = list(signature.parameters.values())
    if takes_context:
        if not accepted:
            raise RegistrationError(f"{where}: takes_context=True needs a first `ctx` argument")
        accepted = accepted[1:]
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted)
    by_name = {
        p.name: p
        for p in accepted
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    for arg in [*params, *infer]:
        if arg not in by_name and not var_kw:
            raise RegistrationError(
                f"{where}: schema or infer names {arg!r}, which {obj!r} does not accept; "
                f"it accepts {sorted(by_name)}"
            )
    overlap = set(params) & set(infer)
    if overlap:
        raise RegistrationError(f"{where}: {sorted(overlap)} are both inferred and in the schema")
    required: list[str] = []
    for arg, param in by_name.items():
        if arg in infer:
            continue
        if param.default is inspect.Parameter.empty:
            if arg not in params:
                raise RegistrationError(
                    f"{where}: required argument {arg!r} is neither in the schema nor inferred"
                )
            required.append(arg)
        elif arg in params and "default" not in params[arg]:
            ok, value = _json_default(param.default)
            if ok:
                params[arg] = {**params[arg], "default": value}
    doc = description or inspect.getdoc(obj) or ""
    return LayerEntry(
        name=name,
        obj=obj,
        params=params,
        required=tuple(required),
        infer=infer,
        takes_context=takes_context,
        description=doc.split("\n\n")[0].replace("\n", " "),
        family=getattr(obj, "__module__", "?"),
        accepts=accepts,
        output=output,
        arity=arity,
    )


LAYERS = LayerRegistry()
"""The default registry: torch.nn building blocks, this package's layers, entry points."""


def register_layer(
    name: str | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    infer: Mapping[str, InferFn] | None = None,
    takes_context: bool = False,
    description: str | None = None,
    accepts: Iterable[Layout] | None = None,
    output: OutputFn | None = None,
    arity: Arity = "one",
    registry: LayerRegistry | None = None,
) -> Callable[[T], T]:
    """Register a layer class or factory function under ``name`` (default: its ``__name__``).

    ``params`` maps each constructor argument a spec may set to its JSON Schema; defaults come
    from the signature. ``infer`` maps arguments filled by type propagation to a function of the
    input type (``channels``, ``features`` or your own). With ``takes_context=True`` the object
    receives the ``BuildContext`` first, to build nested nodes.

    The type declaration: ``accepts`` lists the layouts the layer takes (default: any), and
    ``output(x, **params)`` returns its output type for input type ``x`` and the node's
    parameters (defaults included), raising ``ShapeError`` for what it refuses. Without
    ``output`` the layer is built and run once on the meta device to find its output. A merge
    (``arity="many"``) takes several inputs: ``output`` gets the tuple of their types, and
    ``forward`` the tensors.

    Example::

        @register_layer(params={"out_channels": {"type": "integer", "minimum": 1}},
                        infer={"in_channels": channels}, accepts=[Layout.CLIP],
                        output=lambda x, out_channels: clip(out_channels, *x.sizes[1:]))
        class PointwiseConv3d(nn.Conv3d):
            def __init__(self, in_channels: int, out_channels: int) -> None:
                super().__init__(in_channels, out_channels, kernel_size=1)

    Examples:
        >>> from torch import nn
        >>> from video_interpreter.layers import LayerRegistry, Layout, channels, clip
        >>> from video_interpreter.layers import register_layer
        >>> registry = LayerRegistry(entry_point_group=None)   # or the global one: leave it out
        >>> @register_layer(
        ...     params={"out_channels": {"type": "integer", "minimum": 1}},
        ...     infer={"in_channels": channels},
        ...     accepts=[Layout.CLIP],
        ...     output=lambda x, out_channels: clip(out_channels, *x.sizes[1:]),
        ...     registry=registry,
        ... )
        ... class PointwiseConv3d(nn.Conv3d):
        ...     def __init__(self, in_channels: int, out_channels: int) -> None:
        ...         super().__init__(in_channels, out_channels, kernel_size=1)
        >>> "PointwiseConv3d" in registry
        True
    """

    def decorate(obj: T) -> T:
        (LAYERS if registry is None else registry).register(
            obj,
            name=name,
            params=params,
            infer=infer,
            takes_context=takes_context,
            description=description,
            accepts=accepts,
            output=output,
            arity=arity,
        )
        return obj

    return decorate
