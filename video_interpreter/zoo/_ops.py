"""The tensor side of each transform: forward (source -> model) and inverse (model -> source).

Each function takes the tensors of one application in the order the entry names them and
returns the tensors it produces, or raises ``OpError`` saying what does not fit (shapes named).
Outputs never share storage with one another (``clone`` after a split, ``contiguous`` after an
expand), so a converted state dict saves as safetensors. Tensors on the meta device pass
through shape checks only: export checks itself by mapping meta tensors forward again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ._keymap import Transform

__all__ = ["FORWARD", "INVERSE", "OpError", "inverse_problem"]

Tensors = list[torch.Tensor]


class OpError(ValueError):
    """An application of a transform that does not fit its tensors (the engine adds where)."""


def _shape(tensor: torch.Tensor) -> str:
    dims = tuple(tensor.shape)
    return "(" + ", ".join(str(n) for n in dims) + ("," if len(dims) == 1 else "") + ")"


def _dim(dim: int, ndim: int, what: str) -> int:
    """``dim`` made non-negative for a tensor (or result) of ``ndim`` dimensions."""
    if not -ndim <= dim < ndim:
        raise OpError(f"dim {dim} is out of range for {what} ({ndim} dimensions)")
    return dim % ndim


def _sizes(t: Transform, total: int, count: int, what: str) -> list[int]:
    """The sizes a split (or concat's inverse) cuts ``total`` into."""
    if t.sizes is not None:
        if sum(t.sizes) != total:
            raise OpError(f"sizes {list(t.sizes)} add up to {sum(t.sizes)}, {what} has {total}")
        return list(t.sizes)
    if total % count:
        raise OpError(f"{what} has {total} along dim {t.dim}, which {count} equal parts do not cut")
    return [total // count] * count


def _same_kind(tensors: Sequence[torch.Tensor], dim: int) -> None:
    first = tensors[0]
    for other in tensors[1:]:
        if other.dtype != first.dtype:
            raise OpError(f"dtypes differ ({first.dtype} and {other.dtype}); they must agree")
        rest = [n for i, n in enumerate(other.shape) if i != dim]
        if other.dim() != first.dim() or rest != [n for i, n in enumerate(first.shape) if i != dim]:
            shapes = ", ".join(_shape(x) for x in tensors)
            raise OpError(f"shapes {shapes} differ outside dim {dim}")


def _concat(t: Transform, tensors: Tensors) -> Tensors:
    dim = _dim(t.dim, tensors[0].dim(), f"a tensor of shape {_shape(tensors[0])}")
    _same_kind(tensors, dim)
    sizes = [x.shape[dim] for x in tensors]
    if t.sizes is not None and list(t.sizes) != sizes:
        raise OpError(
            f"the inputs have sizes {sizes} along dim {t.dim}, sizes says {list(t.sizes)}"
        )
    if t.sizes is None and len(set(sizes)) > 1:
        raise OpError(
            f"the inputs have sizes {sizes} along dim {t.dim}; unequal parts need sizes: "
            f"{sizes} in the entry, so export can cut them apart again"
        )
    return [torch.cat(tensors, dim)]


def _split(t: Transform, tensors: Tensors) -> Tensors:
    (whole,) = tensors
    dim = _dim(t.dim, whole.dim(), f"a tensor of shape {_shape(whole)}")
    count = len(t.outputs)
    sizes = _sizes(t, whole.shape[dim], count, f"the tensor {_shape(whole)}")
    return [part.clone() for part in torch.split(whole, sizes, dim)]


def _reshape(t: Transform, tensors: Tensors) -> Tensors:
    (tensor,) = tensors
    assert t.shape is not None  # the schema requires it
    if t.source_shape is not None and tuple(tensor.shape) != t.source_shape:
        raise OpError(f"the tensor is {_shape(tensor)}, source_shape says {list(t.source_shape)}")
    try:
        return [tensor.reshape(t.shape)]
    except RuntimeError:
        raise OpError(
            f"cannot reshape {_shape(tensor)} ({tensor.numel()} elements) to {list(t.shape)}"
        ) from None


def _unsqueeze(t: Transform, tensors: Tensors) -> Tensors:
    (tensor,) = tensors
    dim = _dim(t.dim, tensor.dim() + 1, f"the result of unsqueezing {_shape(tensor)}")
    return [tensor.unsqueeze(dim)]


def _expand(t: Transform, tensors: Tensors) -> Tensors:
    (tensor,) = tensors
    if t.new:
        dim = _dim(t.dim, tensor.dim() + 1, f"the result of expanding {_shape(tensor)}")
        tensor = tensor.unsqueeze(dim)
    else:
        dim = _dim(t.dim, tensor.dim(), f"a tensor of shape {_shape(tensor)}")
        if tensor.shape[dim] != 1:
            raise OpError(
                f"dim {t.dim} of {_shape(tensor)} has size {tensor.shape[dim]}; new: false "
                "repeats a size-1 dim"
            )
    sizes = list(tensor.shape)
    sizes[dim] = t.size
    return [tensor.expand(sizes).contiguous()]


def _full(t: Transform, like: torch.Tensor | None) -> torch.Tensor:
    assert t.value is not None
    if like is not None:
        dtype, shape, device = like.dtype, tuple(like.shape), like.device
    else:
        assert t.shape is not None  # checked on reading: like or shape
        dtype, shape, device = getattr(torch, t.dtype or "float32"), t.shape, torch.device("cpu")
    if not dtype.is_floating_point and not float(t.value).is_integer():
        raise OpError(f"value {t.value} is not an integer, and the tensor is {dtype}")
    try:
        return torch.full(shape, t.value, dtype=dtype, device=device)
    except RuntimeError:
        raise OpError(f"value {t.value} does not fit {dtype}") from None


def _copy(t: Transform, tensors: Tensors) -> Tensors:
    # tensors: the matched key, which stays; the copy owns its storage
    return [tensors[0].clone()]


def _fill(t: Transform, tensors: Tensors) -> Tensors:
    # tensors: the key `like` matched (kept), or none when the entry gives a shape
    return [_full(t, tensors[0] if tensors else None)]


def check_value(t: Transform, tensor: torch.Tensor, what: str) -> None:
    """Refuse to discard a tensor unless every element is the entry's value (nothing lost)."""
    if t.value is None or tensor.is_meta:
        return
    if not bool((tensor == t.value).all()):
        raise OpError(
            f"{what} {_shape(tensor)} holds values other than {t.value}; discarding it would "
            "lose them"
        )


def _drop(t: Transform, tensors: Tensors) -> Tensors:
    check_value(t, tensors[0], "the tensor")
    return []


FORWARD: dict[str, Callable[[Transform, Tensors], Tensors]] = {
    "concat": _concat,
    "split": _split,
    "reshape": _reshape,
    "unsqueeze": _unsqueeze,
    "expand": _expand,
    "copy": _copy,
    "fill": _fill,
    "drop": _drop,
}


# -- inverses: tensors the entry produced -> the tensors it consumed ----------------------------


def _un_concat(t: Transform, tensors: Tensors) -> Tensors:
    (whole,) = tensors
    dim = _dim(t.dim, whole.dim(), f"a tensor of shape {_shape(whole)}")
    count = 1 + len(t.inputs)
    sizes = _sizes(t, whole.shape[dim], count, f"the tensor {_shape(whole)}")
    return [part.clone() for part in torch.split(whole, sizes, dim)]


def _un_split(t: Transform, tensors: Tensors) -> Tensors:
    dim = _dim(t.dim, tensors[0].dim(), f"a tensor of shape {_shape(tensors[0])}")
    _same_kind(tensors, dim)
    return [torch.cat(tensors, dim)]


def _un_reshape(t: Transform, tensors: Tensors) -> Tensors:
    (tensor,) = tensors
    assert t.source_shape is not None  # inverse_problem refused the entry otherwise
    try:
        return [tensor.reshape(t.source_shape)]
    except RuntimeError:
        raise OpError(f"cannot reshape {_shape(tensor)} to {list(t.source_shape)}") from None


def _un_unsqueeze(t: Transform, tensors: Tensors) -> Tensors:
    (tensor,) = tensors
    dim = _dim(t.dim, tensor.dim(), f"a tensor of shape {_shape(tensor)}")
    if tensor.shape[dim] != 1:
        raise OpError(f"dim {t.dim} of {_shape(tensor)} has size {tensor.shape[dim]}, not 1")
    return [tensor.squeeze(dim)]


def _un_fill(t: Transform, tensors: Tensors) -> Tensors:
    check_value(t, tensors[0], "the tensor")
    return []


def _un_drop(t: Transform, tensors: Tensors) -> Tensors:
    # tensors: the key `like` names (kept), or none when the entry gives a shape
    return [_full(t, tensors[0] if tensors else None)]


INVERSE: dict[str, Callable[[Transform, Tensors], Tensors]] = {
    "concat": _un_concat,
    "split": _un_split,
    "reshape": _un_reshape,
    "unsqueeze": _un_unsqueeze,
    "fill": _un_fill,
    "drop": _un_drop,
}


def inverse_problem(t: Transform) -> str | None:
    """Why the entry cannot be undone on export, or None when it can."""
    if t.op == "expand":
        return "expand repeats a tensor; the source's single copy cannot be told from the model's"
    if t.op == "copy":
        return "copy starts a model tensor from a source one; the source has no place for it"
    if t.op == "reshape" and t.source_shape is None:
        return "export needs the source's shape: add source_shape: [...] to the entry"
    if t.op == "drop" and t.value is None:
        return "the dropped tensors are gone; give value: (and like: or shape:) to restore them"
    if t.op == "drop" and t.like is None and t.shape is None:
        return "give like: (a key to copy the shape of) or shape: to restore the dropped tensors"
    if t.op == "drop" and t.like is None and t.pattern is not None and t.pattern.groups:
        return "with shape:, from must name one key (no groups); give like: instead"
    return None
