"""Factorised 3D convolutions used by video ResNets: (2+1)D and spatial-only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ._params import BOOL, POSITIVE_INT, triple
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, channels, clip, conv_sizes
from .adaptation import AdaptRule, Factorised, reads_clip

__all__ = ["Conv2Plus1d", "Conv3dNoTemporal", "IntOrTriple", "as_triple", "r2plus1d_mid_channels"]

IntOrTriple = int | Sequence[int]


def as_triple(value: IntOrTriple) -> tuple[int, int, int]:
    if isinstance(value, int):
        return (value, value, value)
    t, h, w = value
    return (t, h, w)


def r2plus1d_mid_channels(in_channels: int, out_channels: int, kernel: IntOrTriple = 3) -> int:
    """Width between the spatial and temporal convolution that matches a full 3D conv's
    parameter count (Tran et al. 2018), as torchvision computes it."""
    kt, kh, kw = as_triple(kernel)
    return (in_channels * out_channels * kt * kh * kw) // (
        in_channels * kh * kw + kt * out_channels
    )


_CONV_PARAMS = {
    "out_channels": POSITIVE_INT,
    "kernel_size": triple(1),
    "stride": triple(1),
    "padding": triple(0),
    "bias": BOOL,
}


def _conv2plus1d_type(
    x: SampleType,
    *,
    out_channels: int,
    kernel_size: IntOrTriple,
    stride: IntOrTriple,
    padding: IntOrTriple | None,
    mid_channels: int | None,
    **_: Any,
) -> SampleType:
    kt, kh, kw = as_triple(kernel_size)
    st, sh, sw = as_triple(stride)
    pt, ph, pw = as_triple(padding) if padding is not None else (kt // 2, kh // 2, kw // 2)
    mid = mid_channels or r2plus1d_mid_channels(x.sizes[0], out_channels, (kt, kh, kw))
    if mid < 1:
        raise ShapeError(
            f"the parameter-matching middle width for {x.sizes[0]} -> {out_channels} channels "
            "is 0; give mid_channels"
        )
    spatial = conv_sizes(x.sizes[1:], (1, kh, kw), (1, sh, sw), (0, ph, pw))
    return clip(out_channels, *conv_sizes(spatial, (kt, 1, 1), (st, 1, 1), (pt, 0, 0)))


def _no_temporal_type(
    x: SampleType,
    *,
    out_channels: int,
    kernel_size: int,
    stride: int,
    padding: int | None,
    **_: Any,
) -> SampleType:
    pad = kernel_size // 2 if padding is None else padding
    sizes = conv_sizes(
        x.sizes[1:], (1, kernel_size, kernel_size), (1, stride, stride), (0, pad, pad)
    )
    return clip(out_channels, *sizes)


@register_layer(
    params={
        **_CONV_PARAMS,
        "padding": {"anyOf": [triple(0), {"type": "null"}], "description": "default: kernel // 2"},
        "mid_channels": {"anyOf": [POSITIVE_INT, {"type": "null"}]},
    },
    infer={"in_channels": channels},
    accepts=[Layout.CLIP],
    output=_conv2plus1d_type,
)
class Conv2Plus1d(nn.Sequential):
    """(2+1)D convolution: a spatial ``1 x kH x kW`` conv, batch norm, ReLU, then a temporal
    ``kT x 1 x 1`` conv. ``mid_channels`` defaults to the parameter-matching width.

    Padding defaults to half the kernel (``same`` for odd kernels at stride 1).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTriple = 3,
        stride: IntOrTriple = 1,
        padding: IntOrTriple | None = None,
        mid_channels: int | None = None,
        bias: bool = False,
    ) -> None:
        kt, kh, kw = as_triple(kernel_size)
        st, sh, sw = as_triple(stride)
        pt, ph, pw = as_triple(padding) if padding is not None else (kt // 2, kh // 2, kw // 2)
        mid = mid_channels or r2plus1d_mid_channels(in_channels, out_channels, (kt, kh, kw))
        super().__init__(
            nn.Conv3d(in_channels, mid, (1, kh, kw), (1, sh, sw), (0, ph, pw), bias=bias),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_channels, (kt, 1, 1), (st, 1, 1), (pt, 0, 0), bias=bias),
        )
        self.mid_channels, self.out_channels = mid, out_channels

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """A 2D kernel has no (2+1)D counterpart; the spatial kernel reads the clip in a stem."""
        middle, out = self.mid_channels, self.out_channels
        return {
            "0.weight": Factorised(middle, out, reads_clip(self)),
            "3.weight": Factorised(middle, out),
        }


@register_layer(
    params={
        "out_channels": POSITIVE_INT,
        "kernel_size": {
            **POSITIVE_INT,
            "description": "spatial kernel size k (the kernel is 1 x k x k)",
        },
        "stride": {**POSITIVE_INT, "description": "spatial stride s (the stride is 1 x s x s)"},
        "padding": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
        "bias": BOOL,
    },
    infer={"in_channels": channels},
    accepts=[Layout.CLIP],
    output=_no_temporal_type,
)
class Conv3dNoTemporal(nn.Conv3d):
    """A ``1 x k x k`` convolution: spatial only, one frame at a time (MC3's upper stages)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = False,
    ) -> None:
        pad = kernel_size // 2 if padding is None else padding
        super().__init__(
            in_channels,
            out_channels,
            kernel_size=(1, kernel_size, kernel_size),
            stride=(1, stride, stride),
            padding=(0, pad, pad),
            bias=bias,
        )
