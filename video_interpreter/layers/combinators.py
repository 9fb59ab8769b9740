"""Nodes made of nodes: sequence, residual, repeat and parallel branches joined by concat."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._builder import BuildContext, format_shape
from ._params import NODE, NODE_LIST, POSITIVE_INT
from ._registry import register_layer

__all__ = ["Concat", "Repeat", "Residual", "Sequential"]


@register_layer(params={"layers": NODE_LIST}, takes_context=True)
def Sequential(ctx: BuildContext, layers: Sequence[Mapping[str, Any]]) -> nn.Sequential:  # noqa: N802
    """Nodes applied one after another; named nodes keep their names in the state dict."""
    module, ctx.output_shape = ctx.build_sequence(layers, "layers")
    return module


@register_layer(params={"times": POSITIVE_INT, "layer": NODE}, takes_context=True)
def Repeat(ctx: BuildContext, times: int, layer: Mapping[str, Any]) -> nn.Sequential:  # noqa: N802
    """The same node ``times`` times in a row, each copy taking the previous one's output."""
    unnamed = {k: v for k, v in layer.items() if k != "name"}  # copies are keyed 0..times-1
    module, ctx.output_shape = ctx.build_sequence([unnamed] * times, "layer")
    return module


class Residual(nn.Module):
    """``activation(body(x) + shortcut(x))``; the shortcut is the identity unless given."""

    def __init__(
        self, body: nn.Module, shortcut: nn.Module | None, activation: nn.Module | None
    ) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.activation(self.body(x) + self.shortcut(x))
        return out


@register_layer(
    "Residual",
    params={
        "body": NODE_LIST,
        "shortcut": {"anyOf": [NODE_LIST, {"type": "null"}]},
        "activation": {"anyOf": [NODE, {"type": "null"}]},
    },
    takes_context=True,
)
def _residual(
    ctx: BuildContext,
    body: Sequence[Mapping[str, Any]],
    shortcut: Sequence[Mapping[str, Any]] | None = None,
    activation: Mapping[str, Any] | None = None,
) -> Residual:
    """``activation(body(x) + shortcut(x))``; the shortcut is the identity unless given."""
    body_module, body_shape = ctx.build_sequence(body, "body")
    short_module, short_shape = (None, ctx.in_shape)
    if shortcut is not None:
        short_module, short_shape = ctx.build_sequence(shortcut, "shortcut")
    if body_shape != short_shape:
        raise ValueError(
            f"body output {format_shape(body_shape)} and shortcut output "
            f"{format_shape(short_shape)} differ; give a `shortcut` that maps the input to the "
            "body's output (e.g. a 1x1x1 Conv3d with the body's stride)"
        )
    act_module, ctx.output_shape = None, body_shape
    if activation is not None:
        act_module, ctx.output_shape = ctx.build(activation, "activation", in_shape=body_shape)
    return Residual(body_module, short_module, act_module)


class Concat(nn.Module):
    """Parallel branches on the same input, joined along one dimension (channels by default)."""

    def __init__(self, branches: Sequence[nn.Module], dim: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=self.dim)


@register_layer(
    "Concat",
    params={
        "branches": {"type": "array", "items": NODE_LIST, "minItems": 1},
        "dim": {
            "type": "integer",
            "minimum": 0,
            "description": "dimension of one sample to join along (0: channels)",
        },
    },
    takes_context=True,
)
def _concat(
    ctx: BuildContext, branches: Sequence[Sequence[Mapping[str, Any]]], dim: int = 0
) -> Concat:
    """Parallel branches on the same input, joined along one dimension (channels by default)."""
    modules: list[nn.Module] = []
    shapes = []
    for index, branch in enumerate(branches):
        module, shape = ctx.build_sequence(branch, "branches", index)
        modules.append(module)
        shapes.append(shape)
    rest = {tuple(s[:dim]) + tuple(s[dim + 1 :]) for s in shapes}
    if dim >= len(shapes[0]) or len(rest) != 1:
        raise ValueError(
            f"branch outputs {[format_shape(s) for s in shapes]} cannot be joined along "
            f"dimension {dim}: all other dimensions must match"
        )
    joined = list(shapes[0])
    joined[dim] = sum(s[dim] for s in shapes)
    ctx.output_shape = tuple(joined)
    return Concat(modules, dim + 1)  # + 1: the batch dimension
