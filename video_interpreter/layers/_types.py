"""What flows along a spec's edges: one sample's layout and sizes (the batch dimension is never
part of it), and the arithmetic layers use to declare their output types.

Layouts (sizes in this order):

- ``clip``: a clip or a channels-first feature map ``(C, T, H, W)``;
- ``grid``: a channels-last token grid ``(T, H, W, D)``;
- ``tokens``: a token sequence ``(L, D)`` whose first ``prefix`` tokens (class tokens) lie off
  the grid; when known, ``grid`` is the ``(T, H, W)`` the other ``L - prefix`` tokens lie on;
- ``vector``: pooled features ``(F,)``.

Every registered layer declares which layouts it accepts and how its output type follows from
its input type and parameters; the builder propagates types through a spec with these
declarations alone, in plain Python.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Layout",
    "SampleType",
    "ShapeError",
    "channels",
    "clip",
    "conv_sizes",
    "features",
    "grid",
    "pool_sizes",
    "sample_dim",
    "tokens",
    "triple_of",
    "vector",
]


class ShapeError(ValueError):
    """A layer cannot take the type it is given, or its parameters do not fit that type."""


class Layout(enum.Enum):
    CLIP = "clip"
    GRID = "grid"
    TOKENS = "tokens"
    VECTOR = "vector"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Layout.CLIP: "a clip or feature map (C, T, H, W)",
    Layout.GRID: "a token grid (T, H, W, D)",
    Layout.TOKENS: "a token sequence (L, D)",
    Layout.VECTOR: "a vector (F,)",
}
_RANKS = {Layout.CLIP: 4, Layout.GRID: 4, Layout.TOKENS: 2, Layout.VECTOR: 1}
_NAMES = {
    Layout.CLIP: "a clip",
    Layout.GRID: "a token grid",
    Layout.TOKENS: "a token sequence",
    Layout.VECTOR: "a vector",
}


@dataclass(frozen=True)
class SampleType:
    """One sample's layout and sizes: what a layer takes or gives, without the batch."""

    layout: Layout
    sizes: tuple[int, ...]
    prefix: int = 0
    token_grid: tuple[int, int, int] | None = None
    # Which node gave it, for messages (``backbone[0] (TubeletEmbedding)``); not part of the type.
    origin: str | None = field(default=None, compare=False)
    # The model's input clip, or values picked from it (a slow pathway's every 4th frame): a
    # layer reading it is a stem. Not part of the type.
    from_clip: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        rank = _RANKS[self.layout]
        if len(self.sizes) != rank:
            raise ShapeError(
                f"{self.layout.description} has {rank} sizes, got {len(self.sizes)}: "
                f"{tuple(self.sizes)}"
            )
        if any(size < 1 for size in self.sizes):
            raise ShapeError(f"a dimension of {self} is not positive")

    @property
    def rank(self) -> int:
        return len(self.sizes)

    def __str__(self) -> str:
        text = f"{_NAMES[self.layout]} {format_sizes(self.sizes)}"
        if self.prefix:
            text += f" with {self.prefix} class token{'s' if self.prefix > 1 else ''}"
        return text


def format_sizes(sizes: Sequence[int]) -> str:
    return "(" + ", ".join(str(n) for n in sizes) + ("," if len(sizes) == 1 else "") + ")"


def clip(c: int, t: int, h: int, w: int) -> SampleType:
    """One clip ``(C, T, H, W)``: channels, frames, height, width.

    Examples:
        >>> from video_interpreter.layers import clip
        >>> clip(3, 16, 112, 112).sizes
        (3, 16, 112, 112)
    """
    return SampleType(Layout.CLIP, (c, t, h, w))


def grid(t: int, h: int, w: int, d: int) -> SampleType:
    """Tokens on a grid ``(T, H, W, D)``, channels last (between transformer nodes).

    Examples:
        >>> from video_interpreter.layers import grid
        >>> grid(8, 7, 7, 96).sizes
        (8, 7, 7, 96)
    """
    return SampleType(Layout.GRID, (t, h, w, d))


def tokens(
    length: int, dim: int, *, prefix: int = 0, token_grid: Sequence[int] | None = None
) -> SampleType:
    """A sequence ``(L, D)`` of tokens; ``prefix`` of them (class tokens) lead the ``token_grid``.

    Examples:
        >>> from video_interpreter.layers import tokens
        >>> tokens(393, 96, prefix=1).sizes
        (393, 96)
    """
    on_grid = None if token_grid is None else triple_of(token_grid)
    if on_grid is not None and length != prefix + math.prod(on_grid):
        raise ShapeError(f"{length} tokens do not fit {prefix} + the grid {list(on_grid)}")
    return SampleType(Layout.TOKENS, (length, dim), prefix, on_grid)


def vector(features: int) -> SampleType:
    """A feature vector ``(F,)`` (pooled features, logits).

    Examples:
        >>> from video_interpreter.layers import vector
        >>> vector(400).sizes
        (400,)
    """
    return SampleType(Layout.VECTOR, (features,))


def channels(sample: SampleType) -> int:
    """Channels of a clip or feature map ``(C, T, H, W)``, or the size of a vector ``(F,)``.

    Examples:
        >>> from video_interpreter.layers import channels, clip
        >>> channels(clip(3, 16, 112, 112))
        3
    """
    if sample.layout not in (Layout.CLIP, Layout.VECTOR):
        raise ShapeError(f"channels are read from a clip or a vector, got {sample}")
    return sample.sizes[0]


def features(sample: SampleType) -> int:
    """The last dimension: ``D`` of a token grid or sequence, ``F`` of a vector.

    Examples:
        >>> from video_interpreter.layers import features, tokens, vector
        >>> features(vector(400)), features(tokens(8, 96))
        (400, 96)
    """
    if sample.layout is Layout.CLIP:
        raise ShapeError(f"features are the last dimension of tokens or a vector, got {sample}")
    return sample.sizes[-1]


def sample_dim(dim: int, sample: SampleType, what: str) -> int:
    """``dim`` (counted within one sample: 0 is its first dimension, -1 its last) as a
    non-negative index, or a ShapeError naming the valid range."""
    if not -sample.rank <= dim < sample.rank:
        raise ShapeError(
            f"{what} {dim} is out of range for {sample}: a sample has {sample.rank} "
            f"dimension{'s' if sample.rank > 1 else ''} (the batch is not counted), so valid "
            f"values are {-sample.rank}..{sample.rank - 1}"
        )
    return dim % sample.rank


def triple_of(value: Any) -> tuple[int, int, int]:
    """An integer for all of T, H, W, or a sequence of three."""
    if isinstance(value, int):
        return (value, value, value)
    t, h, w = (int(v) for v in value)
    return (t, h, w)


def _positive(sizes: Sequence[int], what: str, before: SampleType | Sequence[int]) -> None:
    if min(sizes) < 1:
        shown = before if isinstance(before, SampleType) else format_sizes(before)
        raise ShapeError(
            f"{what} collapses {shown} to {format_sizes(sizes)}: use a smaller kernel or "
            "stride, more padding, or a larger input"
        )


def conv_sizes(
    sizes: Sequence[int],
    kernel: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    *,
    what: str = "the convolution",
) -> tuple[int, int, int]:
    """T, H, W after a 3D convolution (torch's formula); ``padding`` may be ``'same'`` or
    ``'valid'``."""
    k, s, d = triple_of(kernel), triple_of(stride), triple_of(dilation)
    if padding == "same":
        if s != (1, 1, 1):
            raise ShapeError(f"{what}: padding 'same' needs stride 1, got {list(s)}")
        t, h, w = sizes
        return (t, h, w)
    p = (0, 0, 0) if padding == "valid" else triple_of(padding)
    out = [
        (n + 2 * pi - di * (ki - 1) - 1) // si + 1
        for n, ki, si, pi, di in zip(sizes, k, s, p, d, strict=True)
    ]
    _positive(out, what, sizes)
    return (out[0], out[1], out[2])


def pool_sizes(
    sizes: Sequence[int],
    kernel: Any,
    stride: Any,
    padding: Any,
    dilation: Any = 1,
    *,
    ceil_mode: bool = False,
    average: bool = False,
    what: str = "the pooling",
) -> tuple[int, int, int]:
    """T, H, W after a 3D max or (``average``) average pool, with torch's checks: padding at
    most half the kernel, an average pool's input no smaller than its kernel, and in ceil mode
    a last window that starts inside the input or its left padding."""
    k = triple_of(kernel)
    s = k if stride is None else triple_of(stride)
    p, d = triple_of(padding), triple_of(dilation)
    if any(2 * pi > ki for pi, ki in zip(p, k, strict=True)):
        raise ShapeError(f"{what}: padding {list(p)} must be at most half the kernel {list(k)}")
    if average and any(n < ki for n, ki in zip(sizes, k, strict=True)):
        raise ShapeError(f"{what}: the input {list(sizes)} is smaller than the kernel {list(k)}")
    out = []
    for n, ki, si, pi, di in zip(sizes, k, s, p, d, strict=True):
        span = n + 2 * pi - di * (ki - 1) - 1
        count = (-(-span // si) if ceil_mode else span // si) + 1
        if ceil_mode and (count - 1) * si >= n + pi:
            count -= 1
        out.append(count)
    _positive(out, what, sizes)
    return (out[0], out[1], out[2])
