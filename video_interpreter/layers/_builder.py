"""Spec nodes to types, and to modules on the meta device.

A sample's type (``SampleType``) travels through the nodes of a spec. At each node the builder
checks the layout against what the layer accepts and asks the layer's ``output`` declaration for
the next type: plain Python, no tensor. ``propagate`` stops there (validation); ``build_node``
also constructs the module under ``torch.device("meta")``, its input sizes inferred from the
type. A layer registered without a declaration is constructed and run once on the meta device
with torch's own kernels to find its output.

Every failure becomes a ``SpecError`` whose problem names the node's spec path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ..errors import PathPart, Problem, RegistryError, SpecError, format_spec_path
from ._registry import LAYERS, NODE_KEYS, LayerEntry, LayerRegistry
from ._types import Layout, SampleType, ShapeError, clip
from .adaptation import mark_reads_clip
from .graph import INPUT, Graph

__all__ = [
    "Assembled",
    "BuildContext",
    "assemble",
    "build_node",
    "build_sequence",
    "input_type",
    "is_graph",
    "node_type",
    "propagate",
    "spec_types",
]

# What turns one layout into another, for the hint of a layout mismatch: (given, wanted) -> hint.
_CONVERSIONS: dict[tuple[Layout, Layout], str] = {
    (Layout.CLIP, Layout.GRID): "embed the clip into tokens first (TubeletEmbedding, "
    "SwinPatchEmbed3d)",
    (Layout.CLIP, Layout.TOKENS): "embed the clip first (a Conv3d patch embedding, then "
    "MViTEncoder gives tokens)",
    (Layout.CLIP, Layout.VECTOR): "pool it to a vector first (GlobalAvgPool3d)",
    (Layout.GRID, Layout.CLIP): "move this layer before the one that made tokens, or use a "
    "layer that takes a token grid (TransformerBlock, SwinStage3d, LayerNorm, Linear)",
    (Layout.GRID, Layout.TOKENS): "flatten the grid into a sequence (Flatten with start_dim 0, "
    "end_dim 2)",
    (Layout.GRID, Layout.VECTOR): "pool the tokens to a vector first (TokenPool)",
    (Layout.TOKENS, Layout.CLIP): "move this layer before the one that made tokens, or use a "
    "layer that takes a token sequence (LayerNorm, Linear, MViTBlock)",
    (Layout.TOKENS, Layout.GRID): "use a layer that takes a token sequence (LayerNorm, Linear, "
    "MViTBlock)",
    (Layout.TOKENS, Layout.VECTOR): "take the class token (ClassToken) or pool the tokens "
    "(TokenPool) first",
    (Layout.VECTOR, Layout.CLIP): "move this layer before the pooling to a vector",
    (Layout.VECTOR, Layout.GRID): "move this layer before the pooling to a vector",
    (Layout.VECTOR, Layout.TOKENS): "move this layer before the pooling to a vector",
}


_INPUT_ORIGIN = "the input"


def input_type(spec: Mapping[str, Any]) -> SampleType:
    """The type of one clip as the spec's ``input`` describes it."""
    given = spec["input"]
    return replace(
        clip(given["channels"], given["frames"], given["height"], given["width"]),
        origin=_INPUT_ORIGIN,
        from_clip=True,
    )


@dataclass
class BuildContext:
    """What a layer that nests nodes (``takes_context=True``) gets, to type or build them."""

    in_type: SampleType
    path: tuple[PathPart, ...]
    registry: LayerRegistry = LAYERS

    def output_type(
        self, node: Mapping[str, Any], *at: PathPart, in_type: SampleType | None = None
    ) -> SampleType:
        """The type a nested node found at ``path + at`` gives (nothing is built)."""
        return _node_type(node, in_type or self.in_type, (*self.path, *at), self.registry)

    def sequence_type(
        self, nodes: Sequence[Mapping[str, Any]], *at: PathPart, in_type: SampleType | None = None
    ) -> SampleType:
        return _sequence_type(nodes, in_type or self.in_type, (*self.path, *at), self.registry)

    def build(
        self, node: Mapping[str, Any], *at: PathPart, in_type: SampleType | None = None
    ) -> tuple[nn.Module, SampleType]:
        """Build a nested node found at ``path + at``: its module and the type it gives."""
        return build_node(node, in_type or self.in_type, (*self.path, *at), self.registry)

    def build_sequence(
        self, nodes: Sequence[Mapping[str, Any]], *at: PathPart, in_type: SampleType | None = None
    ) -> tuple[nn.Sequential, SampleType]:
        return build_sequence(nodes, in_type or self.in_type, (*self.path, *at), self.registry)


def _entry(
    node: Mapping[str, Any], path: tuple[PathPart, ...], registry: LayerRegistry
) -> tuple[LayerEntry, dict[str, Any]]:
    try:
        entry = registry.get(node["type"])
    except RegistryError as exc:
        raise SpecError([Problem(str(exc), (*path, "type"), value=node["type"])]) from None
    return entry, {k: v for k, v in node.items() if k not in NODE_KEYS}


def _mismatch(entry: LayerEntry, given: SampleType, path: tuple[PathPart, ...]) -> SpecError:
    assert entry.accepts is not None
    wanted = sorted(entry.accepts, key=lambda layout: list(Layout).index(layout))
    hints = [_CONVERSIONS[(given.layout, w)] for w in wanted if (given.layout, w) in _CONVERSIONS]
    takes = " or ".join(layout.description for layout in wanted)
    message = f"{entry.name} takes {takes}; {given.origin or 'its input'} gives {given}"
    return SpecError([Problem(message + (f": {hints[0]}" if hints else ""), path)])


def _described(in_types: Sequence[SampleType]) -> str:
    if len(in_types) == 1:
        return str(in_types[0])
    return "inputs " + ", ".join(f"{t} from {t.origin}" for t in in_types)


def _check_arity(
    entry: LayerEntry, in_types: Sequence[SampleType], path: tuple[PathPart, ...]
) -> None:
    if entry.arity == "one" and len(in_types) != 1:
        message = f"{entry.name} takes one input; `inputs` names {len(in_types)}"
        raise SpecError(
            [Problem(message + " (merge them first: Add, Multiply, Concatenate)", path)]
        )
    if entry.arity == "many" and len(in_types) < 2:
        raise SpecError(
            [Problem(f"{entry.name} merges several inputs; name them in `inputs`", path)]
        )


def _declared(
    entry: LayerEntry,
    params: dict[str, Any],
    in_types: tuple[SampleType, ...],
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
) -> SampleType:
    """The type ``entry`` declares for ``in_types``, checked against what it accepts."""
    assert entry.output is not None
    _check_arity(entry, in_types, path)
    for given in in_types:
        if entry.accepts is not None and given.layout not in entry.accepts:
            raise _mismatch(entry, given, path)
    arguments = {**entry.defaults(), **params}
    x: Any = in_types if entry.arity == "many" else in_types[0]
    try:
        if entry.takes_context:
            out = entry.output(BuildContext(in_types[0], path, registry), x, **arguments)
        else:
            out = entry.output(x, **arguments)
    except ShapeError as exc:
        message = f"{entry.name} cannot take {_described(in_types)}: {exc}"
        raise SpecError([Problem(message, path)]) from None
    # A layer that only picks values of its input (Subsample) passes the clip on as the clip.
    picks = bool(getattr(entry.obj, "picks_from_input", False))
    from_clip = picks and all(t.from_clip for t in in_types)
    return replace(out, origin=f"{format_spec_path(path)} ({entry.name})", from_clip=from_clip)


def _construct(
    entry: LayerEntry,
    params: dict[str, Any],
    in_types: tuple[SampleType, ...],
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
) -> nn.Module:
    try:
        with torch.device("meta"):
            module = entry.create(BuildContext(in_types[0], path, registry), params)
    except SpecError:
        raise
    except Exception as exc:  # a layer's own check that its declaration did not foresee
        message = f"{entry.name} cannot take {_described(in_types)}: {exc}"
        raise SpecError([Problem(message, path)]) from exc
    if any(t.from_clip for t in in_types):
        # A stem: adapting a checkpoint may change the input channels it reads.
        mark_reads_clip(module)
    return module


def _probe(
    entry: LayerEntry,
    params: dict[str, Any],
    in_types: tuple[SampleType, ...],
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
) -> tuple[nn.Module, SampleType]:
    """Construct an undeclared layer on meta and run it once there, with torch's own kernels."""
    _check_arity(entry, in_types, path)
    module = _construct(entry, params, in_types, path, registry)
    # A batch of 2: batch norm refuses one value per channel.
    batches = [torch.empty((2, *t.sizes), device="meta") for t in in_types]
    first = in_types[0]
    try:
        with torch.no_grad():
            out = module(*batches)
    except Exception as exc:
        message = f"{entry.name} fails on {_described(in_types)}: {exc}"
        raise SpecError([Problem(message, path)]) from exc
    if not isinstance(out, torch.Tensor):
        raise SpecError(
            [Problem(f"{entry.name} returned {type(out).__name__}, expected one tensor", path)]
        )
    sizes = tuple(out.shape[1:])
    layout = {1: Layout.VECTOR, 2: Layout.TOKENS, 4: Layout.CLIP}.get(len(sizes))
    if len(sizes) == first.rank:
        layout = first.layout
    if layout is None or min(sizes, default=0) < 1:
        raise SpecError(
            [
                Problem(
                    f"{entry.name} turns {_described(in_types)} into a tensor of sample shape "
                    f"{sizes}, which is not a clip (C, T, H, W), a token grid, tokens (L, D) or "
                    "a vector (F,)",
                    path,
                )
            ]
        )
    keep = layout is first.layout and sizes[:1] == first.sizes[:1]
    out_type = SampleType(
        layout,
        sizes,
        first.prefix if keep else 0,
        first.token_grid if keep else None,
        origin=f"{format_spec_path(path)} ({entry.name})",
    )
    return module, out_type


def _node(
    node: Mapping[str, Any],
    in_types: tuple[SampleType, ...],
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
    *,
    construct: bool,
) -> tuple[nn.Module | None, SampleType]:
    """The type a node gives for ``in_types`` and, with ``construct``, its module on meta."""
    entry, params = _entry(node, path, registry)
    if entry.output is None:
        module, out = _probe(entry, params, in_types, path, registry)
        return (module if construct else None), out
    out = _declared(entry, params, in_types, path, registry)
    return (_construct(entry, params, in_types, path, registry) if construct else None), out


def _nested(node: Mapping[str, Any], path: tuple[PathPart, ...]) -> None:
    if "inputs" in node:
        raise SpecError(
            [
                Problem(
                    "`inputs` wires backbone nodes, the neck and heads; inside a layer's own "
                    "list each node takes the one before it",
                    (*path, "inputs"),
                )
            ]
        )


def build_node(
    node: Mapping[str, Any],
    in_type: SampleType,
    path: tuple[PathPart, ...],
    registry: LayerRegistry = LAYERS,
) -> tuple[nn.Module, SampleType]:
    """Build one node on the meta device; return its module and the type it gives."""
    _nested(node, path)
    module, out = _node(node, (in_type,), path, registry, construct=True)
    assert module is not None
    return module, out


def build_sequence(
    nodes: Sequence[Mapping[str, Any]],
    in_type: SampleType,
    path: tuple[PathPart, ...],
    registry: LayerRegistry = LAYERS,
) -> tuple[nn.Sequential, SampleType]:
    """Build a list of nodes into an ``nn.Sequential`` keyed by each node's ``name`` or index."""
    children: OrderedDict[str, nn.Module] = OrderedDict()
    current = in_type
    for index, node in enumerate(nodes):
        key = str(node.get("name", index))
        if key in children:
            raise SpecError([Problem(f"duplicate module name {key!r}", (*path, index, "name"))])
        children[key], current = build_node(node, current, (*path, index), registry)
    return nn.Sequential(children), current


def _node_type(
    node: Mapping[str, Any],
    in_type: SampleType,
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
) -> SampleType:
    _nested(node, path)
    return _node(node, (in_type,), path, registry, construct=False)[1]


def _sequence_type(
    nodes: Sequence[Mapping[str, Any]],
    in_type: SampleType,
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
) -> SampleType:
    current = in_type
    for index, node in enumerate(nodes):
        current = _node_type(node, current, (*path, index), registry)
    return current


def node_type(
    node: Mapping[str, Any],
    in_types: Sequence[SampleType],
    path: tuple[PathPart, ...] = (),
    registry: LayerRegistry = LAYERS,
) -> SampleType:
    """The type one node found at ``path`` gives for its inputs' types (several for a merge),
    by its declaration alone (an undeclared layer is run once on meta)."""
    return _node(node, tuple(in_types), path, registry, construct=False)[1]


def propagate(
    nodes: Sequence[Mapping[str, Any]],
    in_type: SampleType,
    path: tuple[PathPart, ...] = (),
    registry: LayerRegistry = LAYERS,
) -> SampleType:
    """The type a chain of ``nodes`` (the list found at ``path``) gives for ``in_type``, by
    declarations alone."""
    return _sequence_type(nodes, in_type, path, registry)


@dataclass
class _Wired:
    """A backbone as a graph: every node's type, module (when constructed) and inputs."""

    types: dict[str, SampleType]
    modules: dict[str, nn.Module]
    wiring: dict[str, tuple[str, ...]]
    last: str


def _wiring_problems(nodes: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """Every input that names no earlier node (itself, a later node, or none), and every
    misused name, all at once: the backbone's wiring is checked before any type."""
    problems: list[Problem] = []
    position = {str(node.get("name", i)): i for i, node in enumerate(nodes)}
    earlier = [INPUT]
    for index, node in enumerate(nodes):
        key, path = str(node.get("name", index)), ("backbone", index)
        if key == INPUT:
            problems.append(
                Problem(f"the name {INPUT!r} is the clip's; name this node otherwise", path)
            )
        elif key in earlier:
            problems.append(Problem(f"duplicate module name {key!r}", (*path, "name")))
        for at, source in enumerate(node.get("inputs", ())):
            if source in earlier:
                continue
            if source == key:
                where = "the node itself"
            elif source in position:
                where = f"a node that comes later (backbone[{position[source]}])"
            else:
                where = f"no node of the backbone; known here: {', '.join(earlier)}"
                problems.append(Problem(f"input {source!r} names {where}", (*path, "inputs", at)))
                continue
            problems.append(
                Problem(
                    f"input {source!r} names {where}: a node reads only earlier ones, so the "
                    "graph has no cycle",
                    (*path, "inputs", at),
                )
            )
        earlier.append(key)
    return problems


def _wire(
    nodes: Sequence[Mapping[str, Any]],
    in_type: SampleType,
    registry: LayerRegistry,
    *,
    construct: bool,
) -> _Wired:
    """Type (and build) the backbone's nodes in order, each on the nodes its ``inputs`` name
    (default: the node before it). Only earlier nodes can be named, so there is no cycle."""
    wired = _Wired({INPUT: in_type}, {}, {}, INPUT)
    problems = _wiring_problems(nodes)
    if problems:
        raise SpecError(problems)
    for index, node in enumerate(nodes):
        key, path = str(node.get("name", index)), ("backbone", index)
        sources = tuple(node.get("inputs", (wired.last,)))
        module, out = _node(
            node, tuple(wired.types[s] for s in sources), path, registry, construct=construct
        )
        wired.types[key], wired.wiring[key], wired.last = out, sources, key
        if module is not None:
            wired.modules[key] = module
    return wired


def _source(
    node: Mapping[str, Any], default: str, wired: _Wired, path: tuple[PathPart, ...]
) -> str:
    """The backbone node the neck or a head reads (``inputs``: one name; default ``default``)."""
    sources = node.get("inputs", (default,))
    if len(sources) != 1 or sources[0] not in wired.types:
        known = ", ".join(wired.types)
        raise SpecError(
            [Problem(f"`inputs` must name one backbone node; known: {known}", (*path, "inputs"))]
        )
    return str(sources[0])


def is_graph(spec: Mapping[str, Any]) -> bool:
    """Whether any node of the spec names its inputs (else it is a chain)."""
    nodes = [*spec["backbone"], *spec["heads"].values()]
    if spec.get("neck") is not None:
        nodes.append(spec["neck"])
    return any("inputs" in node for node in nodes)


@dataclass(frozen=True)
class Assembled:
    """The modules of a whole spec, on the meta device, with the type after each part.

    ``taps`` maps the neck (``"neck"``) and each head that reads a backbone node of a graph,
    rather than what comes before it, to that node's name."""

    backbone: nn.Module
    neck: nn.Module
    heads: dict[str, nn.Module]
    types: dict[str, SampleType]
    taps: dict[str, str] = field(default_factory=dict)


NECK = "neck"
"""The key of the neck's output in an ``Assembled``'s ``taps`` (the backbone's nodes by name)."""


def _assemble(spec: Mapping[str, Any], registry: LayerRegistry, *, construct: bool) -> Assembled:
    in_type = input_type(spec)
    types = {"input": in_type}
    taps: dict[str, str] = {}
    if is_graph(spec):
        wired = _wire(spec["backbone"], in_type, registry, construct=construct)
        backbone: nn.Module = Graph(wired.modules, wired.wiring) if construct else nn.Identity()
        last = wired.last
        types["backbone"] = wired.types[last]
        inner = wired
    else:
        if construct:
            backbone, types["backbone"] = build_sequence(
                spec["backbone"], in_type, ("backbone",), registry
            )
        else:
            backbone = nn.Identity()
            types["backbone"] = _sequence_type(spec["backbone"], in_type, ("backbone",), registry)
        inner = None
    neck: nn.Module = nn.Identity()
    types["neck"] = types["backbone"]
    node = spec.get("neck")
    if node is not None:
        neck_in = types["backbone"]
        if inner is not None and "inputs" in node:
            taps[NECK] = _source(node, inner.last, inner, ("neck",))
            neck_in = inner.types[taps[NECK]]
        built, types["neck"] = _node(node, (neck_in,), ("neck",), registry, construct=construct)
        neck = built if built is not None else neck

    heads: dict[str, nn.Module] = {}
    problems: list[Problem] = []
    for name, head in spec["heads"].items():
        path = ("heads", name)
        try:
            head_in = types["neck"]
            if inner is not None and "inputs" in head:
                taps[name] = _source(head, inner.last, inner, path)
                head_in = inner.types[taps[name]]
            module, types[f"heads.{name}"] = _node(
                head, (head_in,), path, registry, construct=construct
            )
        except SpecError as exc:  # heads are independent: report each one
            problems.extend(exc.problems)
            continue
        if module is not None:
            heads[name] = module
    if problems:
        raise SpecError(problems)
    if inner is not None:
        _refuse_shared_in_place(spec["backbone"], inner, taps)
    return Assembled(backbone, neck, heads, types, taps)


def _refuse_shared_in_place(
    nodes: Sequence[Mapping[str, Any]], wired: _Wired, taps: Mapping[str, str]
) -> None:
    """A node that overwrites its input in place must be that input's only reader: another
    reader would see the overwritten value."""
    readers: dict[str, int] = {}
    for sources in [*wired.wiring.values(), *([s] for s in taps.values())]:
        for source in set(sources):
            readers[source] = readers.get(source, 0) + 1
    if NECK not in taps and wired.last in readers:
        readers[wired.last] += 1  # the neck reads the last node too
    for index, (name, sources) in enumerate(wired.wiring.items()):
        shared = [s for s in sources if readers.get(s, 0) > 1]
        if nodes[index].get("inplace") and shared:
            message = (
                f"{name!r} works in place on {shared[0]!r}, which other nodes read too; "
                "set inplace: false"
            )
            raise SpecError([Problem(message, ("backbone", index, "inplace"))])


def spec_types(spec: Mapping[str, Any], registry: LayerRegistry = LAYERS) -> dict[str, SampleType]:
    """The type after the input, backbone, neck and each head (``heads.<name>``) of a validated
    spec, by declarations alone; a ``SpecError`` listing every mismatch."""
    return _assemble(spec, registry, construct=False).types


def assemble(spec: Mapping[str, Any], registry: LayerRegistry = LAYERS) -> Assembled:
    """Build backbone, neck and heads of a validated spec on the meta device."""
    return _assemble(spec, registry, construct=True)
