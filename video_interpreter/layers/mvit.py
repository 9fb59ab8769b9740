"""Multiscale Vision Transformer v2 layers (Fan et al. 2021; Li et al. 2022), torchvision layout.

A spec describes MViT as three nodes plus a neck and a head::

    backbone:
      - {name: conv_proj, type: Conv3d, ...}       # patch embedding: (3, T, H, W) -> (D, t, h, w)
      - {name: encoder, type: MViTEncoder, stages: [...]}   # -> (1 + t'*h'*w', D')
      - {name: norm, type: LayerNorm, eps: 1.0e-6}
    neck: {type: ClassToken}                        # -> (D',)
    heads: {action: {type: ClassificationHead, ...}}

How the token grid travels. Blocks need the ``(T, H, W)`` grid of their tokens, but a token
sequence with a class token in front, ``(1 + T*H*W, D)``, does not say what the grid is. So the
grid is fixed when modules are built, never carried at run time: ``MViTEncoder`` reads it from
the shape of the feature map it receives (the patch embedding's output), works out every
block's input and pooled grids from the stages' strides, and hands each block its grid as a
constructor argument. A block therefore takes and returns one tensor, and ``MViTBlock`` is also
registered on its own for hand-built stacks, with its grid written in the spec.

Memory layout. Tokens stay token-major, ``(B, N, heads, head_dim)``, from the QKV projection to
the output projection: pooling reads them as a channels-last ``(B, C, T, H, W)`` volume (the
depthwise pooling kernel is shared by every head), and attention runs through
``scaled_dot_product_attention`` on transposed views, with the decomposed relative positions
as an additive bias. Multiply-accumulates are the same as torchvision's (the flop counter sees
the same matrix products); the data movement is less.

Parameter names follow torchvision's ``mvit_v2_s`` (``blocks.3.attn.pool_q.pool.weight``), so
its weights import with a prefix change and one rename (``pool_*.norm_act.0`` -> ``pool_*.norm``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._params import BOOL, POSITIVE_INT, POSITIVE_NUMBER, PROBABILITY, triple
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, channels, features, tokens, vector
from .adaptation import AdaptRule, PositionTable, RelativeTable
from .transformer import clip_grid
from .video_conv import IntOrTriple, as_triple

__all__ = [
    "ClassToken",
    "ClassTokenEmbedding",
    "Grid",
    "GridPool",
    "MViTBlock",
    "MViTEncoder",
    "PoolingAttention",
    "drop_path_branch",
    "pooled_grid",
]

Grid = tuple[int, int, int]


def pooled_grid(grid: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> Grid:
    """The grid after a ``kernel``/``stride`` pooling padded by half the kernel on each side."""
    t, h, w = (
        (size + 2 * (k // 2) - k) // s + 1 for size, k, s in zip(grid, kernel, stride, strict=True)
    )
    return (t, h, w)


def _pools(kernel: Sequence[int], stride: Sequence[int]) -> bool:
    # A 1x1x1 kernel at stride 1 would be the identity: no pooling module at all.
    return math.prod(kernel) > 1 or math.prod(stride) > 1


def _check_heads(dim: int, heads: int) -> None:
    if dim % heads:
        valid = [h for h in range(1, dim + 1) if dim % h == 0]
        raise ShapeError(
            f"width {dim} is not divisible by heads={heads}; head counts that divide it: "
            f"{valid if len(valid) <= 12 else [*valid[:12], '...']}"
        )


def _skip_kernel(stride: Grid) -> Grid:
    """The shortcut's max-pool kernel: one larger than each stride > 1."""
    t, h, w = (s + 1 if s > 1 else 1 for s in stride)
    return (t, h, w)


def block_grids(
    grid: IntOrTriple, kernel_q: IntOrTriple, stride_q: IntOrTriple
) -> tuple[Grid, Grid]:
    """A block's output (query) grid, checked against the grid its pooled shortcut lands on;
    a ShapeError where the two differ (the residual sum would fail)."""
    g, kq, sq = as_triple(grid), as_triple(kernel_q), as_triple(stride_q)
    out = pooled_grid(g, kq, sq) if _pools(kq, sq) else g
    skip = pooled_grid(g, _skip_kernel(sq), sq) if math.prod(sq) > 1 else g
    if out != skip:
        raise ShapeError(
            f"kernel_q {list(kq)} with stride_q {list(sq)} pools the grid {list(g)} to "
            f"{list(out)}, but the shortcut is pooled to {list(skip)}; use odd query kernels"
        )
    return g, out


def drop_path_branch(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop a whole residual branch per sample (identity at inference)."""
    if not training or p == 0.0:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - p)
    if p < 1.0:
        keep.div_(1.0 - p)  # rescale the kept samples so the expectation is unchanged
    return x * keep


def _with_class_token(class_token: torch.Tensor, grid_tokens: torch.Tensor) -> torch.Tensor:
    """``cat((class_token, grid_tokens), dim=1)`` as one allocation and two copies: the same
    memory traffic, and far cheaper to shape-check on the meta device than ``torch.cat``."""
    b, n = grid_tokens.shape[:2]
    out = grid_tokens.new_empty((b, 1 + n, *grid_tokens.shape[2:]))
    out[:, :1].copy_(class_token)
    out[:, 1:].copy_(grid_tokens)
    return out


def _grid_volume(tokens: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Grid tokens ``(B, T*H*W, ...channels)`` as a channels-last ``(B, C, T, H, W)`` volume."""
    b = tokens.shape[0]
    return tokens.reshape(b, *grid, -1).permute(0, 4, 1, 2, 3)


class GridPool(nn.Module):
    """Pools the grid tokens of ``(B, 1 + T*H*W, heads, head_dim)`` with a depthwise 3D conv
    (one ``head_dim`` kernel shared by every head) and normalises each head; the class token
    passes the pooling untouched and is normalised with the rest."""

    def __init__(
        self,
        head_dim: int,
        heads: int,
        grid: Grid,
        kernel: IntOrTriple,
        stride: IntOrTriple,
        norm_eps: float,
    ) -> None:
        super().__init__()
        k, s = as_triple(kernel), as_triple(stride)
        self.heads = heads
        self.grid = grid
        self.out_grid = pooled_grid(grid, k, s)
        self.pool = nn.Conv3d(
            head_dim,
            head_dim,
            k,
            stride=s,
            padding=(k[0] // 2, k[1] // 2, k[2] // 2),
            groups=head_dim,
            bias=False,
        )
        self.norm = nn.LayerNorm(head_dim, eps=norm_eps)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, grid={self.grid} -> {self.out_grid}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*H*W, heads, head_dim)
        b, _, heads, head_dim = x.shape
        # On the CPU, dense channels-last input: the depthwise kernel runs several times faster
        # on it than on channels-first, and the pooled output is token-major again without a
        # transpose. On CUDA, channels-last would send it to cuDNN's grouped kernel, five times
        # slower than torch's own depthwise kernel on channels-first input (H100).
        layout = torch.channels_last_3d if x.device.type == "cpu" else torch.contiguous_format
        volume = _grid_volume(x[:, 1:], self.grid).contiguous(memory_format=layout)
        weight = self.pool.weight
        if heads > 1:  # one group per (head, channel), each head reusing the shared kernel
            weight = weight.repeat(heads, 1, 1, 1, 1)
        pooled = F.conv3d(
            volume,
            weight,
            None,
            self.pool.stride,
            self.pool.padding,
            self.pool.dilation,
            heads * head_dim,
        )  # (B, heads * head_dim, T', H', W')
        tokens = pooled.permute(0, 2, 3, 4, 1).reshape(b, -1, heads, head_dim)
        normed: torch.Tensor = self.norm(_with_class_token(x[:, :1], tokens))
        return normed  # (B, 1 + T'*H'*W', heads, head_dim)


def _relative_table(table: torch.Tensor, length: int) -> torch.Tensor:
    """The ``(length, head_dim)`` table, linearly resampled when the grids need another size."""
    if table.shape[0] == length:
        return table
    resized = F.interpolate(table.t().unsqueeze(0), size=length, mode="linear")
    return resized.squeeze(0).t()


def _relative_offsets(q_len: int, k_len: int) -> torch.Tensor:
    """``(q_len, k_len)`` indices into a relative table of ``2 * max(q_len, k_len) - 1`` rows.

    Positions of the coarser grid are stretched onto the finer one before taking differences,
    so a query and a key covering the same place in the clip get the middle row. Computed on
    the CPU whatever the model's device: they depend on sizes only (and CPU arithmetic is
    microseconds where the meta device's is milliseconds).
    """
    q_scale = max(k_len / q_len, 1.0)
    k_scale = max(q_len / k_len, 1.0)
    cpu = torch.device("cpu")
    q_pos = torch.arange(q_len, device=cpu, dtype=torch.float32)[:, None] * q_scale
    # Offset so the farthest key is row 0 (same float arithmetic as torchvision's, so the
    # truncation picks the same rows when the scales are fractional).
    k_pos = torch.arange(k_len, device=cpu, dtype=torch.float32)[None, :] + (1.0 - k_len)
    return (q_pos - k_pos * k_scale).long()


class PoolingAttention(nn.Module):
    """Multiscale (pooling) self-attention on ``(B, 1 + T*H*W, in_dim)`` tokens.

    Queries, keys and values are pooled on the grid by ``GridPool`` (queries by ``stride_q``,
    which sets the output grid; keys and values by ``stride_kv``, which sets the cost), heads
    attend with decomposed relative positions (a bias ``R_t + R_h + R_w`` computed from the
    queries), and with ``residual_pool`` the pooled queries are added back to the output.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        heads: int,
        grid: Grid,
        kernel_q: IntOrTriple = 3,
        kernel_kv: IntOrTriple = 3,
        stride_q: IntOrTriple = 1,
        stride_kv: IntOrTriple = 1,
        qkv_bias: bool = True,
        relative_position: bool = True,
        residual_pool: bool = True,
        residual_pool_class_token: bool = False,
        dropout: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        _check_heads(dim, heads)
        self.heads = heads
        self.head_dim = dim // heads
        self.grid = grid
        self.residual_pool = residual_pool
        self.residual_pool_class_token = residual_pool_class_token
        self.qkv = nn.Linear(in_dim, 3 * dim, bias=qkv_bias)
        self.project = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
        kq, sq = as_triple(kernel_q), as_triple(stride_q)
        kkv, skv = as_triple(kernel_kv), as_triple(stride_kv)

        def pool(kernel: Grid, stride: Grid) -> GridPool | None:
            if not _pools(kernel, stride):
                return None
            return GridPool(self.head_dim, heads, grid, kernel, stride, norm_eps)

        self.pool_q = pool(kq, sq)
        self.pool_k = pool(kkv, skv)
        self.pool_v = pool(kkv, skv)
        self.q_grid = pooled_grid(grid, kq, sq) if self.pool_q is not None else grid
        self.kv_grid = pooled_grid(grid, kkv, skv) if self.pool_k is not None else grid

        self.rel_pos_h: nn.Parameter | None = None
        self.rel_pos_w: nn.Parameter | None = None
        self.rel_pos_t: nn.Parameter | None = None
        if relative_position:
            # Sized like torchvision's tables (one spatial length for H and W, the input's T for
            # time) so its weights fit; ``forward`` resamples a table whose grids need another.
            spatial = 2 * max(*self.q_grid[1:], *self.kv_grid[1:]) - 1
            self.rel_pos_h = nn.Parameter(torch.empty(spatial, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.empty(spatial, self.head_dim))
            self.rel_pos_t = nn.Parameter(torch.empty(2 * grid[0] - 1, self.head_dim))
            # Which table row each (query, key) pair reads, per axis: sizes only, so not state.
            self._offsets = tuple(
                _relative_offsets(q_len, k_len)
                for q_len, k_len in zip(self.q_grid, self.kv_grid, strict=True)
            )
        self.reset_parameters()

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """Each axis' table resamples linearly over its offsets, as ``forward`` does."""
        tables = {"rel_pos_h": self.rel_pos_h, "rel_pos_w": self.rel_pos_w}
        tables["rel_pos_t"] = self.rel_pos_t
        return {
            name: RelativeTable((table.shape[0],), mode="linear")
            for name, table in tables.items()
            if table is not None
        }

    def reset_parameters(self) -> None:
        for table in (self.rel_pos_h, self.rel_pos_w, self.rel_pos_t):
            if table is not None:
                nn.init.trunc_normal_(table, std=0.02)

    def _relative_bias(self, q: torch.Tensor, n_kv: int) -> torch.Tensor:
        """``(B, heads, Nq, Nkv)`` additive attention bias; zero on class-token rows/columns."""
        assert self.rel_pos_h is not None
        assert self.rel_pos_w is not None
        assert self.rel_pos_t is not None
        qt, qh, qw = self.q_grid
        b, n_q = q.shape[:2]
        tables = []
        axes = (self.rel_pos_t, self.rel_pos_h, self.rel_pos_w)
        for table, offsets in zip(axes, self._offsets, strict=True):
            rows = _relative_table(table, 2 * max(offsets.shape) - 1)
            picked = rows.index_select(0, offsets.flatten().to(table.device, non_blocking=True))
            tables.append(picked.view(*offsets.shape, -1))  # (q_len, k_len, head_dim)
        r_t, r_h, r_w = tables
        # Unscaled queries of the grid tokens against each axis' table: (B, heads, t, h, w, k_*).
        grid_q = q[:, 1:].reshape(b, qt, qh, qw, self.heads, self.head_dim)
        bias_t = torch.einsum("bthwnc,tkc->bnthwk", grid_q, r_t)
        bias_h = torch.einsum("bthwnc,hkc->bnthwk", grid_q, r_h)
        bias_w = torch.einsum("bthwnc,wkc->bnthwk", grid_q, r_w)
        # bias[b, n, q, (kt, kh, kw)] = (bias_h[.., kh] + bias_w[.., kw]) + bias_t[.., kt], out of
        # place: in-place writes into views of one padded bias are what torch.export's ONNX
        # path mistranslates (reshapes fixed to the traced batch size).
        spatial = bias_h[..., :, None] + bias_w[..., None, :]  # (B, heads, t, h, w, kh, kw)
        inner = spatial[..., None, :, :] + bias_t[..., :, None, None]  # (.., kt, kh, kw)
        # The class token's row and column get no position bias: zeros in front of both.
        return F.pad(inner.reshape(b, self.heads, n_q - 1, n_kv - 1), (1, 0, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*H*W, in_dim)
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).unbind(2)
        if self.pool_q is not None:
            q = self.pool_q(q)  # each (B, N_*, heads, head_dim)
        if self.pool_k is not None:
            k = self.pool_k(k)
        if self.pool_v is not None:
            v = self.pool_v(v)
        bias = None
        if self.rel_pos_h is not None:
            bias = self._relative_bias(q, k.shape[1])
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias
        )  # (B, heads, Nq, head_dim)
        # Heads joined in a fresh token-major copy. Not a reshape, which is a view or a copy
        # depending on the strides of attention's output: those differ between torch's CPU
        # kernel and the ONNX exporter's decomposition of it, and a view traced for the one
        # fails on the other. The copy is fresh, so the residual below can add into it in place
        # (attention's backward keeps its own output).
        out = attended.transpose(1, 2).clone(memory_format=torch.contiguous_format)
        out = out.view(b, out.shape[1], -1)  # (B, Nq, dim)
        if self.residual_pool:
            pooled = q.flatten(2)  # (B, Nq, dim)
            if self.residual_pool_class_token:
                out.add_(pooled)
            else:
                out[:, 1:].add_(pooled[:, 1:])
        projected: torch.Tensor = self.project(out)
        return projected  # (B, Nq, dim)


class MViTBlock(nn.Module):
    """One multiscale block on ``(B, 1 + T*H*W, in_dim)`` tokens of a known ``grid``.

    ``x + attention(norm1(x))`` with the shortcut projected to ``dim`` (from the normalised
    input, when the width changes) and max-pooled like the queries (when ``stride_q`` > 1),
    then ``x + mlp(norm2(x))``. The output is ``(B, 1 + T'*H'*W', dim)`` on the query grid.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        heads: int,
        grid: IntOrTriple,
        kernel_q: IntOrTriple = 3,
        kernel_kv: IntOrTriple = 3,
        stride_q: IntOrTriple = 1,
        stride_kv: IntOrTriple = 1,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        relative_position: bool = True,
        residual_pool: bool = True,
        residual_pool_class_token: bool = False,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.grid = as_triple(grid)
        self.drop_path = drop_path
        # Registration order as torchvision's (norms, attention, MLP, projection), so the two
        # models list their weights in the same order.
        self.norm1 = nn.LayerNorm(in_dim, eps=norm_eps)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = PoolingAttention(
            in_dim,
            dim,
            heads,
            self.grid,
            kernel_q=kernel_q,
            kernel_kv=kernel_kv,
            stride_q=stride_q,
            stride_kv=stride_kv,
            qkv_bias=qkv_bias,
            relative_position=relative_position,
            residual_pool=residual_pool,
            residual_pool_class_token=residual_pool_class_token,
            dropout=dropout,
            norm_eps=norm_eps,
        )
        self.out_grid = block_grids(self.grid, kernel_q, stride_q)[1]
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )
        self.project = nn.Linear(in_dim, dim) if in_dim != dim else None
        sq = as_triple(stride_q)
        # The shortcut must land on the query grid: max-pool it with the queries' stride and a
        # kernel one larger than each stride > 1.
        self.skip_kernel = _skip_kernel(sq)
        self.skip_stride = sq
        self.pool_skip = math.prod(sq) > 1

    def extra_repr(self) -> str:
        return f"grid={self.grid} -> {self.out_grid}, drop_path={self.drop_path:g}"

    def _pool_shortcut(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*H*W, C)
        volume = _grid_volume(x[:, 1:], self.grid)
        pooled = F.max_pool3d(
            volume, self.skip_kernel, self.skip_stride, tuple(k // 2 for k in self.skip_kernel)
        )
        tokens = pooled.permute(0, 2, 3, 4, 1).reshape(x.shape[0], -1, x.shape[2])
        return _with_class_token(x[:, :1], tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*H*W, in_dim)
        if x.dim() != 3 or x.shape[1] != 1 + math.prod(self.grid):
            raise ValueError(
                f"expects (B, 1 + T*H*W, D) tokens on the grid {list(self.grid)} "
                f"({1 + math.prod(self.grid)} tokens), got {tuple(x.shape)}"
            )
        normed = self.norm1(x)
        shortcut = x if self.project is None else self.project(normed)
        if self.pool_skip:
            shortcut = self._pool_shortcut(shortcut)
        # The branches' outputs are fresh tensors no backward needs: add the shortcuts in place.
        x = drop_path_branch(self.attn(normed), self.drop_path, self.training).add_(shortcut)
        return drop_path_branch(self.mlp(self.norm2(x)), self.drop_path, self.training).add_(x)


class ClassTokenEmbedding(nn.Module):
    """Flattens a ``(B, D, T, H, W)`` map to tokens and prepends a learned class token; with
    ``absolute_position``, adds separable learned positions (time + space, and one for the
    class token), as MViT v1 does. MViT v2 uses relative positions in attention instead."""

    def __init__(self, dim: int, grid: Grid, absolute_position: bool = False) -> None:
        super().__init__()
        self.grid = grid
        self.class_token = nn.Parameter(torch.empty(dim))
        self.spatial_pos: nn.Parameter | None = None
        self.temporal_pos: nn.Parameter | None = None
        self.class_pos: nn.Parameter | None = None
        if absolute_position:
            self.spatial_pos = nn.Parameter(torch.empty(grid[1] * grid[2], dim))
            self.temporal_pos = nn.Parameter(torch.empty(grid[0], dim))
            self.class_pos = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """Separable tables: time resamples linearly, the (H, W) plane bicubically."""
        if self.spatial_pos is None:
            return {}
        t, h, w = self.grid
        return {
            "temporal_pos": PositionTable((t,), flat=True, mode="linear"),
            "spatial_pos": PositionTable((h, w), flat=True, mode="bicubic"),
        }

    def reset_parameters(self) -> None:
        for tensor in self.parameters(recurse=False):
            nn.init.trunc_normal_(tensor, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T, H, W)
        b, d = x.shape[:2]
        tokens = _with_class_token(self.class_token.expand(b, 1, d), x.flatten(2).transpose(1, 2))
        if self.spatial_pos is not None:
            assert self.temporal_pos is not None
            assert self.class_pos is not None
            grid_pos = (self.temporal_pos[:, None, :] + self.spatial_pos[None, :, :]).flatten(0, 1)
            tokens = tokens + torch.cat((self.class_pos[None, :], grid_pos))
        return tokens  # (B, 1 + T*H*W, D)


_STAGE: dict[str, Any] = {
    "type": "object",
    "description": "blocks of one width; the first one changes the width and pools the queries",
    "properties": {
        "depth": {**POSITIVE_INT, "description": "number of blocks"},
        "dim": {**POSITIVE_INT, "description": "token width of the stage"},
        "heads": {**POSITIVE_INT, "description": "attention heads (must divide dim)"},
        "stride_q": {
            **triple(1),
            "default": 1,
            "description": "query (and output grid) stride of the first block; later blocks: 1",
        },
        "stride_kv": {
            **triple(1),
            "default": 1,
            "description": "key/value pooling stride of every block",
        },
        "kernel_q": {**triple(1), "default": 3, "description": "query pooling kernel"},
        "kernel_kv": {**triple(1), "default": 3, "description": "key/value pooling kernel"},
    },
    "required": ["depth", "dim", "heads"],
    "additionalProperties": False,
}
_BLOCK_OPTIONS: dict[str, Any] = {
    "mlp_ratio": POSITIVE_NUMBER,
    "qkv_bias": BOOL,
    "relative_position": {**BOOL, "description": "decomposed relative positions in attention"},
    "residual_pool": {**BOOL, "description": "add the pooled queries to the attention output"},
    "residual_pool_class_token": {
        **BOOL,
        "description": "the residual pooling also adds to the class token",
    },
    "dropout": PROBABILITY,
    "norm_eps": POSITIVE_NUMBER,
}


def _encoder_type(x: SampleType, *, stages: Sequence[Mapping[str, Any]], **_: Any) -> SampleType:
    grid, width = clip_grid(x), x.sizes[0]
    for number, stage in enumerate(stages):
        dim, heads = int(stage["dim"]), int(stage["heads"])
        try:
            _check_heads(dim, heads)
            for index in range(int(stage["depth"])):
                stride = stage.get("stride_q", 1) if index == 0 else 1
                grid = block_grids(grid, stage.get("kernel_q", 3), stride)[1]
        except ShapeError as exc:
            raise ShapeError(f"stages[{number}]: {exc}") from None
        width = dim
    return tokens(1 + math.prod(grid), width, prefix=1, token_grid=grid)


def _block_type(
    x: SampleType,
    *,
    dim: int,
    heads: int,
    grid: IntOrTriple,
    kernel_q: IntOrTriple,
    stride_q: IntOrTriple,
    **_: Any,
) -> SampleType:
    stated = as_triple(grid)
    if x.prefix != 1 or x.sizes[0] != 1 + math.prod(stated):
        raise ShapeError(
            f"expects 1 class token and the grid {list(stated)}: (1 + {math.prod(stated)}, D) "
            "tokens"
        )
    _check_heads(dim, heads)
    out = block_grids(stated, kernel_q, stride_q)[1]
    return tokens(1 + math.prod(out), dim, prefix=1, token_grid=out)


def _class_token_type(x: SampleType, **_: Any) -> SampleType:
    if x.prefix < 1:
        raise ShapeError("the tokens have no class token; pool them with TokenPool instead")
    return vector(x.sizes[-1])


@register_layer(
    params={
        "stages": {"type": "array", "items": _STAGE, "minItems": 1},
        "absolute_position": {
            **BOOL,
            "description": "separable learned positions added to the tokens (MViT v1)",
        },
        "drop_path": {
            **PROBABILITY,
            "description": "stochastic depth of the last block, rising linearly from 0",
        },
        **_BLOCK_OPTIONS,
    },
    infer={"in_dim": channels, "grid": clip_grid},
    accepts=[Layout.CLIP],
    output=_encoder_type,
)
class MViTEncoder(nn.Module):
    """Class token and stages of multiscale blocks: ``(D, T, H, W) -> (1 + T'*H'*W', D')``.

    Each stage is ``{depth, dim, heads, stride_q, stride_kv, kernel_q, kernel_kv}``; its first
    block changes the width to ``dim`` and pools the queries (and so the grid) by ``stride_q``.
    The grid of every block is derived here from the input map, so a spec never repeats it.
    """

    def __init__(
        self,
        in_dim: int,
        grid: IntOrTriple,
        stages: Sequence[Mapping[str, Any]],
        absolute_position: bool = False,
        drop_path: float = 0.0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        relative_position: bool = True,
        residual_pool: bool = True,
        residual_pool_class_token: bool = False,
        dropout: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.grid = grid = as_triple(grid)
        self.pos_encoding = ClassTokenEmbedding(in_dim, grid, absolute_position)
        total = sum(int(stage["depth"]) for stage in stages)
        blocks: list[MViTBlock] = []
        width, block_grid = in_dim, grid
        for stage in stages:
            dim, heads = int(stage["dim"]), int(stage["heads"])
            _check_heads(dim, heads)
            for index in range(int(stage["depth"])):
                block = MViTBlock(
                    width,
                    dim,
                    heads,
                    block_grid,
                    kernel_q=stage.get("kernel_q", 3),
                    kernel_kv=stage.get("kernel_kv", 3),
                    stride_q=stage.get("stride_q", 1) if index == 0 else 1,
                    stride_kv=stage.get("stride_kv", 1),
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    relative_position=relative_position,
                    residual_pool=residual_pool,
                    residual_pool_class_token=residual_pool_class_token,
                    dropout=dropout,
                    drop_path=drop_path * len(blocks) / max(total - 1, 1),
                    norm_eps=norm_eps,
                )
                blocks.append(block)
                width, block_grid = dim, block.out_grid
        self.blocks = nn.ModuleList(blocks)
        self.out_grid = block_grid

    def extra_repr(self) -> str:
        return f"grid={self.grid} -> {self.out_grid}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D, T, H, W)
        if x.dim() != 5 or tuple(x.shape[2:]) != self.grid:
            raise ValueError(
                f"expects a (B, D, T, H, W) map on the grid {list(self.grid)}, got {tuple(x.shape)}"
            )
        x = self.pos_encoding(x)
        for block in self.blocks:
            x = block(x)
        return x  # (B, 1 + T'*H'*W', D')


register_layer(
    "MViTBlock",
    params={
        "dim": POSITIVE_INT,
        "heads": POSITIVE_INT,
        "grid": {**triple(1), "description": "the input's token grid [T, H, W]"},
        "kernel_q": triple(1),
        "kernel_kv": triple(1),
        "stride_q": triple(1),
        "stride_kv": triple(1),
        "drop_path": PROBABILITY,
        **_BLOCK_OPTIONS,
    },
    infer={"in_dim": features},
    accepts=[Layout.TOKENS],
    output=_block_type,
    description="One multiscale block on (1 + T*H*W, D) tokens whose grid the spec states "
    "(prefer MViTEncoder, which derives every block's grid).",
)(MViTBlock)


@register_layer(params={}, accepts=[Layout.TOKENS], output=_class_token_type)
class ClassToken(nn.Module):
    """The class token of a token sequence: ``(1 + N, D) -> (D,)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + N, D)
        if x.dim() != 3:
            raise ValueError(
                f"expects (B, 1 + N, D) tokens with a class token, got {tuple(x.shape)}"
            )
        return x[:, 0]  # (B, D)
