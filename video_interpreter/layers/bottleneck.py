"""Residual bottleneck stages in pytorchvideo's layout, and what X3D adds to them.

``BottleneckStage`` is the ResNet-50-style stage of Slow, SlowFast and I3D-style models: each
block ``(kT x 1 x 1) -> (1 x 3 x 3) -> (1 x 1 x 1)`` convolutions with batch norm, the first
striding H and W. ``X3DStage`` (Feichtenhofer 2020) widens instead of narrowing, makes the
middle convolution depthwise 3x3x3, adds squeeze-excitation on every other block and Swish.
``Bottleneck`` is one block of any of them, and of CSN (depthwise) and R(2+1)D (the middle
convolution factorised into time then space), with a stride in time as well: a spec repeats it
with per-index patterns (``stride: {first: [1, 2, 2], rest: 1}``), as ``x3d_s.yaml`` does.

Module and parameter names follow pytorchvideo's (``res_blocks.0.branch2.conv_b``,
``...norm_b.1.block.0``), so its weights import with a prefix change only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ._params import BOOL, POSITIVE_INT, PROBABILITY, triple
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, channels, clip, conv_sizes, triple_of

__all__ = [
    "Bottleneck",
    "BottleneckBlock",
    "BottleneckStage",
    "Conv2Plus1dPair",
    "ResBlock",
    "SqueezeExcitation",
    "Swish",
    "X3DStage",
    "round_width",
]

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


class Conv2Plus1dPair(nn.Module):
    """``conv_t`` (``kT x 1 x 1``, stride in time), BN, ReLU, ``conv_xy`` (``1 x kH x kW``,
    stride in space), one width throughout: pytorchvideo's ``Conv2plus1d`` in R(2+1)D's
    bottlenecks."""

    def __init__(
        self, channels: int, kernel: tuple[int, int, int], stride: tuple[int, int, int]
    ) -> None:
        super().__init__()
        (kt, kh, kw), (st_, sh, sw) = kernel, stride
        self.conv_t = nn.Conv3d(
            channels, channels, (kt, 1, 1), (st_, 1, 1), (kt // 2, 0, 0), bias=False
        )
        self.norm = nn.BatchNorm3d(channels)
        self.activation = nn.ReLU()
        self.conv_xy = nn.Conv3d(
            channels, channels, (1, kh, kw), (1, sh, sw), (0, kh // 2, kw // 2), bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv_xy(self.activation(self.norm(self.conv_t(x))))
        return out


class BottleneckBlock(nn.Module):
    """``conv_a`` (``kernel_a``), BN, ReLU; ``conv_b`` (``kernel_b``, ``stride``, depthwise or
    factorised into time then space when asked), BN (then squeeze-excitation when ``se`` > 0),
    ReLU or Swish; ``conv_c`` (1x1x1), BN."""

    def __init__(
        self,
        in_channels: int,
        inner: int,
        out_channels: int,
        *,
        stride: tuple[int, int, int] = (1, 1, 1),
        kernel_a: tuple[int, int, int] = (1, 1, 1),
        kernel_b: tuple[int, int, int] = (1, 3, 3),
        depthwise: bool = False,
        factorised: bool = False,
        se: float = 0.0,
        swish: bool = False,
    ) -> None:
        super().__init__()
        self.conv_a = nn.Conv3d(in_channels, inner, kernel_a, padding=_half(kernel_a), bias=False)
        self.norm_a = nn.BatchNorm3d(inner)
        self.act_a = nn.ReLU()
        self.conv_b: nn.Module = (
            Conv2Plus1dPair(inner, kernel_b, stride)
            if factorised
            else nn.Conv3d(
                inner,
                inner,
                kernel_b,
                stride,
                _half(kernel_b),
                groups=inner if depthwise else 1,
                bias=False,
            )
        )
        norm_b = nn.BatchNorm3d(inner)
        # X3D's norm_b is a pair (batch norm, squeeze-excitation or nothing), as pytorchvideo's.
        self.norm_b: nn.Module = (
            nn.Sequential(norm_b, SqueezeExcitation(inner, se) if se > 0 else nn.Identity())
            if swish
            else norm_b
        )
        self.act_b: nn.Module = Swish() if swish else nn.ReLU()
        self.conv_c = nn.Conv3d(inner, out_channels, 1, bias=False)
        self.norm_c = nn.BatchNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_a(self.norm_a(self.conv_a(x)))
        x = self.act_b(self.norm_b(self.conv_b(x)))
        out: torch.Tensor = self.norm_c(self.conv_c(x))
        return out


def _half(kernel: tuple[int, int, int]) -> tuple[int, int, int]:
    t, h, w = (k // 2 for k in kernel)
    return (t, h, w)


class ResBlock(nn.Module):
    """``ReLU(shortcut(x) + branch2(x))``; the shortcut is a strided 1x1x1 convolution where
    the block strides or changes the width, with BN where the width changes."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: tuple[int, int, int],
        branch2: BottleneckBlock,
    ) -> None:
        super().__init__()
        self.branch1_conv = (
            nn.Conv3d(in_channels, out_channels, 1, stride, bias=False)
            if in_channels != out_channels or stride != (1, 1, 1)
            else None
        )
        self.branch1_norm = nn.BatchNorm3d(out_channels) if in_channels != out_channels else None
        self.branch2 = branch2
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        shortcut = x
        if self.branch1_conv is not None:
            shortcut = self.branch1_conv(x)
            if self.branch1_norm is not None:
                shortcut = self.branch1_norm(shortcut)
        out: torch.Tensor = self.activation(shortcut + self.branch2(x))
        return out


class _Stage(nn.Module):
    """``depth`` residual blocks; the first takes ``stride`` and the change of width, and
    ``branch(index, in_channels, stride)`` makes each block's main branch."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        stride: int,
        branch: Callable[[int, int, int], BottleneckBlock],
    ) -> None:
        super().__init__()
        blocks = []
        for index in range(depth):
            block_in, block_stride = (in_channels, stride) if index == 0 else (out_channels, 1)
            main = branch(index, block_in, block_stride)
            spatial = (1, block_stride, block_stride)
            blocks.append(ResBlock(block_in, out_channels, spatial, main))
        self.res_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        for block in self.res_blocks:
            x = block(x)
        return x


def _stage_type(x: SampleType, *, out_channels: int, stride: int, **_: Any) -> SampleType:
    return clip(out_channels, *conv_sizes(x.sizes[1:], 3, (1, stride, stride), 1))


_STAGE_PARAMS: dict[str, Any] = {
    "depth": POSITIVE_INT,
    "out_channels": POSITIVE_INT,
    "stride": {**POSITIVE_INT, "description": "spatial stride of the first block"},
}


@register_layer(
    params={
        **_STAGE_PARAMS,
        "inner_channels": {**POSITIVE_INT, "description": "the bottlenecks' (wider) width"},
        "se_ratio": {
            **PROBABILITY,
            "description": "squeeze-excitation width ratio on blocks 0, 2, 4, ... (0: none)",
        },
    },
    infer={"in_channels": channels},
    accepts=CLIPS,
    output=_stage_type,
)
class X3DStage(_Stage):
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
        def branch(index: int, block_in: int, block_stride: int) -> BottleneckBlock:
            return BottleneckBlock(
                block_in,
                inner_channels,
                out_channels,
                stride=(1, block_stride, block_stride),
                kernel_b=(3, 3, 3),
                depthwise=True,
                se=se_ratio if index % 2 == 0 else 0.0,
                swish=True,
            )

        super().__init__(in_channels, out_channels, depth, stride, branch)


def _temporal_kernels(temporal_kernel: int | Sequence[int], depth: int) -> list[int]:
    """One conv_a time kernel per block: a single value for all, or a list of ``depth``."""
    kernels = [temporal_kernel] * depth if isinstance(temporal_kernel, int) else temporal_kernel
    if len(kernels) != depth:
        raise ShapeError(
            f"temporal_kernel lists {len(kernels)} kernels for depth={depth} blocks; give one "
            "per block or a single one for all"
        )
    if any(k % 2 == 0 for k in kernels):
        raise ShapeError(
            f"temporal kernels {list(kernels)} must be odd: an even one changes the clip's "
            "length, which the residual shortcut keeps"
        )
    return list(kernels)


def _resnet_stage_type(
    x: SampleType,
    *,
    depth: int,
    out_channels: int,
    stride: int,
    temporal_kernel: int | Sequence[int],
    **_: Any,
) -> SampleType:
    _temporal_kernels(temporal_kernel, depth)
    return clip(out_channels, *conv_sizes(x.sizes[1:], (1, 3, 3), (1, stride, stride), (0, 1, 1)))


@register_layer(
    params={
        **_STAGE_PARAMS,
        "inner_channels": {**POSITIVE_INT, "description": "the bottlenecks' (narrower) width"},
        "temporal_kernel": {
            "anyOf": [POSITIVE_INT, {"type": "array", "items": POSITIVE_INT, "minItems": 1}],
            "description": "conv_a's kernel in time, for all blocks or a list with one per block "
            "(1: spatial only, as Slow's early stages; I3D alternates 3 and 1)",
        },
    },
    infer={"in_channels": channels},
    accepts=CLIPS,
    output=_resnet_stage_type,
)
class BottleneckStage(_Stage):
    """``depth`` ResNet bottleneck blocks, ``(kT x 1 x 1) -> (1 x 3 x 3) -> (1 x 1 x 1)``, in
    pytorchvideo's layout (Slow, SlowFast's two pathways); the first block strides H and W and
    changes the width."""

    def __init__(
        self,
        in_channels: int,
        depth: int,
        out_channels: int,
        inner_channels: int,
        stride: int = 1,
        temporal_kernel: int | Sequence[int] = 1,
    ) -> None:
        kernels = _temporal_kernels(temporal_kernel, depth)

        def branch(index: int, block_in: int, block_stride: int) -> BottleneckBlock:
            return BottleneckBlock(
                block_in,
                inner_channels,
                out_channels,
                stride=(1, block_stride, block_stride),
                kernel_a=(kernels[index], 1, 1),
            )

        super().__init__(in_channels, out_channels, depth, stride, branch)


def _bottleneck_type(
    x: SampleType,
    *,
    out_channels: int,
    stride: Any,
    kernel_a: Any,
    kernel_b: Any,
    se_ratio: float,
    swish: bool,
    **_: Any,
) -> SampleType:
    if se_ratio > 0 and not swish:
        raise ShapeError("se_ratio needs swish: true (X3D's middle holds the excitation)")
    even = [k for k in (*triple_of(kernel_a), *triple_of(kernel_b)) if k % 2 == 0]
    if even:
        raise ShapeError(
            f"kernel_a {kernel_a} and kernel_b {kernel_b} must be odd: an even size changes "
            "the map's size, which the shortcut keeps"
        )
    sizes = conv_sizes(x.sizes[1:], kernel_a, 1, _half(triple_of(kernel_a)), what="conv_a")
    sizes = conv_sizes(sizes, kernel_b, stride, _half(triple_of(kernel_b)), what="conv_b")
    return clip(out_channels, *sizes)


@register_layer(
    params={
        "out_channels": POSITIVE_INT,
        "inner_channels": {**POSITIVE_INT, "description": "conv_b's width"},
        "stride": {**triple(1), "description": "conv_b's and the shortcut's stride"},
        "kernel_a": {**triple(1), "description": "conv_a's kernel (odd sizes keep the length)"},
        "kernel_b": {**triple(1), "description": "conv_b's kernel"},
        "depthwise": {**BOOL, "description": "conv_b with one group per channel (X3D, CSN)"},
        "factorised": {
            **BOOL,
            "description": "conv_b as a time convolution, BN, ReLU, then a space one (R(2+1)D)",
        },
        "se_ratio": {
            **PROBABILITY,
            "description": "squeeze-excitation after norm_b at this width ratio (0: none)",
        },
        "swish": {
            **BOOL,
            "description": "X3D's middle: norm_b a pair (BN, squeeze-excitation), then Swish",
        },
    },
    infer={"in_channels": channels},
    accepts=CLIPS,
    output=_bottleneck_type,
)
class Bottleneck(ResBlock):
    """One residual bottleneck block in pytorchvideo's layout and names (``branch1_conv``,
    ``branch1_norm``, ``branch2.conv_a`` ...): the shortcut is a strided 1x1x1 convolution
    where the block strides or changes the width. Its options cover Slow, SlowFast, I3D, CSN
    (depthwise), R(2+1)D (factorised) and X3D (depthwise, squeeze-excitation, Swish).

    Example (in a spec)::

        {type: Bottleneck, out_channels: 256, inner_channels: 64, stride: [1, 2, 2]}
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        inner_channels: int,
        stride: int | Sequence[int] = 1,
        kernel_a: int | Sequence[int] = 1,
        kernel_b: int | Sequence[int] = (1, 3, 3),
        depthwise: bool = False,
        factorised: bool = False,
        se_ratio: float = 0.0,
        swish: bool = False,
    ) -> None:
        if se_ratio > 0 and not swish:
            raise ShapeError("se_ratio needs swish: true (X3D's middle holds the excitation)")
        steps = triple_of(stride)
        branch2 = BottleneckBlock(
            in_channels,
            inner_channels,
            out_channels,
            stride=steps,
            kernel_a=triple_of(kernel_a),
            kernel_b=triple_of(kernel_b),
            depthwise=depthwise,
            factorised=factorised,
            se=se_ratio,
            swish=swish,
        )
        super().__init__(in_channels, out_channels, steps, branch2)
