"""Video Swin Transformer layers (Liu et al., "Video Swin Transformer", 2022).

Self-attention restricted to non-overlapping 3D windows of a channels-last token grid
``(T, H, W, D)``, every other block shifting the windows by half a window so information crosses
window borders. Built from small to large: ``WindowAttention3d`` (one windowed attention with a
learned relative position bias), ``SwinBlock3d`` (attention and MLP with residuals),
``SwinStage3d`` (blocks alternating plain and shifted windows), ``SwinPatchMerging3d`` (2x2
spatial downsampling), ``SwinEncoder3d`` (stages and mergings with a stochastic-depth schedule)
and ``SwinPatchEmbed3d`` (clip to token grid). Parameter and buffer names follow torchvision's
``swin3d_*`` models so their weights load with a prefix change only.

Part of the layer stage: importing this module registers these layers for specs to name.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._params import BOOL, POSITIVE_INT, POSITIVE_NUMBER, PROBABILITY, triple
from ._registry import register_layer
from ._types import Layout, SampleType, ShapeError, channels, features, grid
from .adaptation import AdaptRule, ConvKernel, Derived, RelativeTable, reads_clip
from .transformer import check_heads, clip_grid
from .video_conv import IntOrTriple, as_triple

__all__ = [
    "StochasticDepth",
    "SwinBlock3d",
    "SwinEncoder3d",
    "SwinPatchEmbed3d",
    "SwinPatchMerging3d",
    "SwinStage3d",
    "WindowAttention3d",
    "relative_position_index",
    "shifted_window_mask",
]

Triple = tuple[int, int, int]

# A large negative logit, not -inf: a window whose tokens all come from different regions must
# still softmax to finite values. The reference implementation uses -100; so do we, for parity.
_MASKED = -100.0


def _pad_to_multiple(size: Triple, multiple: Triple) -> Triple:
    """Padding that rounds each of ``size`` up to a multiple of ``multiple``."""
    t, h, w = ((m - s % m) % m for s, m in zip(size, multiple, strict=True))
    return (t, h, w)


def _fit_window(grid: Triple, window: Triple, shift: Triple) -> tuple[Triple, Triple]:
    """Window and shift actually used on ``grid``: an axis no longer than its window takes the
    whole axis as one window, and shifting it would only rotate the tokens, so it is not shifted."""
    fitted = [(g, 0) if g <= k else (k, s) for g, k, s in zip(grid, window, shift, strict=True)]
    (wt, st), (wh, sh), (ww, sw) = fitted
    return (wt, wh, ww), (st, sh, sw)


def relative_position_index(window: Triple, device: torch.device | str = "cpu") -> torch.Tensor:
    """For each pair of positions ``(i, j)`` in one window, the row of the bias table that holds
    their offset: ``(N, N)`` with ``N = Wt * Wh * Ww``, positions in (t, h, w) order.

    The table lists offsets ``(dt, dh, dw)``, each in ``[-(W - 1), W - 1]``, in row-major order,
    so the row is linear in the offset: ``key(i) - key(j) + key(W - 1)`` with
    ``key(t, h, w) = (t * (2Wh - 1) + h) * (2Ww - 1) + w``. One broadcast subtraction builds it.
    """
    wt, wh, ww = window
    t, h, w = torch.meshgrid(
        *(torch.arange(n, device=device) for n in window), indexing="ij"
    )  # each (Wt, Wh, Ww)
    key = ((t * (2 * wh - 1) + h) * (2 * ww - 1) + w).flatten()  # (N,)
    centre = ((wt - 1) * (2 * wh - 1) + wh - 1) * (2 * ww - 1) + ww - 1
    return key[:, None] - key[None, :] + centre


def _axis_regions(length: int, window: int, shift: int) -> torch.Tensor:
    """After a cyclic shift by ``shift``, which of the three strips each position came from:
    0 for the untouched part, 1 for the last window's unwrapped part, 2 for the wrapped tail."""
    # On the CPU also while building on the meta device (an explicit device, not a device
    # context: torch.compile cannot trace one).
    position = torch.arange(length, device="cpu")
    if shift == 0:
        return torch.zeros_like(position)
    return (position >= length - window).long() + (position >= length - shift).long()


@functools.lru_cache(maxsize=64)
def _window_regions(grid: Triple, window: Triple, shift: Triple) -> torch.Tensor:
    """``(num_windows, N)`` region label of each token of each window, on the CPU. Small
    (one label per token) and the same for every forward at one grid size, so it is computed
    once; the ``N x N`` comparison that makes the mask runs on the activations' device."""
    rt, rh, rw = (_axis_regions(g, k, s) for g, k, s in zip(grid, window, shift, strict=True))
    region = rt[:, None, None] * 9 + rh[None, :, None] * 3 + rw[None, None, :]  # (T, H, W)
    (t, h, w), (wt, wh, ww) = grid, window
    region = region.view(t // wt, wt, h // wh, wh, w // ww, ww)
    return region.permute(0, 2, 4, 1, 3, 5).reshape(-1, wt * wh * ww)


def shifted_window_mask(
    grid: Triple,
    window: Triple,
    shift: Triple,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Additive attention mask ``(num_windows, N, N)`` for windows on a cyclically shifted grid:
    0 between tokens that were neighbours before the shift, -100 between tokens the wrap-around
    brought together. ``grid`` must be a multiple of ``window``."""
    # While torch.compile or torch.export traces, the labels are traced ops (a cached tensor
    # would be the tracer's fake one, and would then poison every later eager call).
    regions = _window_regions.__wrapped__ if torch.compiler.is_compiling() else _window_regions
    region = regions(grid, window, shift).to(device)
    apart = region[:, None, :] != region[:, :, None]
    # A product rather than masked_fill_: on meta, torch's masked_fill_ kernel is Python and
    # its first call imports sympy.
    return apart.to(dtype).mul_(_MASKED)


def _check_shift(window: Triple, shift: Triple) -> None:
    if any(s >= k for s, k in zip(shift, window, strict=True)):
        raise ShapeError(
            f"shift_size {list(shift)} must be smaller than window_size {list(window)} on "
            "every axis (the usual shift is half the window)"
        )


def _attention_type(
    x: SampleType, *, heads: int, window_size: IntOrTriple, shift_size: IntOrTriple, **_: Any
) -> SampleType:
    check_heads(x.sizes[-1], heads)
    _check_shift(as_triple(window_size), as_triple(shift_size))
    return x


def _stage_type(
    x: SampleType, *, heads: int, depth: int, stochastic_depth: Any, **_: Any
) -> SampleType:
    check_heads(x.sizes[-1], heads)
    _per_block(stochastic_depth, depth)
    return x


def _merged(x: SampleType) -> SampleType:
    t, h, w, d = x.sizes
    return grid(t, -(-h // 2), -(-w // 2), 2 * d)


def _merging_type(x: SampleType, **_: Any) -> SampleType:
    return _merged(x)


def _encoder_type(
    x: SampleType, *, depths: Sequence[int], heads: Sequence[int], **_: Any
) -> SampleType:
    if len(depths) != len(heads):
        raise ShapeError(
            f"depths {list(depths)} and heads {list(heads)} must list one value per stage"
        )
    for stage, stage_heads in enumerate(heads):
        check_heads(x.sizes[-1], stage_heads)
        if stage < len(heads) - 1:
            x = _merged(x)
    return x


def _embed_type(x: SampleType, *, dim: int, patch_size: IntOrTriple, **_: Any) -> SampleType:
    t, h, w = (-(-n // p) for n, p in zip(clip_grid(x), as_triple(patch_size), strict=True))
    return grid(t, h, w, dim)


@register_layer(
    params={
        "heads": POSITIVE_INT,
        "window_size": triple(1),
        "shift_size": triple(0),
        "qkv_bias": BOOL,
        "proj_bias": BOOL,
        "attention_dropout": PROBABILITY,
        "dropout": PROBABILITY,
    },
    infer={"dim": features},
    accepts=[Layout.GRID],
    output=_attention_type,
)
class WindowAttention3d(nn.Module):
    """Multi-head self-attention inside non-overlapping ``Wt x Wh x Ww`` windows of a
    ``(T, H, W, D)`` grid, with a learned relative position bias; windows shifted by
    ``shift_size`` when it is not zero. The grid is padded up to whole windows and cropped back.
    """

    relative_position_index: torch.Tensor

    def __init__(
        self,
        dim: int,
        heads: int,
        window_size: IntOrTriple = (8, 7, 7),
        shift_size: IntOrTriple = 0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_heads(dim, heads)
        window, shift = as_triple(window_size), as_triple(shift_size)
        _check_shift(window, shift)
        self.window_size, self.shift_size = window, shift
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        wt, wh, ww = window
        offsets = (2 * wt - 1) * (2 * wh - 1) * (2 * ww - 1)
        self.relative_position_bias_table = nn.Parameter(torch.empty(offsets, heads))
        volume = wt * wh * ww
        # Persistent: the reference checkpoints carry it, and after ``to_empty`` it is
        # recomputed by reset_parameters like any other tensor.
        self.register_buffer(
            "relative_position_index", torch.empty(volume, volume, dtype=torch.long)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the tensors this module owns directly (qkv and proj initialise themselves)."""
        index = self.relative_position_index
        if index.is_meta:  # no values to set; skipping keeps building on meta fast
            return
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        with torch.no_grad():
            index.copy_(relative_position_index(self.window_size, index.device))

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        """The bias table resamples over its (t, h, w) offsets for another window; the index
        is recomputed from the window."""
        wt, wh, ww = self.window_size
        return {
            "relative_position_bias_table": RelativeTable(
                (2 * wt - 1, 2 * wh - 1, 2 * ww - 1), mode="trilinear"
            ),
            "relative_position_index": Derived(
                lambda: relative_position_index(self.window_size),
                f"offset index of a {list(self.window_size)} window",
            ),
        }

    def _position_bias(self, window: Triple) -> torch.Tensor:
        """``(1, heads, N, N)`` bias for a window of size ``window`` (smaller than the configured
        one when the grid is): the top-left ``N x N`` block of the full index, as the reference
        implementation takes it, so imported weights give the same outputs."""
        volume = window[0] * window[1] * window[2]
        index = self.relative_position_index[:volume, :volume].flatten()
        # index_select, not indexing: the same rows, and on meta a C++ kernel rather than
        # torch's Python one (whose first call imports sympy).
        bias = self.relative_position_bias_table.index_select(0, index).view(volume, volume, -1)
        return bias.permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H, W, D)
        if x.dim() != 5:
            raise ValueError(f"expects a token grid (B, T, H, W, D), got {tuple(x.shape)}")
        b, t, h, w, dim = x.shape
        window, shift = _fit_window((t, h, w), self.window_size, self.shift_size)
        pt, ph, pw = _pad_to_multiple((t, h, w), window)
        padded = pt + ph + pw > 0
        if padded:
            x = F.pad(x, (0, 0, 0, pw, 0, ph, 0, pt))
        grid = (t + pt, h + ph, w + pw)
        shifted = any(shift)
        if shifted:
            x = torch.roll(x, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))

        # Partition: (B, T, H, W, D) -> (B * num_windows, N, D), windows in (t, h, w) order.
        (gt, gh, gw), (wt, wh, ww) = grid, window
        counts = (gt // wt, gh // wh, gw // ww)
        num_windows, volume = counts[0] * counts[1] * counts[2], wt * wh * ww
        x = x.view(b, counts[0], wt, counts[1], wh, counts[2], ww, dim)
        x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(b * num_windows, volume, dim)

        # Attention with explicit matmuls: the same operations (and so the same counted
        # multiply-accumulates and numerics) as the reference implementation.
        head_dim = dim // self.heads
        qkv = self.qkv(x).reshape(b * num_windows, volume, 3, self.heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B * nW, heads, N, head_dim)
        attn = (q * head_dim**-0.5).matmul(k.transpose(-2, -1))  # (B * nW, heads, N, N)
        # The logits are the largest tensor here (118 MB per block in swin3d_t's first stage), so
        # bias and mask are added in place, not into fresh copies: autograd allows it, since the
        # matmul's backward needs only its inputs. Softmax is in place too when nothing needs
        # its output for a backward pass.
        attn.add_(self._position_bias(window))
        if shifted:
            mask = shifted_window_mask(grid, window, shift, dtype=attn.dtype, device=attn.device)
            attn.view(b, num_windows, self.heads, volume, volume).add_(mask[None, :, None])
        if attn.requires_grad:
            attn = attn.softmax(dim=-1)
        else:  # in place: about 4x faster than into a fresh tensor of this size (no page faults)
            torch.softmax(attn, dim=-1, out=attn)
        attn = F.dropout(attn, self.attention_dropout, self.training)
        x = attn.matmul(v).transpose(1, 2).reshape(b * num_windows, volume, dim)
        x = F.dropout(self.proj(x), self.dropout, self.training)

        # Reverse the partition, the shift and the padding.
        x = x.view(b, counts[0], counts[1], counts[2], wt, wh, ww, dim)
        x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, gt, gh, gw, dim)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        if padded:
            x = x[:, :t, :h, :w].contiguous()
        return x


class StochasticDepth(nn.Module):
    """Drop a residual branch for whole samples with probability ``p`` while training,
    scaling the kept ones by ``1 / (1 - p)``; the identity in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"stochastic depth probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        noise = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        if keep > 0.0:
            noise.div_(keep)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}"


_BLOCK_PARAMS: dict[str, Any] = {
    "heads": POSITIVE_INT,
    "window_size": triple(1),
    "mlp_ratio": POSITIVE_NUMBER,
    "dropout": PROBABILITY,
    "attention_dropout": PROBABILITY,
    "norm_eps": POSITIVE_NUMBER,
}


@register_layer(
    params={**_BLOCK_PARAMS, "shift_size": triple(0), "stochastic_depth": PROBABILITY},
    infer={"dim": features},
    accepts=[Layout.GRID],
    output=_attention_type,
)
class SwinBlock3d(nn.Module):
    """Pre-norm Swin block on a ``(T, H, W, D)`` grid: windowed attention, then an MLP, each
    added back through stochastic depth."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window_size: IntOrTriple = (8, 7, 7),
        shift_size: IntOrTriple = 0,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        stochastic_depth: float = 0.0,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = WindowAttention3d(
            dim,
            heads,
            window_size,
            shift_size,
            attention_dropout=attention_dropout,
            dropout=dropout,
        )
        self.stochastic_depth = StochasticDepth(stochastic_depth)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        hidden = int(dim * mlp_ratio)
        # Indices 0 and 3 hold the weights, as in torchvision's MLP.
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H, W, D)
        x = x + self.stochastic_depth(self.attn(self.norm1(x)))
        out: torch.Tensor = x + self.stochastic_depth(self.mlp(self.norm2(x)))
        return out


def _per_block(value: float | Sequence[float], depth: int) -> list[float]:
    if isinstance(value, int | float):
        return [float(value)] * depth
    rates = [float(v) for v in value]
    if len(rates) != depth:
        raise ShapeError(
            f"stochastic_depth lists {len(rates)} rates for depth={depth} blocks; give one "
            "rate per block or a single number for all"
        )
    return rates


_STAGE_PARAMS: dict[str, Any] = {
    **_BLOCK_PARAMS,
    "depth": POSITIVE_INT,
    "stochastic_depth": {
        "anyOf": [PROBABILITY, {"type": "array", "items": PROBABILITY, "minItems": 1}],
        "description": "drop probability of every block, or a list with one per block",
    },
}


@register_layer(
    params=_STAGE_PARAMS, infer={"dim": features}, accepts=[Layout.GRID], output=_stage_type
)
class SwinStage3d(nn.Sequential):
    """``depth`` Swin blocks of one width; odd-numbered blocks shift their windows by half a
    window (rounded down), so neighbouring windows exchange information."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        window_size: IntOrTriple = (8, 7, 7),
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        stochastic_depth: float | Sequence[float] = 0.0,
        norm_eps: float = 1e-5,
    ) -> None:
        window = as_triple(window_size)
        half = (window[0] // 2, window[1] // 2, window[2] // 2)
        rates = _per_block(stochastic_depth, depth)
        super().__init__(
            *(
                SwinBlock3d(
                    dim,
                    heads,
                    window,
                    half if index % 2 else 0,
                    mlp_ratio,
                    dropout,
                    attention_dropout,
                    rates[index],
                    norm_eps,
                )
                for index in range(depth)
            )
        )


@register_layer(
    params={"norm_eps": POSITIVE_NUMBER},
    infer={"dim": features},
    accepts=[Layout.GRID],
    output=_merging_type,
)
class SwinPatchMerging3d(nn.Module):
    """Merge each 2x2 spatial neighbourhood into one token: ``(T, H, W, D) -> (T, ceil(H/2),
    ceil(W/2), 2D)`` (layer norm on the 4D concatenation, then a linear map without bias).
    Time is kept; an odd H or W is zero-padded."""

    def __init__(self, dim: int, norm_eps: float = 1e-5) -> None:
        super().__init__()
        # Registered in torchvision's order, so the state dicts list keys in the same order.
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H, W, D)
        if x.dim() != 5:
            raise ValueError(f"expects a token grid (B, T, H, W, D), got {tuple(x.shape)}")
        h, w = x.shape[2], x.shape[3]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        # The concatenation order decides which weight columns see which neighbour; this is
        # the reference order: (even, even), (odd, even), (even, odd), (odd, odd) in (h, w).
        x = torch.cat(
            [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]],
            dim=-1,
        )  # (B, T, H/2, W/2, 4D)
        out: torch.Tensor = self.reduction(self.norm(x))  # (B, T, H/2, W/2, 2D)
        return out


def _int_list(description: str) -> dict[str, Any]:
    return {"type": "array", "items": POSITIVE_INT, "minItems": 1, "description": description}


@register_layer(
    params={
        "depths": _int_list("number of blocks in each stage"),
        "heads": _int_list("attention heads in each stage"),
        "window_size": triple(1),
        "mlp_ratio": POSITIVE_NUMBER,
        "dropout": PROBABILITY,
        "attention_dropout": PROBABILITY,
        "stochastic_depth": {
            **PROBABILITY,
            "description": "drop probability of the last block; it rises linearly from 0 at "
            "the first block across all stages",
        },
        "norm_eps": POSITIVE_NUMBER,
    },
    infer={"dim": features},
    accepts=[Layout.GRID],
    output=_encoder_type,
)
class SwinEncoder3d(nn.Sequential):
    """Swin stages with a patch merging between each pair (width doubles, H and W halve):
    children ``0, 2, 4, ...`` are ``SwinStage3d``, ``1, 3, ...`` are ``SwinPatchMerging3d``.
    Stochastic depth rises linearly over all blocks of all stages."""

    def __init__(
        self,
        dim: int,
        depths: Sequence[int],
        heads: Sequence[int],
        window_size: IntOrTriple = (8, 7, 7),
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        stochastic_depth: float = 0.1,
        norm_eps: float = 1e-5,
    ) -> None:
        if len(depths) != len(heads):
            raise ShapeError(
                f"depths {list(depths)} and heads {list(heads)} must list one value per stage"
            )
        total = sum(depths)
        rates = [stochastic_depth * float(i) / max(total - 1, 1) for i in range(total)]
        layers: list[nn.Module] = []
        first = 0
        for stage, (depth, stage_heads) in enumerate(zip(depths, heads, strict=True)):
            width = dim * 2**stage
            check_heads(width, stage_heads)
            stage_rates = rates[first : first + depth]
            first += depth
            layers.append(
                SwinStage3d(
                    width,
                    depth,
                    stage_heads,
                    window_size,
                    mlp_ratio,
                    dropout,
                    attention_dropout,
                    stage_rates,
                    norm_eps,
                )
            )
            if stage < len(depths) - 1:
                layers.append(SwinPatchMerging3d(width, norm_eps))
        super().__init__(*layers)


@register_layer(
    params={
        "dim": POSITIVE_INT,
        "patch_size": triple(1),
        "norm": {**BOOL, "description": "layer norm on the embedded tokens"},
        "norm_eps": POSITIVE_NUMBER,
    },
    infer={"in_channels": channels},
    accepts=[Layout.CLIP],
    output=_embed_type,
)
class SwinPatchEmbed3d(nn.Module):
    """Non-overlapping ``pT x pH x pW`` patches projected to ``dim``, channels last, then layer
    norm: ``(C, T, H, W) -> (ceil(T/pT), ceil(H/pH), ceil(W/pW), dim)``. A clip that is not a
    multiple of the patch is zero-padded at the end of each axis."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        patch_size: IntOrTriple = (2, 4, 4),
        norm: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.patch_size = as_triple(patch_size)
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm: nn.Module = nn.LayerNorm(dim, eps=norm_eps) if norm else nn.Identity()

    def adaptation_rules(self) -> dict[str, AdaptRule]:
        return {"proj.weight": ConvKernel(input_channels=reads_clip(self))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        if x.dim() != 5:
            raise ValueError(f"expects a clip batch (B, C, T, H, W), got {tuple(x.shape)}")
        pt, ph, pw = _pad_to_multiple((x.shape[2], x.shape[3], x.shape[4]), self.patch_size)
        if pt + ph + pw:
            x = F.pad(x, (0, pw, 0, ph, 0, pt))
        tokens: torch.Tensor = self.norm(self.proj(x).permute(0, 2, 3, 4, 1))  # (B, T', H', W', D)
        return tokens
