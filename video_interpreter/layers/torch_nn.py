"""torch.nn building blocks, usable by their torch names; input sizes are inferred.

Dimension arguments (``Softmax.dim``, ``Flatten.start_dim``/``end_dim``) count the dimensions of
one sample, as every size in a spec does: 0 is a sample's first dimension (the channels of a
clip), -1 its last; the batch dimension is never counted.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from ._params import BOOL, NUMBER, POSITIVE_INT, POSITIVE_NUMBER, PROBABILITY, enum, triple
from ._registry import register_layer
from ._types import (
    Layout,
    SampleType,
    ShapeError,
    channels,
    clip,
    conv_sizes,
    features,
    pool_sizes,
    sample_dim,
    triple_of,
)

__all__ = ["Flatten", "Softmax"]

_PADDING: dict[str, Any] = {
    "anyOf": [triple(0), enum("same", "valid")],
    "description": "an integer >= 0, a list [T, H, W], or 'same' / 'valid'",
}
_CONV: dict[str, Any] = {
    "out_channels": POSITIVE_INT,
    "kernel_size": triple(1),
    "stride": triple(1),
    "padding": _PADDING,
    "dilation": triple(1),
    "groups": POSITIVE_INT,
    "bias": BOOL,
    "padding_mode": enum("zeros", "reflect", "replicate", "circular"),
}
_NORM = {"eps": POSITIVE_NUMBER}
_POOL = {
    "kernel_size": triple(1),
    "stride": {"anyOf": [triple(1), {"type": "null"}], "description": "default: kernel_size"},
    "padding": triple(0),
}
_OUTPUT_SIZE: dict[str, Any] = {
    "anyOf": [POSITIVE_INT, {"type": "array", "items": POSITIVE_INT, "minItems": 3, "maxItems": 3}],
    "description": "an integer >= 1, or a list [T, H, W] of such integers",
}


ANY = tuple(Layout)
CLIPS = (Layout.CLIP,)
LAST_DIM = (Layout.GRID, Layout.TOKENS, Layout.VECTOR)


def _same(x: SampleType, **_: Any) -> SampleType:
    return x


def _check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    if in_channels % groups or out_channels % groups:
        raise ShapeError(
            f"groups={groups} must divide both the input's {in_channels} channels and "
            f"out_channels={out_channels}"
        )


def _conv(
    x: SampleType,
    *,
    out_channels: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    **_: Any,
) -> SampleType:
    _check_groups(x.sizes[0], out_channels, groups)
    return clip(out_channels, *conv_sizes(x.sizes[1:], kernel_size, stride, padding, dilation))


def _conv_transpose(
    x: SampleType,
    *,
    out_channels: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    **_: Any,
) -> SampleType:
    _check_groups(x.sizes[0], out_channels, groups)
    k, s, p, d = (triple_of(v) for v in (kernel_size, stride, padding, dilation))
    t, h, w = (
        (n - 1) * si - 2 * pi + di * (ki - 1) + 1
        for n, ki, si, pi, di in zip(x.sizes[1:], k, s, p, d, strict=True)
    )
    if min(t, h, w) < 1:
        raise ShapeError(f"padding {list(p)} leaves no output: {(t, h, w)}")
    return clip(out_channels, t, h, w)


def _group_norm(x: SampleType, *, num_groups: int, **_: Any) -> SampleType:
    if x.sizes[0] % num_groups:
        raise ShapeError(f"num_groups={num_groups} must divide the {x.sizes[0]} channels")
    return x


def _linear(x: SampleType, *, out_features: int, **_: Any) -> SampleType:
    return SampleType(x.layout, (*x.sizes[:-1], out_features), x.prefix, x.token_grid)


def _softmax(x: SampleType, *, dim: int, **_: Any) -> SampleType:
    sample_dim(dim, x, "dim")
    return x


def _flatten(x: SampleType, *, start_dim: int, end_dim: int, **_: Any) -> SampleType:
    start = sample_dim(start_dim, x, "start_dim")
    end = sample_dim(end_dim, x, "end_dim")
    if start > end:
        raise ShapeError(f"start_dim {start_dim} comes after end_dim {end_dim} in {x}")
    if start == end:
        return x
    sizes = (*x.sizes[:start], math.prod(x.sizes[start : end + 1]), *x.sizes[end + 1 :])
    if len(sizes) == 1:
        return SampleType(Layout.VECTOR, sizes)
    if len(sizes) == 2:
        grid = x.sizes[:3] if x.layout is Layout.GRID and (start, end) == (0, 2) else None
        return SampleType(Layout.TOKENS, sizes, 0, None if grid is None else triple_of(grid))
    raise ShapeError(
        f"flattening dimensions {start}..{end} of {x} leaves {len(sizes)} dimensions; a sample "
        "is a clip or grid (4), a token sequence (2) or a vector (1)"
    )


def _pool(
    x: SampleType,
    *,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any = 1,
    ceil_mode: bool,
    average: bool = False,
    **_: Any,
) -> SampleType:
    sizes = pool_sizes(
        x.sizes[1:], kernel_size, stride, padding, dilation, ceil_mode=ceil_mode, average=average
    )
    return clip(x.sizes[0], *sizes)


def _average_pool(x: SampleType, **params: Any) -> SampleType:
    return _pool(x, **params, average=True)


def _adaptive(x: SampleType, *, output_size: Any, **_: Any) -> SampleType:
    return clip(x.sizes[0], *triple_of(output_size))


class Softmax(nn.Softmax):
    """``torch.nn.Softmax`` over dimension ``dim`` of one sample (-1: the last)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__(dim=dim + 1 if dim >= 0 else dim)  # + 1: the batch dimension


class Flatten(nn.Flatten):
    """``torch.nn.Flatten`` of dimensions ``start_dim..end_dim`` of one sample (default: all)."""

    def __init__(self, start_dim: int = 0, end_dim: int = -1) -> None:
        super().__init__(
            start_dim + 1 if start_dim >= 0 else start_dim, end_dim + 1 if end_dim >= 0 else end_dim
        )


register_layer(
    "Conv3d", params=_CONV, infer={"in_channels": channels}, accepts=CLIPS, output=_conv
)(nn.Conv3d)
register_layer(
    "ConvTranspose3d",
    params={k: v for k, v in _CONV.items() if k != "padding_mode"} | {"padding": triple(0)},
    infer={"in_channels": channels},
    accepts=CLIPS,
    output=_conv_transpose,
)(nn.ConvTranspose3d)
register_layer(
    "BatchNorm3d",
    params={**_NORM, "momentum": PROBABILITY, "affine": BOOL, "track_running_stats": BOOL},
    infer={"num_features": channels},
    accepts=CLIPS,
    output=_same,
)(nn.BatchNorm3d)
register_layer(
    "BatchNorm1d",
    params={**_NORM, "momentum": PROBABILITY, "affine": BOOL, "track_running_stats": BOOL},
    infer={"num_features": channels},
    accepts=[Layout.VECTOR],
    output=_same,
)(nn.BatchNorm1d)
register_layer(
    "LayerNorm",
    params={**_NORM, "elementwise_affine": BOOL, "bias": BOOL},
    infer={"normalized_shape": features},
    accepts=LAST_DIM,
    output=_same,
)(nn.LayerNorm)
register_layer(
    "GroupNorm",
    params={"num_groups": POSITIVE_INT, **_NORM, "affine": BOOL},
    infer={"num_channels": channels},
    accepts=CLIPS,
    output=_group_norm,
)(nn.GroupNorm)
register_layer(
    "Linear",
    params={"out_features": POSITIVE_INT, "bias": BOOL},
    infer={"in_features": features},
    accepts=LAST_DIM,
    output=_linear,
)(nn.Linear)

for _act in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Mish):
    register_layer(_act.__name__, params={"inplace": BOOL}, accepts=ANY, output=_same)(_act)
for _fn in (nn.Sigmoid, nn.Tanh, nn.Identity):
    register_layer(_fn.__name__, params={}, accepts=ANY, output=_same)(_fn)
register_layer("GELU", params={"approximate": enum("none", "tanh")}, accepts=ANY, output=_same)(
    nn.GELU
)
register_layer(
    "LeakyReLU", params={"negative_slope": NUMBER, "inplace": BOOL}, accepts=ANY, output=_same
)(nn.LeakyReLU)
_DIM = {"type": "integer", "description": "a dimension of one sample (batch not counted)"}
register_layer("Softmax", params={"dim": _DIM}, accepts=ANY, output=_softmax)(Softmax)
register_layer(
    "Flatten", params={"start_dim": _DIM, "end_dim": _DIM}, accepts=ANY, output=_flatten
)(Flatten)
register_layer("Dropout", params={"p": PROBABILITY, "inplace": BOOL}, accepts=ANY, output=_same)(
    nn.Dropout
)
register_layer(
    "Dropout3d", params={"p": PROBABILITY, "inplace": BOOL}, accepts=CLIPS, output=_same
)(nn.Dropout3d)

register_layer(
    "MaxPool3d",
    params={**_POOL, "dilation": triple(1), "ceil_mode": BOOL},
    accepts=CLIPS,
    output=_pool,
)(nn.MaxPool3d)
register_layer(
    "AvgPool3d",
    params={**_POOL, "ceil_mode": BOOL, "count_include_pad": BOOL},
    accepts=CLIPS,
    output=_average_pool,
)(nn.AvgPool3d)
register_layer(
    "AdaptiveAvgPool3d", params={"output_size": _OUTPUT_SIZE}, accepts=CLIPS, output=_adaptive
)(nn.AdaptiveAvgPool3d)
register_layer(
    "AdaptiveMaxPool3d", params={"output_size": _OUTPUT_SIZE}, accepts=CLIPS, output=_adaptive
)(nn.AdaptiveMaxPool3d)
