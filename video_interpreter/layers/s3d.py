"""Separable 3D Inception layers (S3D, Xie et al. 2018): conv-BN-ReLU units, the spatial-then-
temporal separable convolution, and the 1x1x1-convolution classifier head.

An S3D Inception block is not a class here: it is a ``Concat`` of branches built from these units
in the spec, so every width and kernel is a value in the spec. Module layouts follow torchvision's
``Conv3dNormActivation``, ``TemporalSeparableConv`` and ``S3D.classifier``, key for key.

The batch-norm defaults, ``eps=0.001`` and ``momentum=0.001`` (TF-slim's ``decay=0.999``), are the
Inception family's, used by I3D and by S3D, torchvision's included.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._params import POSITIVE_INT, POSITIVE_NUMBER, PROBABILITY, triple
from ._registry import register_layer
from ._types import Layout, SampleType, channels, clip, conv_sizes, vector
from .adaptation import AdaptRule, ConvKernel, Factorised, reads_clip
from .video_conv import IntOrTriple, as_triple

__all__ = ["ConvClassificationHead", "SepConv3d", "Unit3d"]

INCEPTION_BN_EPS = 0.001
INCEPTION_BN_MOMENTUM = 0.001


def _half(kernel: tuple[int, int, int]) -> tuple[int, int, int]:
    kt, kh, kw = kernel
    return ((kt - 1) // 2, (kh - 1) // 2, (kw - 1) // 2)


_NORM_PARAMS: dict[str, Any] = {
    "norm_eps": {**POSITIVE_NUMBER, "description": "batch-norm epsilon"},
    "norm_momentum": {**PROBABILITY, "description": "batch-norm running-statistics momentum"},
}
_PADDING: dict[str, Any] = {
    "anyOf": [triple(0), {"type": "null"}],
    "description": "an integer >= 0, a list [T, H, W], or null for half the kernel",
}


def _unit_type(
    x: SampleType,
    *,
    out_channels: int,
    kernel_size: IntOrTriple,
    stride: IntOrTriple,
    padding: IntOrTriple | None,
    **_: Any,
) -> SampleType:
    kernel = as_triple(kernel_size)
    pad = _half(kernel) if padding is None else as_triple(padding)
    return clip(out_channels, *conv_sizes(x.sizes[1:], kernel, stride, pad))


def _sep_conv_type(
    x: SampleType,
    *,
    out_channels: int,
    kernel_size: IntOrTriple,
    stride: IntOrTriple,
    padding: IntOrTriple | None,
    **_: Any,
) -> SampleType:
    kt, kh, kw = kernel = as_triple(kernel_size)
    st, sh, sw = as_triple(stride)
    pt, ph, pw = _half(kernel) if padding is None else as_triple(padding)
    spatial = conv_sizes(x.sizes[1:], (1, kh, kw), (1, sh, sw), (0, ph, pw))
    return clip(out_channels, *conv_sizes(spatial, (kt, 1, 1), (st, 1, 1), (pt, 0, 0)))


def _classes(x: SampleType, *, num_classes: int, **_: Any) -> SampleType:
    return vector(num_classes)


@register_layer(
    params={
        "out_channels": POSITIVE_INT,
        "kernel_size": triple(1),
        "stride": triple(1),
        "padding": _PADDING,
        **_NORM_PARAMS,
    },
    infer={"in_channels": channels},
    accepts=[Layout.CLIP],
    output=_unit_type,
)
class Unit3d(nn.Sequential):
    """Convolution (no bias), batch norm, ReLU: the unit every Inception branch is made of.

    Padding defaults to half the kernel, so a stride-1 unit keeps T, H and W.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTriple = 1,
        stride: IntOrTriple = 1,
        padding: IntOrTriple | None = None,
        norm_eps: float = INCEPTION_BN_EPS,
        norm_momentum: float = INCEPTION_BN_MOMENTUM,
    ) -> None:
        kernel = as_triple(kernel_size)
        pad = _half(kernel) if padding is None else as_triple(padding)
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel, as_triple(stride), pad, bias=False),
            nn.BatchNorm3d(out_channels, eps=norm_eps, momentum=norm_momentum),
            nn.ReLU(inplace=True),
        )

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        return {"0.weight": ConvKernel(input_channels=reads_clip(self))}


@register_layer(
    params={
        "out_channels": POSITIVE_INT,
        "kernel_size": triple(1),
        "stride": triple(1),
        "padding": _PADDING,
        **_NORM_PARAMS,
    },
    infer={"in_channels": channels},
    accepts=[Layout.CLIP],
    output=_sep_conv_type,
)
class SepConv3d(nn.Sequential):
    """Separable 3D convolution: a spatial ``1 x kH x kW`` ``Unit3d`` to ``out_channels``, then a
    temporal ``kT x 1 x 1`` ``Unit3d``; ``[T, H, W]`` kernel, stride and padding are split the
    same way.

    Unlike ``Conv2Plus1d`` each half has its own batch norm and ReLU, and the spatial half
    already outputs ``out_channels`` (no parameter-matching middle width).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTriple = 3,
        stride: IntOrTriple = 1,
        padding: IntOrTriple | None = None,
        norm_eps: float = INCEPTION_BN_EPS,
        norm_momentum: float = INCEPTION_BN_MOMENTUM,
    ) -> None:
        kt, kh, kw = kernel = as_triple(kernel_size)
        st, sh, sw = as_triple(stride)
        pt, ph, pw = _half(kernel) if padding is None else as_triple(padding)
        norm = {"norm_eps": norm_eps, "norm_momentum": norm_momentum}
        super().__init__(
            Unit3d(in_channels, out_channels, (1, kh, kw), (1, sh, sw), (0, ph, pw), **norm),
            Unit3d(out_channels, out_channels, (kt, 1, 1), (st, 1, 1), (pt, 0, 0), **norm),
        )
        self.out_channels = out_channels

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """Factorised like (2+1)D: a 2D kernel has no counterpart; a stem's spatial kernel may
        take other input channels."""
        out = self.out_channels
        return {
            "0.0.weight": Factorised(out, out, reads_clip(self)),
            "1.0.weight": Factorised(out, out),
        }


@register_layer(
    params={"num_classes": POSITIVE_INT, "dropout": PROBABILITY},
    infer={"in_channels": channels},
    accepts=[Layout.CLIP],
    output=_classes,
)
class ConvClassificationHead(nn.Module):
    """Dropout, a 1x1x1 convolution to class scores at every position, then their mean over
    T, H and W: ``(C, T, H, W) -> (num_classes,)`` logits (S3D's classifier)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        # One Sequential named `classifier`, so keys read as torchvision's (classifier.1.weight).
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Conv3d(in_channels, num_classes, kernel_size=1, bias=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        if x.dim() != 5:
            raise ValueError(f"expects a feature map batch (B, C, T, H, W), got {tuple(x.shape)}")
        scores: torch.Tensor = self.classifier(x)  # (B, num_classes, T, H, W)
        return scores.mean(dim=(2, 3, 4))  # (B, num_classes)
