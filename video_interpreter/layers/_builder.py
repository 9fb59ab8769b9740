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
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import PathPart, Problem, RegistryError, SpecError, format_spec_path
from ._registry import LAYERS, NODE_KEYS, LayerEntry, LayerRegistry
from ._types import Layout, SampleType, ShapeError, clip

__all__ = [
    "Assembled",
    "BuildContext",
    "assemble",
    "build_node",
    "build_sequence",
    "input_type",
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


def input_type(spec: Mapping[str, Any]) -> SampleType:
    """The type of one clip as the spec's ``input`` describes it."""
    given = spec["input"]
    return replace(
        clip(given["channels"], given["frames"], given["height"], given["width"]),
        origin="the input",
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


def _declared(
    entry: LayerEntry,
    params: dict[str, Any],
    in_type: SampleType,
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
) -> SampleType:
    """The type ``entry`` declares for ``in_type``, checked against what it accepts."""
    assert entry.output is not None
    if entry.accepts is not None and in_type.layout not in entry.accepts:
        raise _mismatch(entry, in_type, path)
    arguments = {**entry.defaults(), **params}
    try:
        if entry.takes_context:
            out = entry.output(BuildContext(in_type, path, registry), in_type, **arguments)
        else:
            out = entry.output(in_type, **arguments)
    except ShapeError as exc:
        raise SpecError([Problem(f"{entry.name} cannot take {in_type}: {exc}", path)]) from None
    return replace(out, origin=f"{format_spec_path(path)} ({entry.name})")


def _construct(
    entry: LayerEntry,
    params: dict[str, Any],
    in_type: SampleType,
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
) -> nn.Module:
    try:
        with torch.device("meta"):
            return entry.create(BuildContext(in_type, path, registry), params)
    except SpecError:
        raise
    except Exception as exc:  # a layer's own check that its declaration did not foresee
        raise SpecError([Problem(f"{entry.name} cannot take {in_type}: {exc}", path)]) from exc


def _probe(
    entry: LayerEntry,
    params: dict[str, Any],
    in_type: SampleType,
    path: tuple[PathPart, ...],
    registry: LayerRegistry,
) -> tuple[nn.Module, SampleType]:
    """Construct an undeclared layer on meta and run it once there, with torch's own kernels."""
    module = _construct(entry, params, in_type, path, registry)
    batch = torch.empty((2, *in_type.sizes), device="meta")  # 2: batch norm refuses one value
    try:
        with torch.no_grad():
            out = module(batch)
    except Exception as exc:
        raise SpecError([Problem(f"{entry.name} fails on {in_type}: {exc}", path)]) from exc
    if not isinstance(out, torch.Tensor):
        raise SpecError(
            [Problem(f"{entry.name} returned {type(out).__name__}, expected one tensor", path)]
        )
    sizes = tuple(out.shape[1:])
    layout = {1: Layout.VECTOR, 2: Layout.TOKENS, 4: Layout.CLIP}.get(len(sizes))
    if len(sizes) == in_type.rank:
        layout = in_type.layout
    if layout is None or min(sizes, default=0) < 1:
        raise SpecError(
            [
                Problem(
                    f"{entry.name} turns {in_type} into a tensor of sample shape {sizes}, which "
                    "is not a clip (C, T, H, W), a token grid, tokens (L, D) or a vector (F,)",
                    path,
                )
            ]
        )
    keep = layout is in_type.layout and sizes[:1] == in_type.sizes[:1]
    out_type = SampleType(
        layout,
        sizes,
        in_type.prefix if keep else 0,
        in_type.token_grid if keep else None,
        origin=f"{format_spec_path(path)} ({entry.name})",
    )
    return module, out_type


def build_node(
    node: Mapping[str, Any],
    in_type: SampleType,
    path: tuple[PathPart, ...],
    registry: LayerRegistry = LAYERS,
) -> tuple[nn.Module, SampleType]:
    """Build one node on the meta device; return its module and the type it gives."""
    entry, params = _entry(node, path, registry)
    if entry.output is None:
        return _probe(entry, params, in_type, path, registry)
    out = _declared(entry, params, in_type, path, registry)
    return _construct(entry, params, in_type, path, registry), out


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
    entry, params = _entry(node, path, registry)
    if entry.output is None:
        return _probe(entry, params, in_type, path, registry)[1]
    return _declared(entry, params, in_type, path, registry)


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


def propagate(
    nodes: Sequence[Mapping[str, Any]],
    in_type: SampleType,
    path: tuple[PathPart, ...] = (),
    registry: LayerRegistry = LAYERS,
) -> SampleType:
    """The type a chain of ``nodes`` (the list found at ``path``) gives for ``in_type``, by
    declarations alone."""
    return _sequence_type(nodes, in_type, path, registry)


@dataclass(frozen=True)
class Assembled:
    """The modules of a whole spec, on the meta device, with the type after each part."""

    backbone: nn.Sequential
    neck: nn.Module
    heads: dict[str, nn.Module]
    types: dict[str, SampleType]


def _heads(spec: Mapping[str, Any], each: Any) -> tuple[dict[str, Any], list[Problem]]:
    """``each(node, path)`` for every head; heads are independent, so every problem is kept."""
    results: dict[str, Any] = {}
    problems: list[Problem] = []
    for head_name, node in spec["heads"].items():
        try:
            results[head_name] = each(node, ("heads", head_name))
        except SpecError as exc:
            problems.extend(exc.problems)
    return results, problems


def spec_types(spec: Mapping[str, Any], registry: LayerRegistry = LAYERS) -> dict[str, SampleType]:
    """The type after the input, backbone, neck and each head of a validated spec (by
    declarations alone); a ``SpecError`` listing every mismatch."""
    types = {"input": input_type(spec)}
    types["backbone"] = _sequence_type(spec["backbone"], types["input"], ("backbone",), registry)
    neck = spec.get("neck")
    types["neck"] = (
        types["backbone"]
        if neck is None
        else _node_type(neck, types["backbone"], ("neck",), registry)
    )
    heads, problems = _heads(
        spec, lambda node, path: _node_type(node, types["neck"], path, registry)
    )
    if problems:
        raise SpecError(problems)
    types.update({f"heads.{name}": out for name, out in heads.items()})
    return types


def assemble(spec: Mapping[str, Any], registry: LayerRegistry = LAYERS) -> Assembled:
    """Build backbone, neck and heads of a validated spec on the meta device."""
    types = {"input": input_type(spec)}
    backbone, types["backbone"] = build_sequence(
        spec["backbone"], types["input"], ("backbone",), registry
    )
    neck: nn.Module = nn.Identity()
    types["neck"] = types["backbone"]
    if spec.get("neck") is not None:
        neck, types["neck"] = build_node(spec["neck"], types["backbone"], ("neck",), registry)
    built, problems = _heads(
        spec, lambda node, path: build_node(node, types["neck"], path, registry)
    )
    if problems:
        raise SpecError(problems)
    types.update({f"heads.{name}": out for name, (_, out) in built.items()})
    return Assembled(backbone, neck, {name: module for name, (module, _) in built.items()}, types)
