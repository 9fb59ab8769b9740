"""Vision-transformer layers on token sequences ``(L, D)``: a class token, position tables
(learned, fixed sinusoidal, separate space and time), pre-norm encoder blocks (joint attention,
divided space-time attention with a class token, or 3D rotary positions) and pooling by a
learned query.

A clip becomes tokens with ``TubeletEmbedding`` (``position: none``) then ``Flatten``
(``start_dim: 0, end_dim: 2``): ``(T*H*W, D)`` tokens in time-major order, whose grid the type
carries. ``AddClassToken`` puts a token in front; the type counts it as a prefix, so a block
knows which tokens lie on the grid::

    backbone:
      - {name: embed, type: TubeletEmbedding, dim: 768, tubelet: [2, 16, 16], position: none}
      - {type: Flatten, start_dim: 0, end_dim: 2}          # -> (T*H*W, 768)
      - {name: cls, type: AddClassToken}                    # -> (1 + T*H*W, 768)
      - {name: pos, type: LearnedPositions}
      - {name: blocks, type: Repeat, times: 12, layer: {type: ViTBlock, heads: 12}}
      - {name: norm, type: LayerNorm, eps: 1.0e-6}
    neck: {type: ClassToken}

Module and tensor names (``attn.query``, ``mlp.fc1``, ``token``, ``table``) are chosen so that
the transformers library's video models (VideoMAE, TimeSformer, ViViT, V-JEPA 2) import by
renames alone; tensors keep the reference's shapes (a class token is ``(1, 1, D)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._params import BOOL, POSITIVE_INT, POSITIVE_NUMBER, PROBABILITY, enum
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, features, tokens, vector
from .adaptation import AdaptRule, Derived, PositionTable
from .mvit import drop_path_branch
from .transformer import check_heads

__all__ = [
    "ACTIVATIONS",
    "AddClassToken",
    "AttentionPool",
    "LearnedPositions",
    "QuickGELU",
    "SelfAttention",
    "SinusoidalPositions",
    "SpaceTimePositions",
    "ViTBlock",
    "ViTMLP",
    "rotary_positions",
    "sinusoid_table",
]

Activation = Literal["gelu", "gelu_tanh", "quick_gelu", "relu", "silu"]
ACTIVATIONS: tuple[str, ...] = ("gelu", "gelu_tanh", "quick_gelu", "relu", "silu")
QkvBias = Literal["all", "qv", "none"]
Attention = Literal["joint", "divided"]
Grid = tuple[int, int, int]

_TOKENS = [Layout.TOKENS]


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``: the sigmoid approximation of GELU (CLIP's activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def _activation(name: str) -> nn.Module:
    """The module of an ``ACTIVATIONS`` name; ``gelu`` is exact (erf), ``gelu_tanh`` torch's
    tanh approximation."""
    if name == "gelu":
        return nn.GELU()
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if name == "quick_gelu":
        return QuickGELU()
    if name == "relu":
        return nn.ReLU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


def _grid_of(x: SampleType) -> Grid | None:
    return x.token_grid


def _prefix_of(x: SampleType) -> int:
    return x.prefix


def _length(x: SampleType) -> int:
    return x.sizes[0]


def _same(x: SampleType, **_: Any) -> SampleType:
    return x


def _on_grid(x: SampleType, what: str, prefix: int | None = None) -> Grid:
    """The grid of ``x``'s tokens, refusing tokens whose grid is unknown or whose class tokens
    differ from ``prefix``."""
    if x.token_grid is None:
        raise ShapeError(
            f"{what} needs tokens whose grid is known: make them with TubeletEmbedding and "
            "Flatten (start_dim 0, end_dim 2)"
        )
    if prefix is not None and x.prefix != prefix:
        raise ShapeError(f"{what} needs {prefix} class token(s) in front, got {x.prefix}")
    return x.token_grid


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, dropout: float
) -> torch.Tensor:
    """Multi-head scaled dot-product attention of ``(N, Lq, D)`` queries on ``(N, Lk, D)`` keys
    and values: ``(N, Lq, D)``."""
    n, lq, d = q.shape
    lk = k.shape[1]
    split_q = q.view(n, lq, heads, d // heads).transpose(1, 2)  # (N, heads, Lq, D / heads)
    split_k = k.view(n, lk, heads, d // heads).transpose(1, 2)
    split_v = v.view(n, lk, heads, d // heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(split_q, split_k, split_v, dropout_p=dropout)
    return out.transpose(1, 2).reshape(n, lq, d)


def _rotate_pairs(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """V-JEPA 2's rotary embedding of ``x`` (..., N, d) at integer ``positions`` (N,).

    Frequencies ``10000 ** (-i / (d/2))`` for ``i < d/2``; the angle table is the ``d/2``
    frequencies twice over (``[f, f]``) while the rotated pairs are adjacent channels
    ``(x[2i], x[2i+1]) -> (-x[2i+1], x[2i])``, as the reference computes it.
    """
    d = x.shape[-1]
    omega = torch.arange(d // 2, dtype=x.dtype, device=x.device) / (d / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.unsqueeze(-1) * omega  # (N, d/2)
    sin, cos = angles.sin().repeat(1, 2), angles.cos().repeat(1, 2)  # (N, d)
    first, second = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    rotated = torch.stack((-second, first), dim=-1).flatten(-2)
    return x * cos + rotated * sin


def rotary_positions(x: torch.Tensor, grid: Grid) -> torch.Tensor:
    """3D rotary positions on ``(N, heads, T*H*W, head_dim)`` queries or keys of a time-major
    grid: equal thirds of each head (rounded down to even sizes) turn with the frame, row and
    column of the token; the channels left over pass unchanged."""
    t, h, w = grid
    if x.shape[-2] != t * h * w:  # broadcasting would turn every token by the first positions
        raise ValueError(
            f"rotary positions on the grid {list(grid)} need {t * h * w} tokens and no class "
            f"token, got {x.shape[-2]}"
        )
    part = 2 * ((x.shape[-1] // 3) // 2)
    ids = torch.arange(t * h * w, device=x.device)
    frame, row, column = ids // (h * w), (ids % (h * w)) // w, ids % w
    pieces = [
        _rotate_pairs(x[..., i * part : (i + 1) * part], axis)
        for i, axis in enumerate((frame, row, column))
    ]
    return torch.cat([*pieces, x[..., 3 * part :]], dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention on ``(N, L, D)`` tokens.

    Projections ``query``, ``key``, ``value`` (or one fused ``qkv``), then ``proj``. Biases:
    ``qkv_bias`` ``all``, ``qv`` (query and value only, as VideoMAE) or ``none``. With ``grid``
    the tokens are a time-major grid and queries and keys get 3D rotary positions.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        qkv_bias: QkvBias = "all",
        fused_qkv: bool = False,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        rotary_grid: Grid | None = None,
    ) -> None:
        super().__init__()
        check_heads(dim, heads)
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.rotary_grid = rotary_grid
        self.qkv: nn.Linear | None = None
        if fused_qkv:
            if qkv_bias == "qv":
                raise ValueError("a fused qkv projection has a bias on all three or none")
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias == "all")
        else:
            self.query = nn.Linear(dim, dim, bias=qkv_bias != "none")
            self.key = nn.Linear(dim, dim, bias=qkv_bias == "all")
            self.value = nn.Linear(dim, dim, bias=qkv_bias != "none")
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, L, D)
        if self.qkv is not None:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = self.query(x), self.key(x), self.value(x)
        p = self.attention_dropout if self.training else 0.0
        if self.rotary_grid is None:
            out = _attend(q, k, v, self.heads, p)
        else:
            n, length, d = q.shape
            heads = [
                t.view(n, length, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v)
            ]
            q4 = rotary_positions(heads[0], self.rotary_grid)
            k4 = rotary_positions(heads[1], self.rotary_grid)
            out = F.scaled_dot_product_attention(q4, k4, heads[2], dropout_p=p)
            out = out.transpose(1, 2).reshape(n, length, d)
        projected: torch.Tensor = self.dropout(self.proj(out))
        return projected


class ViTMLP(nn.Module):
    """``fc2(activation(fc1(x)))`` with dropout after ``fc2``."""

    def __init__(self, dim: int, hidden: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = _activation(activation)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dropout(self.fc2(self.act(self.fc1(x))))
        return out


def _block_type(
    x: SampleType,
    *,
    heads: int,
    attention: str,
    rotary: bool,
    fused_qkv: bool,
    qkv_bias: str,
    **_: Any,
) -> SampleType:
    check_heads(x.sizes[-1], heads)
    if fused_qkv and qkv_bias == "qv":
        raise ShapeError("a fused qkv projection has a bias on all three or none, not qkv_bias: qv")
    if attention == "divided":
        if rotary:
            raise ShapeError("rotary positions are for joint attention; use attention: joint")
        _on_grid(x, "divided space-time attention", prefix=1)
    if rotary:
        _on_grid(x, "rotary positions", prefix=0)
    return x


@register_layer(
    params={
        "heads": POSITIVE_INT,
        "mlp_dim": {
            "anyOf": [POSITIVE_INT, {"type": "null"}],
            "description": "hidden width of the MLP; default: 4 x the token width",
        },
        "attention": {
            **enum("joint", "divided"),
            "description": "joint: every token attends to every token; divided: each grid "
            "token attends over time, then each frame over space with the class token "
            "(TimeSformer)",
        },
        "qkv_bias": {
            **enum("all", "qv", "none"),
            "description": "biases of the query, key and value projections (qv: query and value "
            "only, as VideoMAE)",
        },
        "fused_qkv": {**BOOL, "description": "one qkv projection instead of three"},
        "rotary": {**BOOL, "description": "3D rotary positions on queries and keys (V-JEPA 2)"},
        "activation": {
            **enum(*ACTIVATIONS),
            "description": "MLP activation: gelu (exact), gelu_tanh (tanh approximation), "
            "quick_gelu (sigmoid approximation), relu, silu",
        },
        "norm_eps": POSITIVE_NUMBER,
        "dropout": PROBABILITY,
        "attention_dropout": PROBABILITY,
        "drop_path": {
            **PROBABILITY,
            "description": "stochastic depth: the chance a sample skips each residual branch "
            "in training",
        },
    },
    infer={"dim": features, "grid": _grid_of},
    accepts=_TOKENS,
    output=_block_type,
)
class ViTBlock(nn.Module):
    """Pre-norm encoder block on ``(L, D)`` tokens: ``x + attn(norm1(x))``, then
    ``x + mlp(norm2(x))``.

    With ``attention: divided`` (TimeSformer) the grid tokens first attend over time
    (``norm_time``, ``attn_time``, then the ``time_proj`` linear), then each frame's tokens
    attend over space together with a copy of the class token; the class token's updates are
    averaged over the frames.
    """

    def __init__(
        self,
        dim: int,
        grid: Sequence[int] | None,
        heads: int,
        mlp_dim: int | None = None,
        attention: Attention = "joint",
        qkv_bias: QkvBias = "all",
        fused_qkv: bool = False,
        rotary: bool = False,
        activation: Activation = "gelu",
        norm_eps: float = 1e-6,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.drop_path = drop_path
        on_grid = None if grid is None else (int(grid[0]), int(grid[1]), int(grid[2]))
        if attention == "divided" and rotary:
            raise ValueError("rotary positions are for joint attention; use attention: joint")
        if (attention == "divided" or rotary) and on_grid is None:
            raise ValueError(
                f"{'rotary positions' if rotary else 'divided attention'} need the grid"
            )
        self.attention = attention
        self.grid = on_grid
        options: dict[str, Any] = {
            "qkv_bias": qkv_bias,
            "fused_qkv": fused_qkv,
            "dropout": dropout,
            "attention_dropout": attention_dropout,
        }
        if attention == "divided":
            self.norm_time = nn.LayerNorm(dim, eps=norm_eps)
            self.attn_time = SelfAttention(dim, heads, **options)
            self.time_proj = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SelfAttention(dim, heads, rotary_grid=on_grid if rotary else None, **options)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = ViTMLP(dim, mlp_dim or 4 * dim, activation, dropout)

    def extra_repr(self) -> str:
        grid = f", grid={self.grid}" if self.grid else ""
        return f"attention={self.attention}{grid}, drop_path={self.drop_path:g}"

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path_branch(x, self.drop_path, self.training)

    def _divided(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*S, D)
        assert self.grid is not None
        b, _, d = x.shape
        t, s = self.grid[0], self.grid[1] * self.grid[2]
        cls, grid_tokens = x[:, :1], x[:, 1:]
        # Time: each spatial position attends over its T frames.
        seq = grid_tokens.reshape(b, t, s, d).transpose(1, 2).reshape(b * s, t, d)
        update = self._branch(self.attn_time(self.norm_time(seq)))
        update = update.reshape(b, s, t, d).transpose(1, 2).reshape(b, t * s, d)
        grid_tokens = grid_tokens + self.time_proj(update)
        # Space: each frame's tokens and a copy of the class token attend to each other.
        frames = grid_tokens.reshape(b * t, s, d)
        frame_cls = cls.expand(b, t, d).reshape(b * t, 1, d)
        update = self._branch(self.attn(self.norm1(torch.cat((frame_cls, frames), dim=1))))
        cls_update = update[:, 0].reshape(b, t, d).mean(dim=1, keepdim=True)
        return torch.cat((cls + cls_update, grid_tokens + update[:, 1:].reshape(b, t * s, d)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        if x.dim() != 3:
            raise ValueError(f"expects tokens (B, L, D), got {tuple(x.shape)}")
        if self.attention == "divided":
            x = self._divided(x)
        else:
            x = x + self._branch(self.attn(self.norm1(x)))
        out: torch.Tensor = x + self._branch(self.mlp(self.norm2(x)))
        return out


def _with_class_token(x: SampleType, **_: Any) -> SampleType:
    length, dim = x.sizes
    return tokens(length + 1, dim, prefix=x.prefix + 1, token_grid=x.token_grid)


@register_layer(params={}, infer={"dim": features}, accepts=_TOKENS, output=_with_class_token)
class AddClassToken(nn.Module):
    """A learned class token put in front of the tokens: ``(L, D) -> (1 + L, D)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.empty(1, 1, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        return torch.cat((self.token.expand(x.shape[0], -1, -1), x), dim=1)


@register_layer(
    params={},
    infer={"length": _length, "dim": features, "grid": _grid_of, "prefix": _prefix_of},
    accepts=_TOKENS,
    output=_same,
)
class LearnedPositions(nn.Module):
    """A learned ``(1, L, D)`` table added to the tokens, class tokens included (ViViT).

    On tokens of a known ``(T, H, W)`` grid after ``prefix`` class tokens, adapting a checkpoint
    resamples the grid's rows trilinearly and keeps the class tokens' rows."""

    def __init__(
        self, length: int, dim: int, grid: Sequence[int] | None = None, prefix: int = 0
    ) -> None:
        super().__init__()
        self.grid = None if grid is None else (int(grid[0]), int(grid[1]), int(grid[2]))
        self.prefix = prefix
        self.table = nn.Parameter(torch.empty(1, length, dim))
        self.reset_parameters()

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """The joint table on its grid (class tokens kept); none when the grid is unknown."""
        if self.grid is None:
            return {}
        return {"table": PositionTable(self.grid, self.prefix, flat=True, mode="trilinear")}

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        return x + self.table


def sinusoid_table(length: int, dim: int, *, device: torch.device | None = None) -> torch.Tensor:
    """The ``(length, dim)`` sine-cosine table of "Attention is all you need": position ``p``,
    channel ``j`` is ``sin`` (even ``j``) or ``cos`` (odd ``j``) of
    ``p / 10000^(2 (j // 2) / dim)``, computed in float64 and returned in float32.

    Example::

        >>> sinusoid_table(4, 6).shape
        torch.Size([4, 6])
    """
    position = torch.arange(length, dtype=torch.float64, device=device)[:, None]
    channel = torch.arange(dim, device=device)
    exponent = (2 * torch.div(channel, 2, rounding_mode="floor")).to(torch.float64) / dim
    angles = position / torch.pow(
        torch.tensor(10000.0, dtype=torch.float64, device=device), exponent
    )
    table = torch.where(channel % 2 == 0, angles.sin(), angles.cos())
    return table.float()


@register_layer(
    params={}, infer={"length": _length, "dim": features}, accepts=_TOKENS, output=_same
)
class SinusoidalPositions(nn.Module):
    """Fixed sine-cosine positions added to the tokens (VideoMAE): a buffer computed from the
    sizes, not a parameter, and not stored in checkpoints (it is recomputed on load)."""

    table: torch.Tensor

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.length, self.dim = length, dim
        self.register_buffer("table", torch.empty(1, length, dim), persistent=False)
        self.reset_parameters()

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """The table is recomputed for the model's token count, never resampled."""
        return {
            "table": Derived(
                lambda: sinusoid_table(self.length, self.dim)[None],
                f"sine-cosine table of {self.length} positions",
            )
        }

    def reset_parameters(self) -> None:
        if self.table.is_meta:  # no values on the meta device; computed once storage exists
            return
        with torch.no_grad():
            self.table.copy_(sinusoid_table(self.length, self.dim, device=self.table.device)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        return x + self.table.to(x.dtype)


def _space_time_type(x: SampleType, **_: Any) -> SampleType:
    _on_grid(x, "SpaceTimePositions", prefix=1)
    return x


def _frames(x: SampleType) -> int:
    return _on_grid(x, "SpaceTimePositions")[0]


def _frame_area(x: SampleType) -> int:
    grid = _on_grid(x, "SpaceTimePositions")
    return grid[1] * grid[2]


@register_layer(
    params={},
    infer={"frames": _frames, "area": _frame_area, "dim": features, "grid": _grid_of},
    accepts=_TOKENS,
    output=_space_time_type,
)
class SpaceTimePositions(nn.Module):
    """Separate learned space and time tables (TimeSformer) on ``(1 + T*H*W, D)`` tokens: the
    class token gets ``space[0]``; the token at frame ``t``, place ``s`` gets
    ``space[1 + s] + time[t]``. Tables ``space`` ``(1, 1 + H*W, D)``, ``time`` ``(1, T, D)``."""

    def __init__(self, frames: int, area: int, dim: int, grid: Sequence[int] | None = None) -> None:
        super().__init__()
        self.space = nn.Parameter(torch.empty(1, 1 + area, dim))
        self.time = nn.Parameter(torch.empty(1, frames, dim))
        # The (H, W) of the space table (its rows cannot say whether 8 x 2 or 4 x 4).
        self.plane = (int(grid[1]), int(grid[2])) if grid is not None else None
        self.reset_parameters()

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """Both tables resample with ``nearest``, as TimeSformer's reference forward does when
        the clip's frame count or size differs from the tables'; the class row is kept."""
        rules: dict[str, AdaptRule] = {
            "time": PositionTable((self.time.shape[1],), flat=True, mode="nearest")
        }
        if self.plane is not None:
            rules["space"] = PositionTable(self.plane, prefix=1, flat=True, mode="nearest")
        return rules

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.space, std=0.02)
        nn.init.zeros_(self.time)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1 + T*S, D)
        b, _, d = x.shape
        t, s = self.time.shape[1], self.space.shape[1] - 1
        cls = x[:, :1] + self.space[:, :1]
        grid_tokens = x[:, 1:].reshape(b, t, s, d) + self.space[:, 1:].unsqueeze(1)
        grid_tokens = grid_tokens + self.time.reshape(1, t, 1, d)
        return torch.cat((cls, grid_tokens.reshape(b, t * s, d)), dim=1)


def _pool_type(x: SampleType, *, heads: int, **_: Any) -> SampleType:
    check_heads(x.sizes[-1], heads)
    return vector(x.sizes[-1])


@register_layer(
    params={
        "heads": POSITIVE_INT,
        "mlp_dim": {
            "anyOf": [POSITIVE_INT, {"type": "null"}],
            "description": "hidden width of the MLP; default: 4 x the token width",
        },
        "activation": enum(*ACTIVATIONS),
        "norm_eps": POSITIVE_NUMBER,
    },
    infer={"dim": features},
    accepts=_TOKENS,
    output=_pool_type,
)
class AttentionPool(nn.Module):
    """Pooling by a learned query (V-JEPA 2's attentive pooler): ``(L, D) -> (D,)``.

    The query attends to the normalised tokens (``norm1``; projections ``attn.query``,
    ``attn.key``, ``attn.value``, no output projection), is added to the result, then
    ``x + mlp(norm2(x))``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_dim: int | None = None,
        activation: Activation = "gelu",
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        check_heads(dim, heads)
        self.heads = heads
        self.query = nn.Parameter(torch.empty(1, 1, dim))
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = nn.ModuleDict({name: nn.Linear(dim, dim) for name in ("query", "key", "value")})
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = ViTMLP(dim, mlp_dim or 4 * dim, activation, 0.0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.query, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        if x.dim() != 3:
            raise ValueError(f"expects tokens (B, L, D), got {tuple(x.shape)}")
        b = x.shape[0]
        keys = self.norm1(x)
        # One projection of the query, shared by the batch (the parameter itself, not a view of
        # it, goes into the module: hooks on module inputs expect a tensor with a history).
        projected = self.attn["query"](self.query).expand(b, -1, -1)
        attended = _attend(
            projected, self.attn["key"](keys), self.attn["value"](keys), self.heads, 0.0
        )
        query = self.query.expand(b, -1, -1)
        pooled = query + attended
        pooled = pooled + self.mlp(self.norm2(pooled))
        out: torch.Tensor = pooled[:, 0]
        return out  # (B, D)


register_layer("QuickGELU", params={}, output=_same)(QuickGELU)
