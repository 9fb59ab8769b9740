"""Video ResNet blocks and stages (R3D, MC3, R(2+1)D): the torchvision layout, key for key."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from ._params import POSITIVE_INT, enum
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, channels, clip, conv_sizes
from .video_conv import Conv2Plus1d, Conv3dNoTemporal, r2plus1d_mid_channels

__all__ = ["BasicBlock3d", "Bottleneck3d", "ConvKind", "ResStage"]

ConvKind = Literal["Conv3d", "Conv2Plus1d", "Conv3dNoTemporal"]
_CONV_KIND = {
    **enum("Conv3d", "Conv2Plus1d", "Conv3dNoTemporal"),
    "description": "the 3x3x3-class convolution: full 3D, (2+1)D, or spatial-only (1x3x3)",
}


def _conv3x3(
    kind: ConvKind, in_channels: int, out_channels: int, mid: int, stride: int
) -> nn.Module:
    if kind == "Conv2Plus1d":
        return Conv2Plus1d(in_channels, out_channels, 3, stride, mid_channels=mid)
    if kind == "Conv3dNoTemporal":
        return Conv3dNoTemporal(in_channels, out_channels, 3, stride)
    return nn.Conv3d(in_channels, out_channels, 3, stride, 1, bias=False)


def _downsample(
    kind: ConvKind, in_channels: int, out_channels: int, stride: int
) -> nn.Module | None:
    if stride == 1 and in_channels == out_channels:
        return None
    # A spatial-only block must not stride in time on the shortcut either.
    temporal = 1 if kind == "Conv3dNoTemporal" else stride
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 1, (temporal, stride, stride), bias=False),
        nn.BatchNorm3d(out_channels),
    )


_BLOCK_PARAMS = {"out_channels": POSITIVE_INT, "conv": _CONV_KIND, "stride": POSITIVE_INT}


def _block_type(
    x: SampleType,
    *,
    out_channels: int,
    conv: ConvKind,
    stride: int,
    block: str = "BasicBlock3d",
    expansion: int = 4,
    **_: Any,
) -> SampleType:
    """Every block's 3x3x3-class convolution pads by 1, so sizes go to ``(n - 1) // stride + 1``
    (time too, unless the convolution is spatial-only)."""
    if block == "Bottleneck3d" and out_channels % expansion:
        raise ShapeError(f"out_channels={out_channels} is not divisible by expansion={expansion}")
    temporal = 1 if conv == "Conv3dNoTemporal" else stride
    return clip(out_channels, *conv_sizes(x.sizes[1:], 3, (temporal, stride, stride), 1))


def _bottleneck_type(x: SampleType, **params: Any) -> SampleType:
    return _block_type(x, **params, block="Bottleneck3d")


@register_layer(
    params=_BLOCK_PARAMS, infer={"in_channels": channels}, accepts=[Layout.CLIP], output=_block_type
)
class BasicBlock3d(nn.Module):
    """Two 3x3x3-class convolutions and a residual (projected when the shape changes)."""

    def __init__(
        self, in_channels: int, out_channels: int, conv: ConvKind = "Conv3d", stride: int = 1
    ) -> None:
        super().__init__()
        mid = r2plus1d_mid_channels(in_channels, out_channels)  # used by (2+1)D only
        self.conv1 = nn.Sequential(
            _conv3x3(conv, in_channels, out_channels, mid, stride),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.conv2 = nn.Sequential(
            _conv3x3(conv, out_channels, out_channels, mid, 1), nn.BatchNorm3d(out_channels)
        )
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(conv, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        shortcut = x if self.downsample is None else self.downsample(x)
        out: torch.Tensor = self.relu(self.conv2(self.conv1(x)) + shortcut)
        return out


@register_layer(
    params={**_BLOCK_PARAMS, "expansion": POSITIVE_INT},
    infer={"in_channels": channels},
    accepts=[Layout.CLIP],
    output=_bottleneck_type,
)
class Bottleneck3d(nn.Module):
    """1x1x1 reduce, 3x3x3-class conv, 1x1x1 expand to ``out_channels``, with a residual."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        conv: ConvKind = "Conv3d",
        stride: int = 1,
        expansion: int = 4,
    ) -> None:
        super().__init__()
        if out_channels % expansion:
            raise ValueError(
                f"out_channels={out_channels} is not divisible by expansion={expansion}"
            )
        width = out_channels // expansion
        mid = r2plus1d_mid_channels(in_channels, width)
        self.conv1 = nn.Sequential(
            nn.Conv3d(in_channels, width, 1, bias=False), nn.BatchNorm3d(width), nn.ReLU(True)
        )
        self.conv2 = nn.Sequential(
            _conv3x3(conv, width, width, mid, stride), nn.BatchNorm3d(width), nn.ReLU(True)
        )
        self.conv3 = nn.Sequential(
            nn.Conv3d(width, out_channels, 1, bias=False), nn.BatchNorm3d(out_channels)
        )
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(conv, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        shortcut = x if self.downsample is None else self.downsample(x)
        out: torch.Tensor = self.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)
        return out


@register_layer(
    params={
        **_BLOCK_PARAMS,
        "depth": POSITIVE_INT,
        "block": enum("BasicBlock3d", "Bottleneck3d"),
        "expansion": {**POSITIVE_INT, "description": "Bottleneck3d only: out / inner width"},
    },
    infer={"in_channels": channels},
    accepts=[Layout.CLIP],
    output=_block_type,
)
class ResStage(nn.Sequential):
    """``depth`` residual blocks; the first one takes the stride and the change of width."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        block: Literal["BasicBlock3d", "Bottleneck3d"] = "BasicBlock3d",
        conv: ConvKind = "Conv3d",
        stride: int = 1,
        expansion: int = 4,
    ) -> None:
        blocks: list[nn.Module] = []
        for index in range(depth):
            block_in = in_channels if index == 0 else out_channels
            block_stride = stride if index == 0 else 1
            if block == "Bottleneck3d":
                blocks.append(Bottleneck3d(block_in, out_channels, conv, block_stride, expansion))
            else:
                blocks.append(BasicBlock3d(block_in, out_channels, conv, block_stride))
        super().__init__(*blocks)
