"""Dataflow graphs: a backbone whose nodes name their inputs, and the nodes that merge several.

A backbone node may list ``inputs``: names of earlier nodes, or ``input`` for the clip. A node
without ``inputs`` takes the node before it (the first node takes the clip), so a chain is a
graph that names nothing. Only earlier nodes can be named, so a graph is acyclic by
construction. ``Graph`` runs the nodes in the spec's order and drops each value after its last
use; ``Add``, ``Multiply`` and ``Concatenate`` merge several inputs, ``Subsample`` derives a
pathway (SlowFast's slow one is the clip subsampled in time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from ._params import triple
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, sample_dim, triple_of

__all__ = ["INPUT", "Add", "Concatenate", "Graph", "Multiply", "Subsample"]

INPUT = "input"
"""The name a node's ``inputs`` gives the model's clip."""


class Graph(nn.Module):
    """Named nodes run in order, each on the outputs of the nodes it names.

    ``wiring`` maps each node to the names it reads (``input``: the clip); ``forward`` returns the
    last node's output, ``run`` also the outputs of the nodes named in ``keep``.
    """

    def __init__(self, nodes: Mapping[str, nn.Module], wiring: Mapping[str, Sequence[str]]) -> None:
        super().__init__()
        for name, module in nodes.items():
            self.add_module(name, module)
        self.wiring = {name: tuple(wiring[name]) for name in nodes}
        self.output = list(nodes)[-1]
        self.last_use = {
            source: name for name, sources in self.wiring.items() for source in sources
        }

    def run(self, x: torch.Tensor, keep: Sequence[str] = ()) -> dict[str, torch.Tensor]:
        """The outputs still needed after the run: the last node's and those of ``keep``."""
        wanted = {*keep, self.output}
        values = {INPUT: x}
        for name, module in self.named_children():
            values[name] = module(*(values[source] for source in self.wiring[name]))
            for source in set(self.wiring[name]):  # free what no later node reads
                if self.last_use[source] == name and source not in wanted:
                    del values[source]
        return {name: values[name] for name in wanted}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[self.output]

    def extra_repr(self) -> str:
        named = [f"{node} <- {', '.join(sources)}" for node, sources in self.wiring.items()]
        return "; ".join(named)


def _same_layout(xs: Sequence[SampleType]) -> None:
    if len({x.layout for x in xs}) > 1:
        raise ShapeError("their layouts differ")


def _add_type(xs: Sequence[SampleType], **_: Any) -> SampleType:
    _same_layout(xs)
    if len({x.sizes for x in xs}) > 1:
        raise ShapeError("inputs of different sizes cannot be added")
    return xs[0]


def _broadcast_type(xs: Sequence[SampleType], **_: Any) -> SampleType:
    _same_layout(xs)
    sizes = []
    for axis in range(xs[0].rank):
        found = {x.sizes[axis] for x in xs} - {1}
        if len(found) > 1:
            raise ShapeError(
                f"they differ at dimension {axis} and neither is 1 (a gate is 1 where it is "
                "shared, e.g. (C, 1, 1, 1))"
            )
        sizes.append(found.pop() if found else 1)
    first = next((x for x in xs if x.sizes == tuple(sizes)), xs[0])
    return SampleType(first.layout, tuple(sizes), first.prefix, first.token_grid)


def _concatenate_type(xs: Sequence[SampleType], *, dim: int, **_: Any) -> SampleType:
    _same_layout(xs)
    axis = sample_dim(dim, xs[0], "dim")
    rest = {tuple(n for i, n in enumerate(x.sizes) if i != axis) for x in xs}
    if len(rest) > 1:
        raise ShapeError(
            f"they cannot be joined along dimension {dim}: all other dimensions must match"
        )
    sizes = list(xs[0].sizes)
    sizes[axis] = sum(x.sizes[axis] for x in xs)
    return SampleType(xs[0].layout, tuple(sizes))


@register_layer(params={}, arity="many", output=_add_type)
class Add(nn.Module):
    """The sum of its inputs, which must have one type (a residual join, a lateral fusion)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@register_layer(params={}, arity="many", output=_broadcast_type)
class Multiply(nn.Module):
    """The product of its inputs, broadcast where a size is 1: a gate ``(C, 1, 1, 1)`` times a
    feature map ``(C, T, H, W)`` (squeeze-excitation)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


@register_layer(
    params={
        "dim": {
            "type": "integer",
            "description": "dimension of one sample to join along (0: a clip's channels)",
        }
    },
    arity="many",
    output=_concatenate_type,
)
class Concatenate(nn.Module):
    """Its inputs joined along one dimension of a sample (channels by default); ``Concat``
    instead runs parallel branches on one input."""

    def __init__(self, dim: int = 0) -> None:
        super().__init__()
        self.dim = dim + 1 if dim >= 0 else dim  # + 1: the batch dimension

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


def _subsample_type(x: SampleType, *, stride: Any, **_: Any) -> SampleType:
    steps = triple_of(stride)
    t, h, w = (math.ceil(n / s) for n, s in zip(x.sizes[1:], steps, strict=True))
    return SampleType(Layout.CLIP, (x.sizes[0], t, h, w))


@register_layer(
    params={"stride": {**triple(1), "description": "keep every n-th frame, row, column"}},
    accepts=[Layout.CLIP],
    output=_subsample_type,
)
class Subsample(nn.Module):
    """Every ``stride``-th frame (row, column) of a clip: ``x[:, :, ::sT, ::sH, ::sW]``, e.g. a
    slow pathway from the clip. A layer reading a subsampled input clip is a stem: adapting a
    checkpoint may change its input channels."""

    # Its output holds values of its input and nothing else (the builder reads this).
    picks_from_input: ClassVar[bool] = True

    def __init__(self, stride: int | Sequence[int] = 1) -> None:
        super().__init__()
        self.stride = triple_of(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        st, sh, sw = self.stride
        return x[:, :, ::st, ::sh, ::sw]

    def extra_repr(self) -> str:
        return f"stride={self.stride}"
