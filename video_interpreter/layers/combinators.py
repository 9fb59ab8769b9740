"""Nodes made of nodes: sequence, residual, repeat and parallel branches joined by concat."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._builder import BuildContext
from ._params import NODE, NODE_LIST, POSITIVE_INT
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, sample_dim

__all__ = ["Concat", "Repeat", "Residual", "Sequential"]


ANY = tuple(Layout)


def _sequential_type(
    ctx: BuildContext, x: SampleType, *, layers: Sequence[Mapping[str, Any]], **_: Any
) -> SampleType:
    return ctx.sequence_type(layers, "layers", in_type=x)


@register_layer(
    params={"layers": NODE_LIST}, takes_context=True, accepts=ANY, output=_sequential_type
)
def Sequential(ctx: BuildContext, layers: Sequence[Mapping[str, Any]]) -> nn.Sequential:  # noqa: N802
    """Nodes applied one after another; named nodes keep their names in the state dict."""
    return ctx.build_sequence(layers, "layers")[0]


def _copies(layer: Mapping[str, Any], times: int) -> list[dict[str, Any]]:
    unnamed = {k: v for k, v in layer.items() if k != "name"}  # copies are keyed 0..times-1
    return [unnamed] * times


def _repeat_type(
    ctx: BuildContext, x: SampleType, *, times: int, layer: Mapping[str, Any], **_: Any
) -> SampleType:
    return ctx.sequence_type(_copies(layer, times), "layer", in_type=x)


@register_layer(
    params={"times": POSITIVE_INT, "layer": NODE},
    takes_context=True,
    accepts=ANY,
    output=_repeat_type,
)
def Repeat(ctx: BuildContext, times: int, layer: Mapping[str, Any]) -> nn.Sequential:  # noqa: N802
    """The same node ``times`` times in a row, each copy taking the previous one's output."""
    return ctx.build_sequence(_copies(layer, times), "layer")[0]


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


def _residual_type(
    ctx: BuildContext,
    x: SampleType,
    *,
    body: Sequence[Mapping[str, Any]],
    shortcut: Sequence[Mapping[str, Any]] | None,
    activation: Mapping[str, Any] | None,
    **_: Any,
) -> SampleType:
    body_type = ctx.sequence_type(body, "body", in_type=x)
    short_type = x if shortcut is None else ctx.sequence_type(shortcut, "shortcut", in_type=x)
    if body_type != short_type:
        raise ShapeError(
            f"the body gives {body_type} and the shortcut {short_type}; give a `shortcut` that "
            "maps the input to the body's output (e.g. a 1x1x1 Conv3d with the body's stride)"
        )
    if activation is None:
        return body_type
    return ctx.output_type(activation, "activation", in_type=body_type)


@register_layer(
    "Residual",
    params={
        "body": NODE_LIST,
        "shortcut": {"anyOf": [NODE_LIST, {"type": "null"}]},
        "activation": {"anyOf": [NODE, {"type": "null"}]},
    },
    takes_context=True,
    accepts=ANY,
    output=_residual_type,
)
def _residual(
    ctx: BuildContext,
    body: Sequence[Mapping[str, Any]],
    shortcut: Sequence[Mapping[str, Any]] | None = None,
    activation: Mapping[str, Any] | None = None,
) -> Residual:
    """``activation(body(x) + shortcut(x))``; the shortcut is the identity unless given."""
    body_module, body_type = ctx.build_sequence(body, "body")
    short_module = None if shortcut is None else ctx.build_sequence(shortcut, "shortcut")[0]
    act_module = None
    if activation is not None:
        act_module = ctx.build(activation, "activation", in_type=body_type)[0]
    return Residual(body_module, short_module, act_module)


class Concat(nn.Module):
    """Parallel branches on the same input, joined along one dimension (channels by default)."""

    def __init__(self, branches: Sequence[nn.Module], dim: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=self.dim)


def _concat_type(
    ctx: BuildContext,
    x: SampleType,
    *,
    branches: Sequence[Sequence[Mapping[str, Any]]],
    dim: int,
    **_: Any,
) -> SampleType:
    outs = [
        ctx.sequence_type(branch, "branches", i, in_type=x) for i, branch in enumerate(branches)
    ]
    first = outs[0]
    axis = sample_dim(dim, first, "dim")
    for out in outs[1:]:
        rest = [n for i, n in enumerate(out.sizes) if i != axis]
        if out.layout is not first.layout or rest != [
            n for i, n in enumerate(first.sizes) if i != axis
        ]:
            raise ShapeError(
                f"the branches give {', '.join(str(o) for o in outs)}, which cannot be joined "
                f"along dimension {dim}: the layouts and all other dimensions must match"
            )
    sizes = list(first.sizes)
    sizes[axis] = sum(out.sizes[axis] for out in outs)
    if first.layout is Layout.TOKENS and axis == 0:
        return SampleType(first.layout, tuple(sizes))  # joined sequences: no known grid
    return SampleType(first.layout, tuple(sizes), first.prefix, first.token_grid)


@register_layer(
    "Concat",
    params={
        "branches": {"type": "array", "items": NODE_LIST, "minItems": 1},
        "dim": {
            "type": "integer",
            "description": "dimension of one sample to join along (0: a clip's channels; "
            "-1: the last; the batch is not counted)",
        },
    },
    takes_context=True,
    accepts=ANY,
    output=_concat_type,
)
def _concat(
    ctx: BuildContext, branches: Sequence[Sequence[Mapping[str, Any]]], dim: int = 0
) -> Concat:
    """Parallel branches on the same input, joined along one dimension (channels by default)."""
    modules = [ctx.build_sequence(branch, "branches", i)[0] for i, branch in enumerate(branches)]
    return Concat(modules, dim + 1 if dim >= 0 else dim)  # + 1: the batch dimension
