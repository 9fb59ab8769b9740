"""Video transformer layers: tubelet embedding and encoder blocks with joint or divided
(time, then space) self-attention. Tokens travel as a channels-last grid ``(T, H, W, D)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._params import BOOL, POSITIVE_INT, POSITIVE_NUMBER, PROBABILITY, enum, triple
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, channels, features, grid
from .adaptation import AdaptRule, ConvKernel, PositionTable, reads_clip
from .video_conv import IntOrTriple, as_triple

__all__ = ["MultiheadSelfAttention", "TransformerBlock", "TubeletEmbedding", "check_heads"]


def clip_grid(x: SampleType) -> tuple[int, int, int]:
    """The ``(T, H, W)`` of a clip or feature map."""
    _, t, h, w = x.sizes
    return (t, h, w)


def check_heads(dim: int, heads: int) -> None:
    """Refuse a head count that does not divide the width, naming counts that do."""
    if dim % heads:
        valid = [n for n in range(1, min(dim, 64) + 1) if dim % n == 0]
        raise ShapeError(
            f"width {dim} is not divisible by heads={heads}; valid head counts include {valid[-6:]}"
        )


def _tubelet_type(
    x: SampleType, *, dim: int, tubelet: IntOrTriple, per_frame: bool, **_: Any
) -> SampleType:
    size = as_triple(tubelet)
    if per_frame and size[0] != 1:
        raise ShapeError(f"per_frame patches are one frame deep; got a tubelet of {size[0]} frames")
    t, h, w = (n // k for n, k in zip(clip_grid(x), size, strict=True))
    if min(t, h, w) < 1:
        raise ShapeError(f"tubelet {list(size)} is larger than the input {list(clip_grid(x))}")
    return grid(t, h, w, dim)


def _block_type(x: SampleType, *, heads: int, **_: Any) -> SampleType:
    check_heads(x.sizes[-1], heads)
    return x


@register_layer(
    params={
        "dim": POSITIVE_INT,
        "tubelet": triple(1),
        "position": {**enum("learned", "none"), "description": "learned positional embedding"},
        "per_frame": {
            **BOOL,
            "description": "one Conv2d applied to every frame (a tubelet one frame deep), as "
            "image patch embeddings are (TimeSformer)",
        },
    },
    infer={"in_channels": channels, "input_grid": clip_grid},
    accepts=[Layout.CLIP],
    output=_tubelet_type,
)
class TubeletEmbedding(nn.Module):
    """Non-overlapping ``tT x tH x tW`` tubelets, each projected to ``dim``:
    ``(C, T, H, W) -> (T/tT, H/tH, W/tW, dim)``, plus a learned positional embedding.

    ``proj`` is a Conv3d, or with ``per_frame`` a Conv2d run on every frame: the same map for a
    tubelet one frame deep, with an image model's ``(D, C, tH, tW)`` weight.
    """

    def __init__(
        self,
        in_channels: int,
        input_grid: Sequence[int],
        dim: int,
        tubelet: IntOrTriple = (2, 16, 16),
        position: Literal["learned", "none"] = "learned",
        per_frame: bool = False,
    ) -> None:
        super().__init__()
        size = as_triple(tubelet)
        grid = [n // k for n, k in zip(input_grid, size, strict=True)]
        if min(grid) < 1:
            raise ValueError(f"tubelet {list(size)} is larger than the input {list(input_grid)}")
        self.grid = (grid[0], grid[1], grid[2])
        self.proj: nn.Conv2d | nn.Conv3d
        if per_frame:
            if size[0] != 1:
                raise ValueError(f"per_frame patches are one frame deep; got tubelet {list(size)}")
            self.proj = nn.Conv2d(in_channels, dim, kernel_size=size[1:], stride=size[1:])
        else:
            self.proj = nn.Conv3d(in_channels, dim, kernel_size=size, stride=size)
        self.position = nn.Parameter(torch.empty(1, *grid, dim)) if position == "learned" else None
        self.reset_parameters()

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """The joint (T, H, W) table resamples trilinearly; the projection is the stem."""
        rules: dict[str, AdaptRule] = {"proj.weight": ConvKernel(input_channels=reads_clip(self))}
        if self.position is not None:
            rules["position"] = PositionTable(self.grid, mode="trilinear")
        return rules

    def reset_parameters(self) -> None:
        """Initialise the tensor this module owns directly (``proj`` initialises itself)."""
        if self.position is not None:
            nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        tokens: torch.Tensor
        if isinstance(self.proj, nn.Conv2d):
            b, c, t, h, w = x.shape
            frames = self.proj(x.transpose(1, 2).reshape(b * t, c, h, w))  # (B*T, D, H', W')
            tokens = frames.reshape(b, t, *frames.shape[1:]).permute(0, 1, 3, 4, 2)
        else:
            tokens = self.proj(x).permute(0, 2, 3, 4, 1)  # (B, T', H', W', D)
        if self.position is not None:
            tokens = tokens + self.position
        return tokens


class MultiheadSelfAttention(nn.Module):
    """Self-attention over the second-to-last axis of ``(N, L, D)`` with fused QKV."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, dropout: float) -> None:
        super().__init__()
        check_heads(dim, heads)
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, D)
        n, length, dim = x.shape
        qkv = self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, heads, L, D / heads)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        projected: torch.Tensor = self.proj(out.transpose(1, 2).reshape(n, length, dim))
        return projected


@register_layer(
    params={
        "heads": POSITIVE_INT,
        "attention": {
            **enum("joint", "divided"),
            "description": "joint: all tokens attend to all; divided: time, then space",
        },
        "mlp_ratio": POSITIVE_NUMBER,
        "qkv_bias": BOOL,
        "dropout": PROBABILITY,
        "norm_eps": POSITIVE_NUMBER,
    },
    infer={"dim": features},
    accepts=[Layout.GRID],
    output=_block_type,
)
class TransformerBlock(nn.Module):
    """Pre-norm encoder block on a ``(T, H, W, D)`` token grid: attention, then an MLP."""

    def __init__(
        self,
        dim: int,
        heads: int,
        attention: Literal["joint", "divided"] = "joint",
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.attention = attention
        if attention == "divided":
            self.norm_time = nn.LayerNorm(dim, eps=norm_eps)
            self.attn_time = MultiheadSelfAttention(dim, heads, qkv_bias, dropout)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiheadSelfAttention(dim, heads, qkv_bias, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H, W, D)
        if x.dim() != 5:
            raise ValueError(f"expects a token grid (B, T, H, W, D), got {tuple(x.shape)}")
        b, t, h, w, d = x.shape
        if self.attention == "divided":
            # Time: each spatial position attends over its T frames.
            seq = x.permute(0, 2, 3, 1, 4).reshape(b * h * w, t, d)
            seq = seq + self.attn_time(self.norm_time(seq))
            x = seq.reshape(b, h, w, t, d).permute(0, 3, 1, 2, 4)
            # Space: each frame's H*W tokens attend to each other.
            seq = x.reshape(b * t, h * w, d)
        else:
            seq = x.reshape(b, t * h * w, d)
        seq = seq + self.attn(self.norm1(seq))
        seq = seq + self.mlp(self.norm2(seq))
        out: torch.Tensor = seq.reshape(b, t, h, w, d)
        return out
