"""Necks and heads: pooling a feature map or token grid to a vector, and classifying it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._params import POSITIVE_INT, PROBABILITY
from ._registry import register_layer
from ._types import Layout, SampleType, features, vector

__all__ = ["ClassificationHead", "GlobalAvgPool3d", "TokenPool"]


def _channels_vector(x: SampleType, **_: Any) -> SampleType:
    return vector(x.sizes[0])


def _features_vector(x: SampleType, **_: Any) -> SampleType:
    return vector(x.sizes[-1])


def _classes(x: SampleType, *, num_classes: int, **_: Any) -> SampleType:
    return vector(num_classes)


@register_layer(params={}, accepts=[Layout.CLIP], output=_channels_vector)
class GlobalAvgPool3d(nn.Module):
    """Average over T, H and W: ``(C, T, H, W) -> (C,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        if x.dim() != 5:
            raise ValueError(f"expects (B, C, T, H, W), got {tuple(x.shape)}")
        return x.mean(dim=(2, 3, 4))  # (B, C)


@register_layer(params={}, accepts=[Layout.GRID, Layout.TOKENS], output=_features_vector)
class TokenPool(nn.Module):
    """Average tokens over every position: ``(T, H, W, D)`` or ``(L, D)`` to ``(D,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, ..., D)
        if x.dim() < 3:
            raise ValueError(f"expects (B, ..., D) tokens, got {tuple(x.shape)}")
        return x.flatten(1, -2).mean(dim=1)  # (B, D)


@register_layer(
    params={"num_classes": POSITIVE_INT, "dropout": PROBABILITY},
    infer={"in_features": features},
    accepts=[Layout.VECTOR],
    output=_classes,
)
class ClassificationHead(nn.Module):
    """Dropout then a linear layer: ``(F,) -> (num_classes,)`` logits."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F)
        logits: torch.Tensor = self.fc(self.dropout(x))
        return logits  # (B, num_classes)
