"""Multiscale Vision Transformer v1 (Fan et al. 2021) in pytorchvideo's layout.

What sets v1 apart from the v2 blocks of ``mvit.py``: positions are absolute and separable
(one table for space, one for time, one for the class token, added to the tokens); attention
has no relative positions and no residual pooling; queries are pooled only by the block that
strides the grid, keys and values by every block (their stride shrinking as the grid does);
and a stage's width changes at the end of the stage before it, in its last block's MLP, with
the shortcut projected from that block's second norm.

A spec describes ``mvit_base_16x4`` as a patch embedding, ``MViTv1Encoder``, a final norm, the
class token and a linear head. Module and parameter names follow pytorchvideo's
(``cls_positional_encoding.pos_embed_spatial``, ``blocks.1.attn.pool_q``,
``blocks.0.mlp.fc2``), and so do the tables' shapes, so its weights import with prefix changes
only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._params import BOOL, POSITIVE_INT, POSITIVE_NUMBER, triple
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, channels, tokens
from .adaptation import AdaptRule, PositionTable
from .mvit import Grid, block_grids, pooled_grid
from .transformer import check_heads, clip_grid
from .video_conv import as_triple

__all__ = ["MViTv1Attention", "MViTv1Block", "MViTv1Encoder", "SeparablePositions"]


class SeparablePositions(nn.Module):
    """A learned class token in front of the flattened map, plus positions: a spatial table
    repeated over time, a temporal table repeated over space, and one for the class token."""

    def __init__(self, dim: int, grid: Grid) -> None:
        super().__init__()
        t, h, w = grid
        self.grid = grid
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.pos_embed_spatial = nn.Parameter(torch.empty(1, h * w, dim))
        self.pos_embed_temporal = nn.Parameter(torch.empty(1, t, dim))
        self.pos_embed_class = nn.Parameter(torch.empty(1, 1, dim))
        self.reset_parameters()

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """Time resamples linearly, the (H, W) plane bicubically (as ``ClassTokenEmbedding``'s
        tables); the class token and its position are not on the grid and are kept."""
        t, h, w = self.grid
        return {
            "pos_embed_temporal": PositionTable((t,), flat=True, mode="linear"),
            "pos_embed_spatial": PositionTable((h, w), flat=True, mode="bicubic"),
        }

    def reset_parameters(self) -> None:
        for table in self.parameters(recurse=False):
            nn.init.trunc_normal_(table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T, H, W)
        b = x.shape[0]
        t = self.pos_embed_temporal.shape[1]
        grid_tokens = x.flatten(2).transpose(1, 2)  # (B, T*H*W, D)
        positions = self.pos_embed_spatial.repeat(1, t, 1) + torch.repeat_interleave(
            self.pos_embed_temporal, self.pos_embed_spatial.shape[1], dim=1
        )
        positions = torch.cat((self.pos_embed_class, positions), dim=1)
        return torch.cat((self.cls_token.expand(b, -1, -1), grid_tokens), dim=1) + positions


def _pool_tokens(
    x: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor], grid: Grid
) -> torch.Tensor:  # (B, heads, 1 + T*H*W, C)
    """Pool the grid tokens of every head on the grid; the class token is kept as it is."""
    b, heads, _, c = x.shape
    cls, rest = x[:, :, :1], x[:, :, 1:]
    volume = rest.reshape(b * heads, *grid, c).permute(0, 4, 1, 2, 3)
    pooled = pool(volume)  # (B*heads, C, T', H', W')
    rest = pooled.reshape(b, heads, c, -1).transpose(2, 3)
    return torch.cat((cls, rest), dim=2)


class MViTv1Attention(nn.Module):
    """Pooling attention: q, k and v projected, then pooled on the grid by a depthwise 3D
    convolution per head (one kernel shared by the heads) and normalised; queries only when
    ``stride_q`` pools, keys and values when their kernel or stride does."""

    def __init__(
        self,
        dim: int,
        heads: int,
        grid: Grid,
        kernel: Grid,
        stride_q: Grid,
        stride_kv: Grid,
        qkv_bias: bool = True,
        pool_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_heads(dim, heads)
        self.heads, self.grid = heads, grid
        head_dim = dim // heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)

        def conv(stride: Grid) -> nn.Conv3d:
            return nn.Conv3d(
                head_dim, head_dim, kernel, stride, padding, groups=head_dim, bias=False
            )

        pools_q = math.prod(stride_q) > 1
        pools_kv = math.prod(kernel) > 1 or math.prod(stride_kv) > 1
        self.pool_q = conv(stride_q) if pools_q else None
        self.norm_q = nn.LayerNorm(head_dim, eps=pool_norm_eps) if pools_q else None
        self.pool_k = conv(stride_kv) if pools_kv else None
        self.norm_k = nn.LayerNorm(head_dim, eps=pool_norm_eps) if pools_kv else None
        self.pool_v = conv(stride_kv) if pools_kv else None
        self.norm_v = nn.LayerNorm(head_dim, eps=pool_norm_eps) if pools_kv else None
        self.q_grid = pooled_grid(grid, kernel, stride_q) if pools_q else grid

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, dim) -> (B, heads, N, C)
        b, n, dim = x.shape
        return x.reshape(b, n, self.heads, dim // self.heads).transpose(1, 2)

    def _pooled(
        self, x: torch.Tensor, pool: nn.Module | None, norm: nn.Module | None
    ) -> torch.Tensor:
        if pool is None or norm is None:
            return x
        out: torch.Tensor = norm(_pool_tokens(x, pool, self.grid))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*H*W, dim)
        b, _, dim = x.shape
        q = self._pooled(self._split(self.q(x)), self.pool_q, self.norm_q)
        k = self._pooled(self._split(self.k(x)), self.pool_k, self.norm_k)
        v = self._pooled(self._split(self.v(x)), self.pool_v, self.norm_v)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B, heads, Nq, C)
        out: torch.Tensor = self.proj(attended.transpose(1, 2).reshape(b, q.shape[2], dim))
        return out  # (B, 1 + T'*H'*W', dim)


class MViTv1Block(nn.Module):
    """``x = pool(x) + attention(norm1(x))``; ``x = x' + mlp(norm2(x))``, where ``x'`` is ``x``,
    or ``proj(norm2(x))`` when the MLP changes the width to ``dim_out``. The shortcut is
    max-pooled like the queries when ``stride_q`` pools."""

    def __init__(
        self,
        dim: int,
        dim_out: int,
        heads: int,
        grid: Grid,
        kernel: Grid,
        stride_q: Grid,
        stride_kv: Grid,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        pool_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MViTv1Attention(
            dim, heads, grid, kernel, stride_q, stride_kv, qkv_bias, pool_norm_eps
        )
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", nn.Linear(dim, hidden))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", nn.Linear(hidden, dim_out))
        self.proj = nn.Linear(dim, dim_out) if dim != dim_out else None
        self.out_grid = block_grids(grid, kernel, stride_q)[1] if self.attn.pool_q else grid
        self.skip_kernel = tuple(s + 1 if s > 1 else s for s in stride_q)
        self.skip_stride = stride_q

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*H*W, dim)
        if math.prod(self.skip_stride) == 1:
            return x
        padding = tuple(k // 2 for k in self.skip_kernel)

        def skip(volume: torch.Tensor) -> torch.Tensor:
            return F.max_pool3d(volume, self.skip_kernel, self.skip_stride, padding)

        return _pool_tokens(x[:, None], skip, self.grid)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*H*W, dim)
        x = self._shortcut(x) + self.attn(self.norm1(x))
        normed = self.norm2(x)
        shortcut = x if self.proj is None else self.proj(normed)
        out: torch.Tensor = shortcut + self.mlp(normed)
        return out  # (B, 1 + T'*H'*W', dim_out)


_STAGE: dict[str, Any] = {
    "type": "object",
    "description": "blocks of one width; the first pools the queries (and the grid) by "
    "stride_q, the last widens to the next stage's dim",
    "properties": {
        "depth": {**POSITIVE_INT, "description": "number of blocks"},
        "dim": {**POSITIVE_INT, "description": "token width of the stage"},
        "heads": {**POSITIVE_INT, "description": "attention heads (must divide dim)"},
        "stride_q": {**triple(1), "default": 1, "description": "the first block's query stride"},
    },
    "required": ["depth", "dim", "heads"],
    "additionalProperties": False,
}


def _plan(
    in_dim: int,
    grid: Grid,
    stages: Sequence[Mapping[str, Any]],
    kernel: Any,
    stride_kv: Any,
) -> list[dict[str, Any]]:
    """Every block's settings: width in and out, heads, grid, query and key/value strides.

    The key/value stride starts at ``stride_kv`` and is divided by each query stride on the way
    (never below 1), so keys and values keep about the same size as the grid shrinks."""
    if stages[0]["dim"] != in_dim:
        raise ShapeError(
            f"the first stage's dim {stages[0]['dim']} must be the input's width {in_dim} "
            "(MViT v1 changes the width only at the end of a stage)"
        )
    blocks: list[dict[str, Any]] = []
    kv = as_triple(stride_kv)
    k = as_triple(kernel)
    for number, stage in enumerate(stages):
        dim, heads = int(stage["dim"]), int(stage["heads"])
        following = int(stages[number + 1]["dim"]) if number + 1 < len(stages) else dim
        try:
            check_heads(dim, heads)
        except ShapeError as exc:
            raise ShapeError(f"stages[{number}]: {exc}") from None
        for index in range(int(stage["depth"])):
            stride_q = as_triple(stage.get("stride_q", 1)) if index == 0 else (1, 1, 1)
            kv = (
                max(kv[0] // stride_q[0], 1),
                max(kv[1] // stride_q[1], 1),
                max(kv[2] // stride_q[2], 1),
            )
            last = index == int(stage["depth"]) - 1
            blocks.append(
                {
                    "dim": dim,
                    "dim_out": following if last else dim,
                    "heads": heads,
                    "grid": grid,
                    "kernel": k,
                    "stride_q": stride_q,
                    "stride_kv": kv,
                }
            )
            if math.prod(stride_q) > 1:
                try:
                    grid = block_grids(grid, k, stride_q)[1]
                except ShapeError as exc:
                    raise ShapeError(f"stages[{number}]: {exc}") from None
    return blocks


def _encoder_type(
    x: SampleType,
    *,
    stages: Sequence[Mapping[str, Any]],
    kernel: Any,
    stride_kv: Any,
    **_: Any,
) -> SampleType:
    grid = clip_grid(x)
    plan = _plan(x.sizes[0], grid, stages, kernel, stride_kv)
    last = plan[-1]
    out_grid = last["grid"]
    if math.prod(last["stride_q"]) > 1:
        out_grid = block_grids(out_grid, last["kernel"], last["stride_q"])[1]
    return tokens(1 + math.prod(out_grid), last["dim_out"], prefix=1, token_grid=out_grid)


@register_layer(
    params={
        "stages": {"type": "array", "items": _STAGE, "minItems": 1},
        "kernel": {**triple(1), "description": "pooling kernel of queries, keys and values"},
        "stride_kv": {
            **triple(1),
            "description": "key/value stride of the first block, divided by each query stride",
        },
        "mlp_ratio": POSITIVE_NUMBER,
        "qkv_bias": BOOL,
        "norm_eps": {**POSITIVE_NUMBER, "description": "the blocks' layer norms"},
        "pool_norm_eps": {**POSITIVE_NUMBER, "description": "the pooled q, k, v layer norms"},
    },
    infer={"in_dim": channels, "grid": clip_grid},
    accepts=[Layout.CLIP],
    output=_encoder_type,
)
class MViTv1Encoder(nn.Module):
    """Class token, separable positions and MViT v1 blocks: ``(D, T, H, W) -> (1 + N', D')``.

    Each stage is ``{depth, dim, heads, stride_q}``; its first block pools the queries (and so
    the grid) by ``stride_q``, and its last block widens to the next stage's ``dim``. Every
    block's grid and key/value stride are derived here from the input map.

    Example (in a spec, pytorchvideo's mvit_base_16x4 after a 96-wide patch embedding)::

        {type: MViTv1Encoder, kernel: 3, stride_kv: [1, 8, 8], stages: [
          {depth: 1, dim: 96, heads: 1}, {depth: 2, dim: 192, heads: 2, stride_q: [1, 2, 2]},
          {depth: 11, dim: 384, heads: 4, stride_q: [1, 2, 2]},
          {depth: 2, dim: 768, heads: 8, stride_q: [1, 2, 2]}]}
    """

    def __init__(
        self,
        in_dim: int,
        grid: Any,
        stages: Sequence[Mapping[str, Any]],
        kernel: Any = 3,
        stride_kv: Any = 1,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        pool_norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.grid = as_triple(grid)
        self.cls_positional_encoding = SeparablePositions(in_dim, self.grid)
        self.blocks = nn.ModuleList(
            MViTv1Block(
                **settings,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                norm_eps=norm_eps,
                pool_norm_eps=pool_norm_eps,
            )
            for settings in _plan(in_dim, self.grid, stages, kernel, stride_kv)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T, H, W)
        if x.dim() != 5 or tuple(x.shape[2:]) != self.grid:
            raise ValueError(
                f"expects a (B, D, T, H, W) map on the grid {list(self.grid)}, got {tuple(x.shape)}"
            )
        x = self.cls_positional_encoding(x)
        for block in self.blocks:
            x = block(x)
        return x  # (B, 1 + T'*H'*W', D')
