"""Output shapes of common torch modules by arithmetic, so the builder can skip probing them.

``known_output_shape`` answers for convolutions with numeric padding, max and average pools,
adaptive average pools, batch norms, element-wise activations, dropout, identity, linear layers
on feature vectors, and ``nn.Sequential`` chains of those. For anything else, and for any input
those modules would refuse or collapse to zero, it answers None and the builder probes the module
on the meta device, which gives torch's own error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ._registry import Shape

__all__ = ["known_output_shape", "per_dim", "pooled_sizes", "sliding_sizes"]

_SAME_SHAPE = (
    nn.Identity,
    nn.Dropout,
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
)

ShapeRule = Callable[[nn.Module, Shape], Shape | None]


def per_dim(value: Any, dims: int) -> tuple[int, ...] | None:
    """An int or a sequence of ints as one int per dimension; None for anything else (a padding
    of 'same', a sequence of another length)."""
    if isinstance(value, int):
        return (value,) * dims
    if isinstance(value, str) or not isinstance(value, Sequence):
        return None
    out = tuple(value)
    return out if len(out) == dims and all(isinstance(n, int) for n in out) else None


def sliding_sizes(
    sizes: Shape,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool = False,
) -> tuple[int, ...]:
    """Output sizes of a sliding window, as torch computes them for convolutions and pools."""
    out = []
    for size, k, s, p, d in zip(sizes, kernel, stride, padding, dilation, strict=True):
        span = size + 2 * p - d * (k - 1) - 1
        n = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (n - 1) * s >= size + p:  # the last window must start inside
            n -= 1
        out.append(n)
    return tuple(out)


def _conv(module: nn.Module, shape: Shape) -> Shape | None:
    assert isinstance(module, nn.modules.conv._ConvNd)
    if isinstance(module.padding, str) or shape[0] != module.in_channels:
        return None
    sizes = sliding_sizes(
        shape[1:], module.kernel_size, module.stride, module.padding, module.dilation
    )
    return (module.out_channels, *sizes)


def pooled_sizes(
    sizes: Shape,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any = 1,
    ceil_mode: bool = False,
    average: bool = False,
) -> tuple[int, ...] | None:
    """Output sizes of a max (or ``average``) pool over ``sizes``; None wherever torch would
    refuse or collapse a dimension, so its own error can be raised."""
    dims = len(sizes)
    kernel = per_dim(kernel_size, dims)
    step = per_dim(stride or kernel_size, dims)
    pad = per_dim(padding, dims)
    spread = per_dim(dilation, dims)
    if kernel is None or step is None or pad is None or spread is None:
        return None
    if any(2 * p > k for p, k in zip(pad, kernel, strict=True)):
        return None  # torch refuses padding over half the kernel
    if average and any(n < d * (k - 1) + 1 for n, k, d in zip(sizes, kernel, spread, strict=True)):
        return None  # average pools refuse an input smaller than the kernel, padding or not
    out = sliding_sizes(sizes, kernel, step, pad, spread, ceil_mode)
    return out if min(out) >= 1 else None


def _pool(module: nn.Module, shape: Shape) -> Shape | None:
    pool: Any = module  # torch leaves the pooling attributes untyped
    if getattr(pool, "return_indices", False):
        return None
    sizes = pooled_sizes(
        shape[1:],
        pool.kernel_size,
        pool.stride,
        pool.padding,
        getattr(pool, "dilation", 1),
        bool(pool.ceil_mode),
        average=isinstance(module, nn.modules.pooling._AvgPoolNd),
    )
    return None if sizes is None else (shape[0], *sizes)


def _adaptive_avg(module: nn.Module, shape: Shape) -> Shape | None:
    assert isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd)
    dims = len(shape) - 1
    wanted = module.output_size
    target = (wanted,) * dims if isinstance(wanted, int) or wanted is None else tuple(wanted)
    if len(target) != dims:
        return None
    sizes = (size if t is None else t for size, t in zip(shape[1:], target, strict=True))
    return (shape[0], *sizes)


def _batch_norm(module: nn.Module, shape: Shape) -> Shape | None:
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    return shape if shape[0] == module.num_features else None


def _linear(module: nn.Module, shape: Shape) -> Shape | None:
    assert isinstance(module, nn.Linear)
    return (module.out_features,) if tuple(shape) == (module.in_features,) else None


def _same(module: nn.Module, shape: Shape) -> Shape | None:
    return shape


def _sequential(module: nn.Module, shape: Shape) -> Shape | None:
    assert isinstance(module, nn.Sequential)
    out: Shape | None = shape
    for child in module:
        out = known_output_shape(child, out)
        if out is None:
            return None
    return out


# Exact class -> (rule, the length of the shape without batch it takes; None: any).
_RULES: dict[type[nn.Module], tuple[ShapeRule, int | None]] = {
    nn.Conv1d: (_conv, 2),
    nn.Conv2d: (_conv, 3),
    nn.Conv3d: (_conv, 4),
    nn.MaxPool1d: (_pool, 2),
    nn.MaxPool2d: (_pool, 3),
    nn.MaxPool3d: (_pool, 4),
    nn.AvgPool1d: (_pool, 2),
    nn.AvgPool2d: (_pool, 3),
    nn.AvgPool3d: (_pool, 4),
    nn.AdaptiveAvgPool1d: (_adaptive_avg, 2),
    nn.AdaptiveAvgPool2d: (_adaptive_avg, 3),
    nn.AdaptiveAvgPool3d: (_adaptive_avg, 4),
    nn.BatchNorm2d: (_batch_norm, 3),
    nn.BatchNorm3d: (_batch_norm, 4),
    nn.Linear: (_linear, 1),
    **dict.fromkeys(_SAME_SHAPE, (_same, None)),
}


def known_output_shape(module: nn.Module, in_shape: Shape | None) -> Shape | None:
    """The shape (without batch) ``module`` returns for inputs of ``in_shape``, when plain
    arithmetic knows it; None otherwise. Only exact torch classes are answered, and
    ``nn.Sequential`` subclasses that keep its ``forward``: a subclass with a ``forward`` of its
    own may do anything."""
    if not in_shape:
        return None
    kind = type(module)
    if kind in _RULES:
        rule, length = _RULES[kind]
        out = rule(module, in_shape) if length is None or len(in_shape) == length else None
    elif isinstance(module, nn.Sequential) and kind.forward is nn.Sequential.forward:
        out = _sequential(module, in_shape)
    else:
        return None
    if out is None or any(size <= 0 for size in out):
        return None
    return tuple(out)
