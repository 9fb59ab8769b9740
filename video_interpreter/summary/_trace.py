"""``trace_shapes``: every module's output shape and call order for one clip, on the meta device.

The light sibling of ``summarize`` (no torchinfo, no operation counting), for drawings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import VideoInterpreterError
from ._source import CallStack, InputShape, ModelSource, resolve_source, running

__all__ = ["ShapeTrace", "trace_shapes"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeTrace:
    """A model with the sample shape (batch excluded) each module returned on its first call."""

    model: nn.Module
    label: str
    input_shape: Shape  # one clip (C, T, H, W)
    shapes: dict[str, Shape]  # module path -> output shape; only modules that were called
    call_order: dict[str, int]  # module path -> index of its first call
    # module path -> (token of its first input tensor, token of its output) on its first call;
    # equal tokens mean the same tensor object, so ``b`` takes ``a``'s output when
    # ``tensors[b][0] == tensors[a][1]``.
    tensors: dict[str, tuple[int, int]]


def trace_shapes(
    source: ModelSource,
    *,
    input_shape: InputShape | None = None,
    device: torch.device | str = "meta",
) -> ShapeTrace:
    """The shape after every module of a spec, checkpoint or model for one clip, traced on
    ``device`` (the meta device by default: nothing allocated); what diagrams are drawn from.

    Examples:
        >>> from video_interpreter.summary import trace_shapes
        >>> trace_shapes("tiny_r2plus1d").input_shape
        ClipShape(channels=3, frames=8, height=32, width=32)
    """
    subject = resolve_source(source, input_shape=input_shape, device=device)
    model = subject.model
    shapes: dict[str, Shape] = {}
    order: dict[str, int] = {}
    tensors: dict[str, tuple[int, int]] = {}
    alive: list[object] = []  # keeps every seen tensor alive, so no id is reused in the trace

    def enter(path: str) -> Callable[[nn.Module, Any], None]:
        def hook(module: nn.Module, args: Any) -> None:
            order.setdefault(path, len(order))

        return hook

    def leave(path: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and path not in shapes:
                shapes[path] = tuple(output.shape[1:])
                if args and isinstance(args[0], torch.Tensor):
                    alive.extend((args[0], output))
                    tensors[path] = (id(args[0]), id(output))

        return hook

    handles: list[RemovableHandle] = []
    for path, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(path)))
        handles.append(module.register_forward_hook(leave(path)))
    calls = CallStack(model)
    dtype = next(
        (p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype()
    )
    clip = torch.zeros((1, *subject.clip), dtype=dtype, device=device)
    try:
        with running(model, device) as running_model, torch.no_grad():
            running_model(clip)
    except VideoInterpreterError:
        raise
    except Exception as exc:
        raise calls.failure(tuple(clip.shape), exc) from exc
    finally:
        calls.remove()
        for handle in handles:
            handle.remove()
    alive.clear()
    return ShapeTrace(model, subject.label, subject.clip, shapes, order, tensors)
