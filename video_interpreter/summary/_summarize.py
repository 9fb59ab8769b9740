"""``summarize``: validate -> prepare the model and a clip -> one forward pass -> statistics.

One forward pass does all the measuring: torchinfo's hooks record every module's output shape
and parameters, while ``FlopCounterMode`` counts the operations of each module (convolutions,
matmuls and attention alike, the convention of torchvision's published figures). torchinfo runs
fine on the meta device, so it is used there too; its own table is not printed: rows are re-keyed
by module path (``backbone.layer1.0``, as in the spec and the state dict) and rendered by
``ModelSummary``. Totals are counted here, once per tensor, not taken from torchinfo, which
counts a tensor shared by two modules twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torchinfo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchinfo.torchinfo import clear_cached_forward_pass

from ..errors import VideoInterpreterError
from ..layers import NECK, Graph
from ._report import LayerRow, ModelSummary
from ._source import DEFAULT_DEPTH, CallStack, InputShape, ModelSource, resolve_source, running

__all__ = ["graph_inputs", "summarize", "unique_tensors"]

logger = logging.getLogger(__name__)


def unique_tensors(tensors: Iterator[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor once, however many modules hold it."""
    seen: dict[int, torch.Tensor] = {}
    for tensor in tensors:
        seen.setdefault(id(tensor), tensor)
    return list(seen.values())


def _output_shapes(output: Any) -> dict[str, tuple[int, ...]]:
    if isinstance(output, torch.Tensor):
        return {"output": tuple(output.shape)}
    if isinstance(output, Mapping):
        return {str(k): tuple(v.shape) for k, v in output.items() if isinstance(v, torch.Tensor)}
    if isinstance(output, list | tuple):
        return {str(i): tuple(v.shape) for i, v in enumerate(output) if isinstance(v, torch.Tensor)}
    return {}


def _macs_by_path(model: nn.Module, counter: FlopCounterMode) -> Callable[[nn.Module, str], int]:
    """MACs of a module's subtree from the counter's per-module totals (keyed by the root's
    class name and the module path). A container that is never called itself (a ModuleDict of
    heads) gets the sum of its children."""
    root_key = type(model).__name__
    flops = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}

    def macs_of(module: nn.Module, path: str) -> int:
        key = f"{root_key}.{path}" if path else root_key
        if key in flops:
            return flops[key] // 2
        prefix = f"{path}." if path else ""
        return sum(macs_of(child, prefix + name) for name, child in module.named_children())

    return macs_of


def graph_inputs(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Module path -> the graph nodes it reads, for a model whose backbone is a ``Graph``: each
    backbone node, and the neck and heads (the backbone's last node unless they tap another)."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, Graph):
        return {}
    found = {f"backbone.{name}": tuple(sources) for name, sources in backbone.wiring.items()}
    taps: Mapping[str, str] = getattr(model, "taps", {})
    neck = getattr(model, "neck", None)
    has_neck = isinstance(neck, nn.Module) and not isinstance(neck, nn.Identity)
    if has_neck:
        found["neck"] = (taps.get(NECK, backbone.output),)
    heads = getattr(model, "heads", None)
    for name in heads if isinstance(heads, nn.ModuleDict) else ():
        found[f"heads.{name}"] = (taps.get(name, "neck" if has_neck else backbone.output),)
    return found


def summarize(
    source: ModelSource,
    *,
    input_shape: InputShape | None = None,
    batch_size: int = 1,
    depth: int = DEFAULT_DEPTH,
    device: torch.device | str = "meta",
) -> ModelSummary:
    """Layer table, parameter counts, MACs/FLOPs and memory of a spec, checkpoint or model.

    ``input_shape`` is one clip ``(C, T, H, W)`` (or ``"3x16x112x112"``); default: the spec's
    ``input``. On ``device="meta"`` (the default) no weight is allocated: a spec or checkpoint
    is built on meta, and a given model runs on meta stand-ins of its tensors. A given model's
    tensors, devices and train/eval modes are restored before this returns. ``depth`` limits
    the rows listed (the model is depth 0), not what is counted.

    Examples:
        >>> from video_interpreter import summarize
        >>> summary = summarize("tiny_r2plus1d")            # on the meta device: nothing allocated
        >>> summary.total_params, summary.input_shape
        (52696, (1, 3, 8, 32, 32))
        >>> summarize("tiny_r2plus1d", input_shape="3x16x32x32").macs > summary.macs
        True
    """
    if depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    subject = resolve_source(source, input_shape=input_shape, device=device)
    model = subject.model
    target = torch.device(device)
    params = unique_tensors(model.parameters())
    buffers = unique_tensors(model.buffers())
    dtype = next((p.dtype for p in params if p.is_floating_point()), torch.get_default_dtype())
    clip = torch.zeros((batch_size, *subject.clip), dtype=dtype, device=target)

    outputs: dict[str, tuple[int, ...]] = {}

    def keep_outputs(module: nn.Module, args: Any, output: Any) -> None:
        outputs.update(_output_shapes(output))

    counter = FlopCounterMode(display=False)
    calls = CallStack(model)
    root_hook = model.register_forward_hook(keep_outputs)
    try:
        with running(model, target), counter:
            stats = torchinfo.summary(
                model, input_data=[clip], mode="eval", verbose=0, depth=max(depth, 1)
            )
    except VideoInterpreterError:
        raise
    except RuntimeError as exc:  # torchinfo wraps whatever the forward pass raised
        cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
        raise calls.failure(tuple(clip.shape), cause) from cause
    finally:
        root_hook.remove()
        calls.remove()
        clear_cached_forward_pass()  # torchinfo keeps the last run of each model class otherwise

    names = {id(module): path for path, module in model.named_modules()}
    macs_of = _macs_by_path(model, counter)
    reads = graph_inputs(model)

    rows: list[LayerRow] = []
    activation_bytes = 0
    for info in stats.summary_list:
        if info.is_leaf_layer and info.executed:
            activation_bytes += info.output_bytes
        if info.depth > depth:
            continue
        path = names.get(id(info.module), info.var_name)
        shape = tuple(info.output_size) if info.executed and info.output_size else None
        if info.depth == 0:
            shape = next(iter(outputs.values())) if len(outputs) == 1 else None
        rows.append(
            LayerRow(
                path=path,
                type=info.class_name,
                depth=info.depth,
                output_shape=shape,
                params=info.num_params,
                trainable_params=info.trainable_params,
                macs=macs_of(info.module, path),
                recursive=info.is_recursive,
                inputs=reads.get(path, ()),
            )
        )
    summary = ModelSummary(
        name=subject.label,
        model_type=type(model).__name__,
        fingerprint=subject.spec.fingerprint if subject.spec is not None else None,
        input_shape=tuple(clip.shape),
        device=str(target),
        depth=depth,
        rows=tuple(rows),
        outputs=outputs,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        buffer_bytes=sum(b.numel() * b.element_size() for b in buffers),
        activation_bytes=activation_bytes,
        flops=counter.get_total_flops(),
    )
    logger.debug("summarized %s: %d rows, %d MACs", summary.name, len(rows), summary.macs)
    return summary
