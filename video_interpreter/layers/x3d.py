"""X3D's layers (Feichtenhofer 2020), in pytorchvideo's layout: squeeze-excitation, Swish, and
stages of depthwise, widening bottleneck blocks with squeeze-excitation on every other block.

Module and parameter names follow pytorchvideo's ``x3d_*`` models (``res_blocks.0.branch2.conv_b``,
``...norm_b.1.block.0``), so their weights import with a prefix change only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._params import POSITIVE_INT, PROBABILITY
from ._registry import register_layer
from ._types import Layout, SampleType, channels, clip, conv_sizes

__all__ = ["SqueezeExcitation", "Swish", "X3DBlock", "X3DStage", "round_width"]

CLIPS = [Layout.CLIP]


def round_width(width: float, divisor: int = 8, minimum: int = 8) -> int:
    """A width rounded to a multiple of ``divisor`` (at least ``minimum``), never more than a
    tenth below ``width``: X3D's rule for its squeeze-excitation widths."""
    rounded = max(minimum, int(width + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * width else rounded


class Swish(nn.Module):
    """``x * sigmoid(x)``, computed as written (the same rounding as pytorchvideo's Swish)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _same(x: SampleType, **_: Any) -> SampleType:
    return x


register_layer("Swish", params={}, output=_same)(Swish)


@register_layer(
    params={
        "ratio": {**PROBABILITY, "description": "squeezed width / channels, rounded as X3D does"}
    },
    infer={"channels": channels},
    accepts=CLIPS,
    output=_same,
)
class SqueezeExcitation(nn.Module):
    """``x * gate(mean of x over T, H, W)``, the gate two 1x1x1 convolutions (ReLU, then
    sigmoid) through ``round_width(ratio * C)`` channels."""

    def __init__(self, channels: int, ratio: float = 0.0625) -> None:
        super().__init__()
        squeezed = round_width(channels * ratio)
        self.block = nn.Sequential(
            nn.Conv3d(channels, squeezed, 1, bias=True),
            nn.ReLU(),
            nn.Conv3d(squeezed, channels, 1, bias=True),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        return torch.mul(x, self.block(x.mean(dim=[2, 3, 4], keepdim=True)))


class _Bottleneck(nn.Module):
    """1x1x1 widen, BN, ReLU; depthwise 3x3x3 (spatial stride), BN (+ SE), Swish; 1x1x1 narrow,
    BN."""

    def __init__(self, in_channels: int, inner: int, out_channels: int, stride: int, se: float):
        super().__init__()
        self.conv_a = nn.Conv3d(in_channels, inner, 1, bias=False)
        self.norm_a = nn.BatchNorm3d(inner)
        self.act_a = nn.ReLU()
        self.conv_b = nn.Conv3d(inner, inner, 3, (1, stride, stride), 1, groups=inner, bias=False)
        excite = SqueezeExcitation(inner, se) if se > 0 else nn.Identity()
        self.norm_b = nn.Sequential(nn.BatchNorm3d(inner), excite)
        self.act_b = Swish()
        self.conv_c = nn.Conv3d(inner, out_channels, 1, bias=False)
        self.norm_c = nn.BatchNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        out: torch.Tensor = self.norm_c(self.conv_c(x))
        return out


class X3DBlock(nn.Module):
    """A residual bottleneck block: ``ReLU(shortcut(x) + branch2(x))``; the shortcut is a
    strided 1x1x1 convolution where the block strides (with BN where the width changes)."""

    def __init__(
        self, in_channels: int, inner: int, out_channels: int, stride: int = 1, se: float = 0.0
    ) -> None:
        super().__init__()
        self.branch1_conv = (
            nn.Conv3d(in_channels, out_channels, 1, (1, stride, stride), bias=False)
            if in_channels != out_channels or stride > 1
            else None
        )
        self.branch1_norm = nn.BatchNorm3d(out_channels) if in_channels != out_channels else None
        self.branch2 = _Bottleneck(in_channels, inner, out_channels, stride, se)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        shortcut = x
        if self.branch1_conv is not None:
            shortcut = self.branch1_conv(x)
            if self.branch1_norm is not None:
                shortcut = self.branch1_norm(shortcut)
        out: torch.Tensor = self.activation(shortcut + self.branch2(x))
        return out


def _stage_type(x: SampleType, *, out_channels: int, stride: int, **_: Any) -> SampleType:
    return clip(out_channels, *conv_sizes(x.sizes[1:], 3, (1, stride, stride), 1))


@register_layer(
    params={
        "depth": POSITIVE_INT,
        "out_channels": POSITIVE_INT,
        "inner_channels": {**POSITIVE_INT, "description": "the bottlenecks' (wider) width"},
        "stride": {**POSITIVE_INT, "description": "spatial stride of the first block"},
        "se_ratio": {
            **PROBABILITY,
            "description": "squeeze-excitation width ratio on blocks 0, 2, 4, ... (0: none)",
        },
    },
    infer={"in_channels": channels},
    accepts=CLIPS,
    output=_stage_type,
)
class X3DStage(nn.Module):
    """``depth`` X3D blocks of one width; the first strides H and W and changes the width;
    every other block (0, 2, 4, ...) has squeeze-excitation."""

    def __init__(
        self,
        in_channels: int,
        depth: int,
        out_channels: int,
        inner_channels: int,
        stride: int = 2,
        se_ratio: float = 0.0625,
    ) -> None:
        super().__init__()
        self.res_blocks = nn.ModuleList(
            X3DBlock(
                in_channels if index == 0 else out_channels,
                inner_channels,
                out_channels,
                stride if index == 0 else 1,
                se_ratio if index % 2 == 0 else 0.0,
            )
            for index in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        for block in self.res_blocks:
            x = block(x)
        return x
