"""Shape-only answers for meta-device ops, shared by shape probing and summaries; and the
meta-device context modules are built in.

Several meta kernels (batch and layer norm, linear, GELU, softmax, matmul on batched operands)
run through slow Python decompositions, and some (convolution, batched matmul under einsum,
broadcasting) import torch's symbolic-shape machinery, sympy included, on their first call
(about 0.4 s per process); inside ``MetaShortcuts`` those ops on meta tensors are answered with
an empty tensor of the output shape, after the same checks torch would make. Probing a whole
model drops from about 100 ms to a few.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import DeviceContext

from ._shapes import per_dim, pooled_sizes, sliding_sizes

__all__ = ["MetaConstruction", "MetaShortcuts", "plain_checks"]


# torch._check(cond) imports torch's symbolic-shape machinery (sympy included, about 0.4 s) on
# its first call, even for a plain True; torch's Python meta kernels call it for every check.
_torch_check_with: Any = getattr(torch, "_check_with", None)
_plain_checks_lock = threading.Lock()
_plain_checks_depth = 0


def _check_with_plain_bools(error_type: Any, cond: Any, message: Any = None) -> None:
    if cond is True:
        return
    _torch_check_with(error_type, cond, message)  # torch's own handling and error


@contextlib.contextmanager
def plain_checks() -> Iterator[None]:
    """Within the block, a ``torch._check`` of a plain ``True`` returns at once; any other
    condition (False, a symbolic one) goes to torch's own, so the errors are torch's.

    Building a model runs torch's Python meta kernels, and their checks would make the first
    build in a process import sympy; this keeps a first MViT or Swin build about 0.4 s shorter.
    """
    global _plain_checks_depth
    if _torch_check_with is None:  # a torch without the hook: nothing to shorten
        yield
        return
    with _plain_checks_lock:
        _plain_checks_depth += 1
        torch._check_with = _check_with_plain_bools
    try:
        yield
    finally:
        with _plain_checks_lock:
            _plain_checks_depth -= 1
            if _plain_checks_depth == 0:
                torch._check_with = _torch_check_with


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


def _broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    """``torch.broadcast_shapes`` in plain Python: torch's own imports its symbolic-shape
    machinery (sympy included, about 0.4 s) on first use."""
    result: list[int] = []
    for axis in range(1, max((len(s) for s in shapes), default=0) + 1):
        sizes = {s[-axis] for s in shapes if len(s) >= axis} - {1}
        if len(sizes) > 1:
            described = " and ".join(str(tuple(s)) for s in shapes)
            raise RuntimeError(
                f"shape mismatch: {described} cannot be broadcast to a single shape "
                f"(sizes {sorted(sizes)} at dimension {-axis})"
            )
        result.append(sizes.pop() if sizes else 1)
    return tuple(reversed(result))


def _matmul(a: torch.Tensor, b: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    if a.dim() < 2 or b.dim() < 2 or args or kwargs:
        return torch.matmul(a, b, *args, **kwargs)  # vectors and out=: torch's own rules
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(
            f"matmul: {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
            f"({a.shape[-1]} != {b.shape[-2]})"
        )
    batch = _broadcast(a.shape[:-2], b.shape[:-2])
    return a.new_empty((*batch, a.shape[-2], b.shape[-1]))


def _einsum(equation: str, *operands: Any) -> torch.Tensor:
    """``torch.einsum`` with an explicit output and one letter per dimension; anything else
    (``...``, an implicit output, a repeated output letter, a size misfit) is left to torch."""
    tensors = (
        operands[0] if len(operands) == 1 and isinstance(operands[0], list | tuple) else operands
    )
    inputs, arrow, output = equation.replace(" ", "").partition("->")
    terms = inputs.split(",")
    sizes: dict[str, int] = {}
    simple = (
        bool(arrow)
        and (inputs + output).replace(",", "").isalpha()
        and len(set(output)) == len(output)
        and len(terms) == len(tensors)
        and all(isinstance(t, torch.Tensor) for t in tensors)
        and all(len(term) == t.dim() for term, t in zip(terms, tensors, strict=False))
    )
    if simple:
        for term, tensor in zip(terms, tensors, strict=True):
            for letter, size in zip(term, tensor.shape, strict=True):
                if sizes.setdefault(letter, size) != size:
                    simple = False
    if not simple or any(letter not in sizes for letter in output):
        return torch.einsum(equation, *operands)
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    result: torch.Tensor = tensors[0].new_empty([sizes[c] for c in output], dtype=dtype)
    return result


def _convolution(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> torch.Tensor:
    """F.conv1d/2d/3d of a batch; anything else (string padding, no batch dimension, a misfit)
    is left to torch, so its errors are torch's own."""
    dims = weight.dim() - 2
    step, pad, spread = (per_dim(v, dims) for v in (stride, padding, dilation))
    fits = (
        x.dim() == dims + 2
        and x.shape[1] == weight.shape[1] * groups
        and (bias is None or tuple(bias.shape) == (weight.shape[0],))
    )
    if fits and step is not None and pad is not None and spread is not None:
        sizes = sliding_sizes(tuple(x.shape[2:]), weight.shape[2:], step, pad, spread)
        if min(sizes) >= 1:
            return x.new_empty((x.shape[0], weight.shape[0], *sizes))
    convolve = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    return convolve(x, weight, bias, stride, padding, dilation, groups)


def _max_pool(
    x: torch.Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """F.max_pool1d/2d/3d of a batch without indices; anything else is left to torch."""
    dims = x.dim() - 2
    sizes = None
    if 1 <= dims <= 3 and not return_indices:
        sizes = pooled_sizes(tuple(x.shape[2:]), kernel_size, stride, padding, dilation, ceil_mode)
    if sizes is None:
        pool: Any = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[min(max(dims, 1), 3) - 1]
        return pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    return x.new_empty((*x.shape[:2], *sizes))


def _elementwise(a: torch.Tensor, b: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    shape = _broadcast(a.shape, b.shape if isinstance(b, torch.Tensor) else ())
    return a.new_empty(shape, dtype=torch.result_type(a, b))


def _comparison(a: torch.Tensor, b: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    shape = _broadcast(a.shape, b.shape if isinstance(b, torch.Tensor) else ())
    return a.new_empty(shape, dtype=torch.bool)


def _elementwise_inplace(a: torch.Tensor, b: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    if isinstance(b, torch.Tensor) and _broadcast(a.shape, b.shape) != tuple(a.shape):
        raise RuntimeError(
            f"output with shape {tuple(a.shape)} doesn't match the broadcast shape "
            f"{_broadcast(a.shape, b.shape)}"
        )
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
    F.max_pool1d: _max_pool,
    F.max_pool2d: _max_pool,
    F.max_pool3d: _max_pool,
}
# Ops that do multiply-accumulate: answered by shape only where nothing is being counted.
_FLOPS: dict[Any, Any] = {
    F.conv1d: _convolution,
    F.conv2d: _convolution,
    F.conv3d: _convolution,
    F.linear: _linear,
    F.scaled_dot_product_attention: _attention,
    torch.matmul: _matmul,
    torch.Tensor.matmul: _matmul,
    torch.Tensor.__matmul__: _matmul,
    torch.einsum: _einsum,
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
        if isinstance(first, str) and len(args) > 1:  # torch.einsum's equation
            first = args[1][0] if isinstance(args[1], list | tuple) and args[1] else args[1]
        if isinstance(first, list | tuple) and first:  # torch.cat's sequence of tensors
            if not all(isinstance(t, torch.Tensor) and t.is_meta for t in first):
                return func(*args, **kwargs)
            first = first[0]
        if rule is None or not isinstance(first, torch.Tensor) or not first.is_meta:
            return func(*args, **kwargs)
        out = kwargs.get("out")
        if out is first and rule is _same_shape and "dtype" not in kwargs:
            return out  # in place, as Swin's softmax: same shape, same tensor
        if "dtype" in kwargs or out is not None:
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
