"""Turn spec nodes into modules on the meta device, propagating the sample shape node by node.

Every node is built on the meta device (``MetaConstruction``) and its output shape found, so
input sizes are inferred and shape errors are found without allocating a weight: by arithmetic
for common torch modules (``_shapes``), otherwise by probing it with a meta tensor of its input
shape.
A failure becomes a ``SpecError`` whose problem names the node's spec path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import PathPart, Problem, RegistryError, SpecError
from ._meta import MetaConstruction, MetaShortcuts, plain_checks
from ._registry import LAYERS, NODE_KEYS, LayerRegistry, Shape
from ._shapes import known_output_shape

__all__ = ["Assembled", "BuildContext", "assemble", "build_node", "build_sequence", "format_shape"]

_CHANNELS_FIRST = "CTHW"


def format_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


@dataclass
class BuildContext:
    """What a combinator layer gets to build its nested nodes.

    A combinator that knows its output shape from its children sets ``output_shape``; the
    builder then trusts it instead of probing the whole combinator again.
    """

    in_shape: Shape
    path: tuple[PathPart, ...]
    registry: LayerRegistry = LAYERS
    output_shape: Shape | None = None

    def build(
        self, node: Mapping[str, Any], *at: PathPart, in_shape: Shape | None = None
    ) -> tuple[nn.Module, Shape]:
        """Build a nested node found at ``path + at``; returns the module and its output shape."""
        shape = self.in_shape if in_shape is None else in_shape
        return build_node(node, shape, (*self.path, *at), self.registry)

    def build_sequence(
        self, nodes: Sequence[Mapping[str, Any]], *at: PathPart, in_shape: Shape | None = None
    ) -> tuple[nn.Sequential, Shape]:
        shape = self.in_shape if in_shape is None else in_shape
        return build_sequence(nodes, shape, (*self.path, *at), self.registry)


def build_sequence(
    nodes: Sequence[Mapping[str, Any]],
    in_shape: Shape,
    path: tuple[PathPart, ...],
    registry: LayerRegistry = LAYERS,
) -> tuple[nn.Sequential, Shape]:
    """Build a list of nodes into an ``nn.Sequential`` keyed by each node's ``name`` or index."""
    children: OrderedDict[str, nn.Module] = OrderedDict()
    shape = in_shape
    for index, node in enumerate(nodes):
        key = str(node.get("name", index))
        if key in children:
            raise SpecError([Problem(f"duplicate module name {key!r}", (*path, index, "name"))])
        children[key], shape = build_node(node, shape, (*path, index), registry)
    return nn.Sequential(children), shape


def build_node(
    node: Mapping[str, Any],
    in_shape: Shape,
    path: tuple[PathPart, ...],
    registry: LayerRegistry = LAYERS,
) -> tuple[nn.Module, Shape]:
    """Build one node on the meta device and return it with its output shape."""
    type_name = node["type"]
    try:
        entry = registry.get(type_name)
    except RegistryError as exc:
        raise SpecError([Problem(str(exc), (*path, "type"), value=type_name)]) from None
    params = {k: v for k, v in node.items() if k not in NODE_KEYS}
    ctx = BuildContext(in_shape, path, registry)
    try:
        with MetaConstruction():
            module = entry.create(ctx, params)
    except SpecError:
        raise
    except Exception as exc:  # a layer's own check (channels, heads, ...) or torch's
        raise SpecError(
            [Problem(f"{type_name} cannot take input {format_shape(in_shape)}: {exc}", path)]
        ) from exc
    if ctx.output_shape is not None:
        return module, ctx.output_shape
    known = known_output_shape(module, in_shape)
    if known is not None:
        return module, known
    return module, _probe(module, in_shape, path, type_name)


def _probe(module: nn.Module, in_shape: Shape, path: tuple[PathPart, ...], type_name: str) -> Shape:
    # Batch of 2: batch norm in training mode refuses a single value per channel.
    clip = torch.empty((2, *in_shape), device="meta")
    try:
        with torch.no_grad(), MetaShortcuts(count_flops=False):
            out = module(clip)
    except Exception as exc:
        raise SpecError(
            [Problem(f"{type_name} fails on input {format_shape(in_shape)}: {exc}", path)]
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise SpecError(
            [Problem(f"{type_name} returned {type(out).__name__}, expected one tensor", path)]
        )
    out_shape: Shape = tuple(out.shape[1:])
    if any(size == 0 for size in out_shape):
        dims = [
            _CHANNELS_FIRST[i] if len(out_shape) == 4 else str(i)
            for i, size in enumerate(out_shape)
            if size == 0
        ]
        raise SpecError(
            [
                Problem(
                    f"{type_name} collapses dimension {', '.join(dims)} to zero: input "
                    f"{format_shape(in_shape)} -> output {format_shape(out_shape)}; "
                    "use a smaller kernel or stride, or a larger input",
                    path,
                )
            ]
        )
    return out_shape


@dataclass(frozen=True)
class Assembled:
    """The modules of a whole spec, on the meta device, with the shape after each part."""

    backbone: nn.Sequential
    neck: nn.Module
    heads: dict[str, nn.Module]
    shapes: dict[str, Shape]


def assemble(spec: Mapping[str, Any], registry: LayerRegistry = LAYERS) -> Assembled:
    """Build backbone, neck and heads of a validated spec, propagating the clip shape."""
    with plain_checks():
        return _assemble(spec, registry)


def _assemble(spec: Mapping[str, Any], registry: LayerRegistry) -> Assembled:
    clip = spec["input"]
    shape: Shape = (clip["channels"], clip["frames"], clip["height"], clip["width"])
    shapes: dict[str, Shape] = {"input": shape}
    backbone, shape = build_sequence(spec["backbone"], shape, ("backbone",), registry)
    shapes["backbone"] = shape
    neck: nn.Module = nn.Identity()
    if spec.get("neck") is not None:
        neck, shape = build_node(spec["neck"], shape, ("neck",), registry)
    shapes["neck"] = shape
    heads: dict[str, nn.Module] = {}
    problems: list[Problem] = []
    for head_name, node in spec["heads"].items():
        try:
            heads[head_name], shapes[f"heads.{head_name}"] = build_node(
                node, shape, ("heads", head_name), registry
            )
        except SpecError as exc:  # heads are independent: report each one
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return Assembled(backbone, neck, heads, shapes)
