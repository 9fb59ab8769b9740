"""Shape-only answers for meta-device ops, shared by shape probing and summaries; and the
meta-device context modules are built in.

Several meta kernels (batch and layer norm, linear, GELU, softmax, matmul on batched operands)
run through slow Python decompositions; inside ``MetaShortcuts`` those ops on meta tensors are
answered with an empty tensor of the output shape, after the same checks torch would make.
Probing a whole model drops from about 100 ms to a few.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import DeviceContext

__all__ = ["MetaConstruction", "MetaShortcuts"]


def _same_shape(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return x.new_empty(x.shape)


def _norm(x: torch.Tensor, size: int, weight: torch.Tensor | None, what: str) -> torch.Tensor:
    if weight is not None and weight.shape[0] != size:
        raise RuntimeError(f"{what} expects {weight.shape[0]} channels, got {size}")
    return x.new_empty(x.shape)


def _batch_norm(
    x: torch.Tensor,
    mean: torch.Tensor | None,
    var: Any,
    weight: Any = None,
    *args: Any,
    **kwargs: Any,
) -> torch.Tensor:
    return _norm(x, x.shape[1], weight if weight is not None else mean, "batch norm")


def _group_norm(
    x: torch.Tensor, groups: int, weight: Any = None, *args: Any, **kwargs: Any
) -> torch.Tensor:
    if x.shape[1] % groups:
        raise RuntimeError(
            f"group norm: {x.shape[1]} channels are not divisible by {groups} groups"
        )
    return _norm(x, x.shape[1], weight, "group norm")


def _layer_norm(
    x: torch.Tensor, normalized_shape: Sequence[int], *args: Any, **kwargs: Any
) -> torch.Tensor:
    if tuple(x.shape[-len(normalized_shape) :]) != tuple(normalized_shape):
        raise RuntimeError(
            f"layer norm over {tuple(normalized_shape)} got input {tuple(x.shape[1:])}"
        )
    return x.new_empty(x.shape)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: Any = None) -> torch.Tensor:
    if x.shape[-1] != weight.shape[1]:
        raise RuntimeError(f"linear layer expects {weight.shape[1]} features, got {x.shape[-1]}")
    return x.new_empty((*x.shape[:-1], weight.shape[0]))


def _attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args: Any, **kwargs: Any
) -> torch.Tensor:
    if k.shape[-2] != v.shape[-2] or q.shape[-1] != k.shape[-1]:
        raise RuntimeError(
            f"attention shapes q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"v {tuple(v.shape)} do not fit"
        )
    return q.new_empty((*q.shape[:-1], v.shape[-1]))


def _matmul(a: torch.Tensor, b: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    if a.dim() < 2 or b.dim() < 2 or args or kwargs:
        return torch.matmul(a, b, *args, **kwargs)  # vectors and out=: torch's own rules
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(
            f"matmul: {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
            f"({a.shape[-1]} != {b.shape[-2]})"
        )
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])  # type: ignore[no-untyped-call]
    return a.new_empty((*batch, a.shape[-2], b.shape[-1]))


def _elementwise(a: torch.Tensor, b: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    shape = torch.broadcast_shapes(  # type: ignore[no-untyped-call]
        a.shape, b.shape if isinstance(b, torch.Tensor) else ()
    )
    return a.new_empty(shape, dtype=torch.result_type(a, b))


def _comparison(a: torch.Tensor, b: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    shape = torch.broadcast_shapes(  # type: ignore[no-untyped-call]
        a.shape, b.shape if isinstance(b, torch.Tensor) else ()
    )
    return a.new_empty(shape, dtype=torch.bool)


def _elementwise_inplace(a: torch.Tensor, b: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    if isinstance(b, torch.Tensor):
        torch.broadcast_shapes(a.shape, b.shape)  # type: ignore[no-untyped-call]
    return a


def _reduction(x: torch.Tensor, dim: Any = None, keepdim: bool = False) -> torch.Tensor:
    if dim is None:
        return x.new_empty(())
    dims = {d % x.dim() for d in ((dim,) if isinstance(dim, int) else dim)}
    shape = [1 if i in dims else n for i, n in enumerate(x.shape) if keepdim or i not in dims]
    return x.new_empty(shape)


def _cat(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    first = tensors[0]
    axis = dim % first.dim()
    for other in tensors[1:]:
        if other.dim() != first.dim() or any(
            a != b
            for i, (a, b) in enumerate(zip(first.shape, other.shape, strict=True))
            if i != axis
        ):
            raise RuntimeError(
                f"cat: sizes {tuple(first.shape)} and {tuple(other.shape)} differ outside "
                f"dimension {dim}"
            )
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in tensors)
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    return first.new_empty(shape, dtype=dtype)


def _methods(*names: str) -> list[Any]:
    """A tensor method as ``__torch_function__`` may see it: torch.Tensor's wrapper or the
    C method it wraps (``a != b`` arrives as ``TensorBase.ne``)."""
    found: list[Any] = []
    for name in names:
        for owner in (torch.Tensor, torch._C.TensorBase):
            method = getattr(owner, name, None)
            if method is not None and method not in found:
                found.append(method)
    return found


# Elementwise arithmetic on meta tensors runs Python meta kernels whose first call makes torch
# import its compiler stack (about 1 s and 80 MB once per process); these need only broadcasting.
_ARITHMETIC: dict[Any, Any] = {
    **dict.fromkeys(
        [
            torch.add,
            torch.sub,
            torch.mul,
            torch.div,
            *_methods(
                "add",
                "sub",
                "mul",
                "div",
                "__add__",
                "__radd__",
                "__sub__",
                "__mul__",
                "__rmul__",
                "__truediv__",
            ),
        ],
        _elementwise,
    ),
    **dict.fromkeys(
        _methods(
            "add_", "sub_", "mul_", "div_", "__iadd__", "__isub__", "__imul__", "__itruediv__"
        ),
        _elementwise_inplace,
    ),
    **dict.fromkeys(
        [
            torch.eq,
            torch.ne,
            *_methods(
                "eq",
                "ne",
                "lt",
                "le",
                "gt",
                "ge",
                "__eq__",
                "__ne__",
                "__lt__",
                "__le__",
                "__gt__",
                "__ge__",
            ),
        ],
        _comparison,
    ),
    **dict.fromkeys([torch.mean, torch.sum, *_methods("mean", "sum")], _reduction),
}

# Ops with no multiply-accumulates: the flop counter has no formula for them.
_NO_FLOPS: dict[Any, Any] = {
    F.batch_norm: _batch_norm,
    F.group_norm: _group_norm,
    F.layer_norm: _layer_norm,
    **dict.fromkeys(
        (
            F.instance_norm,
            F.gelu,
            F.silu,
            F.mish,
            F.hardswish,
            F.relu,
            F.relu6,
            F.dropout,
            F.dropout1d,
            F.dropout2d,
            F.dropout3d,
            F.softmax,
            torch.relu,
            torch.sigmoid,
            torch.softmax,
            torch.roll,
            *_methods("softmax"),
        ),
        _same_shape,
    ),
    **_ARITHMETIC,
    torch.cat: _cat,
}
# Ops that do multiply-accumulate: answered by shape only where nothing is being counted.
_FLOPS: dict[Any, Any] = {
    F.linear: _linear,
    F.scaled_dot_product_attention: _attention,
    torch.matmul: _matmul,
    torch.Tensor.matmul: _matmul,
    torch.Tensor.__matmul__: _matmul,
}


class MetaShortcuts(TorchFunctionMode):
    """Answer slow meta-device ops on meta tensors by their output shape.

    With ``count_flops=True`` (summaries) only ops without multiply-accumulates are answered, so
    ``FlopCounterMode`` still sees every matmul, linear and attention; with ``False`` (shape
    probing while building) those are answered too.
    """

    def __init__(self, *, count_flops: bool) -> None:
        super().__init__()
        self._rules = _NO_FLOPS if count_flops else {**_NO_FLOPS, **_FLOPS}

    def __torch_function__(
        self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        rule = self._rules.get(func)
        first = args[0] if args else None
        if isinstance(first, list | tuple) and first:  # torch.cat's sequence of tensors
            if not all(isinstance(t, torch.Tensor) and t.is_meta for t in first):
                return func(*args, **kwargs)
            first = first[0]
        if (
            rule is None
            or not isinstance(first, torch.Tensor)
            or not first.is_meta
            or "dtype" in kwargs
            or "out" in kwargs
        ):
            return func(*args, **kwargs)
        if kwargs.get("inplace"):
            return first
        return rule(*args, **kwargs)


# What layers call to fill their tensors when constructed: nothing to do on meta tensors.
_FILLS = frozenset(
    {
        nn.init.uniform_,
        nn.init.normal_,
        nn.init.constant_,
        nn.init.kaiming_uniform_,
        *_methods(
            "uniform_",
            "normal_",
            "zero_",
            "fill_",
            "erfinv_",
            "clamp_",
            "random_",
            "exponential_",
        ),
    }
)
# In-place arithmetic skipped only with a number operand (trunc_normal_'s mul_ and add_).
_SCALAR_UPDATES = frozenset(_methods("mul_", "add_"))
# Factories of tensors whose values a meta tensor would not hold anyway; on meta, torch.zeros
# runs a Python meta kernel (a fifth of building S3D, through every batch norm's buffers).
_VALUE_FACTORIES = frozenset({torch.zeros, torch.ones})


class MetaConstruction(DeviceContext):
    """``torch.device("meta")`` that also skips filling meta tensors with values.

    Constructors draw initial values (``reset_parameters``); on meta there are none to draw, but
    torch still runs each fill, several through Python decompositions. Skipping them makes
    building a module on meta a third cheaper. A fill is skipped only on a meta tensor. For the
    same reason ``torch.zeros`` and ``torch.ones`` on meta are answered by ``torch.empty``.
    """

    def __init__(self) -> None:
        super().__init__("meta")

    def __torch_function__(
        self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None
    ) -> Any:
        if func in _VALUE_FACTORIES:
            given = kwargs or {}
            device = given.get("device")
            if "out" not in given and (device is None or torch.device(device).type == "meta"):
                return torch.empty(*args, **{**given, "device": self.device})
        first = args[0] if args else (kwargs or {}).get("tensor")
        if isinstance(first, torch.Tensor) and first.is_meta:
            if func in _FILLS:
                return first
            if func in _SCALAR_UPDATES and len(args) == 2 and isinstance(args[1], int | float):
                return first
        return super().__torch_function__(func, types, args, kwargs)  # type: ignore[no-untyped-call]
