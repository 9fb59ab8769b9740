"""Necks and heads: pooling a feature map or token grid to a vector, and classifying it."""

from __future__ import annotations

import torch
from torch import nn

from ._params import POSITIVE_INT, PROBABILITY
from ._registry import Shape, register_layer

__all__ = ["ClassificationHead", "GlobalAvgPool3d", "TokenPool", "pooled_features"]


def pooled_features(shape: Shape) -> int:
    """Features of a pooled ``(F,)`` input; a clear error for anything unpooled."""
    if len(shape) != 1:
        raise ValueError(
            f"expects pooled features (F,), got {tuple(shape)}; pool first with a neck such as "
            "GlobalAvgPool3d (for (C, T, H, W) maps) or TokenPool (for (T, H, W, D) tokens)"
        )
    return shape[0]


@register_layer(params={})
class GlobalAvgPool3d(nn.Module):
    """Average over T, H and W: ``(C, T, H, W) -> (C,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        if x.dim() != 5:
            raise ValueError(f"expects (B, C, T, H, W), got {tuple(x.shape)}")
        return x.mean(dim=(2, 3, 4))  # (B, C)


@register_layer(params={})
class TokenPool(nn.Module):
    """Average a token grid over every position: ``(T, H, W, D) -> (D,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, ..., D)
        if x.dim() < 3:
            raise ValueError(f"expects (B, ..., D) tokens, got {tuple(x.shape)}")
        return x.flatten(1, -2).mean(dim=1)  # (B, D)


@register_layer(
    params={"num_classes": POSITIVE_INT, "dropout": PROBABILITY},
    infer={"in_features": pooled_features},
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
