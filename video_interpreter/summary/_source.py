"""What a summary or diagram looks at: a spec, a checkpoint or a model, turned into a model and a
clip shape; and a context that runs a forward pass on a device without disturbing the model.

A spec (path, name, mapping, ``ArchitectureSpec``) or a checkpoint (``.pth``/``.safetensors``,
whose resolved spec is read from its metadata) is built on the meta device: nothing allocated.
A model given by the caller is never moved or mutated: for the run its parameters and buffers are
swapped for stand-ins on the target device (meta tensors, which hold no data, or copies), and the
originals, with every submodule's train/eval mode, are put back in ``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import BuildError, CheckpointError, Problem, SpecError
from ..model import build_model, materialize
from ..spec import ArchitectureSpec, ClipShape

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "DEFAULT_DEPTH",
    "CallStack",
    "InputShape",
    "ModelSource",
    "Subject",
    "parse_clip_shape",
    "resolve_source",
    "running",
]

CHECKPOINT_SUFFIXES = (".pth", ".safetensors")

ModelSource = str | Path | Mapping[str, Any] | ArchitectureSpec | nn.Module
"""What a summary or diagram looks at: a spec name or path, a spec mapping, an
``ArchitectureSpec``, a checkpoint path (``.pth``/``.safetensors``), or a model."""

InputShape = Sequence[int] | str
"""One clip's shape, batch excluded: four positive integers ``(C, T, H, W)`` (a ``ClipShape``,
a tuple, a list) or the same as text, ``"3x16x112x112"``."""

DEFAULT_DEPTH = 2
"""Module levels a summary lists and a diagram opens, unless told otherwise."""


@dataclass(frozen=True)
class Subject:
    """A model ready to be inspected, and where it came from."""

    model: nn.Module
    spec: ArchitectureSpec | None
    label: str
    clip: ClipShape


def parse_clip_shape(value: InputShape) -> ClipShape:
    """``"3x16x112x112"`` or a sequence of four positive integers -> ``ClipShape(C, T, H, W)``;
    anything else is a ``SpecError`` that says what would be valid.

    Examples:
        >>> from video_interpreter.summary import parse_clip_shape
        >>> parse_clip_shape("3x16x112x112")
        ClipShape(channels=3, frames=16, height=112, width=112)
        >>> parse_clip_shape([3, 8, 32, 32]).frames
        8
    """
    parts: list[Any]
    if isinstance(value, str):
        parts = [p.strip() for p in value.lower().split("x")]
        try:
            parts = [int(p) for p in parts]
        except ValueError:
            parts = []
    else:
        parts = list(value)
    if len(parts) != 4 or not all(
        isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in parts
    ):
        raise SpecError(
            [
                Problem(
                    f"input shape {value!r} is not a clip shape: give four positive integers "
                    "(C, T, H, W), e.g. 3x16x112x112",
                    ("input",),
                    value=value,
                )
            ]
        )
    c, t, h, w = parts
    return ClipShape(c, t, h, w)


def _checkpoint_path(source: object) -> str | Path | None:
    if isinstance(source, str | Path) and (
        Path(source).suffix.lower() in CHECKPOINT_SUFFIXES
        or (Path(source) / "metadata.json").is_file()  # a sharded checkpoint: the reader says so
    ):
        return source
    return None


def _spec_of_checkpoint(path: str | Path) -> Mapping[str, Any]:
    # Imported here: the checkpoint stage is only needed for checkpoint paths.
    from ..checkpoint import read_metadata

    metadata = read_metadata(path)
    if metadata.spec is None:
        raise CheckpointError(
            f"{path} is a {metadata.kind.replace('_', ' ')} without an embedded architecture; "
            "summarise or draw the spec it was trained from instead"
        )
    return metadata.spec


def resolve_source(
    source: ModelSource,
    *,
    input_shape: InputShape | None = None,
    device: torch.device | str = "meta",
) -> Subject:
    """The model to inspect (built on ``device`` for specs and checkpoints; a given model as is)
    and the clip shape: ``input_shape`` if given, else the spec's ``input``."""
    model: nn.Module
    spec: ArchitectureSpec | None
    if isinstance(source, nn.Module):
        model = source
        found = getattr(model, "spec", None)
        spec = found if isinstance(found, ArchitectureSpec) else None
    else:
        checkpoint = _checkpoint_path(source)
        spec_source = source if checkpoint is None else _spec_of_checkpoint(checkpoint)
        built = build_model(spec_source, device="meta")
        model, spec = built, built.spec
        if torch.device(device).type != "meta":
            # Values are irrelevant to shapes and operation counts: allocate, do not initialise.
            materialize(model, device=device, init=None)
    label = f"{spec.name} {spec.version}" if spec is not None else type(model).__name__
    if input_shape is not None:
        clip = parse_clip_shape(input_shape)
    elif spec is not None:
        clip = ClipShape(*spec.input)
    else:
        raise SpecError(
            [
                Problem(
                    f"{type(model).__name__} has no spec to take the clip shape from; "
                    "give input_shape=(C, T, H, W)",
                    ("input",),
                )
            ]
        )
    return Subject(model=model, spec=spec, label=label, clip=clip)


def _stand_in(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "meta":
        moved = torch.empty_like(tensor, device="meta")
    elif tensor.is_meta:
        raise BuildError(
            "the model's weights are on the meta device (shapes only), so it cannot run on "
            f"{device}; inspect it with device='meta', or materialize it first"
        )
    else:
        moved = tensor.detach().to(device)
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(moved, requires_grad=tensor.requires_grad)
    return moved


@contextlib.contextmanager
def running(model: nn.Module, device: torch.device | str) -> Iterator[nn.Module]:
    """``model`` in eval mode with its tensors on ``device`` for the duration of the block.

    Tensors not already on ``device`` are replaced by stand-ins (shared tensors by one shared
    stand-in); on exit the original tensor objects and every submodule's mode are restored, so
    the caller's model, its optimiser's references and its weights are left exactly as they were.
    """
    target = torch.device(device)
    modes = [(module, module.training) for module in model.modules()]
    swapped: list[tuple[dict[str, Any], str, torch.Tensor]] = []
    stand_ins: dict[int, torch.Tensor] = {}
    try:
        for module in model.modules():
            stores: tuple[dict[str, Any], ...] = (module._parameters, module._buffers)
            for store in stores:
                for name, tensor in store.items():
                    if tensor is None or tensor.device == target:
                        continue
                    if id(tensor) not in stand_ins:
                        stand_ins[id(tensor)] = _stand_in(tensor, target)
                    swapped.append((store, name, tensor))
                    store[name] = stand_ins[id(tensor)]
        model.eval()
        yield model
    finally:
        for store, name, tensor in reversed(swapped):
            store[name] = tensor
        for module, training in modes:
            module.training = training


class CallStack:
    """Which module is running, so a failing forward pass can name the module that failed."""

    def __init__(self, model: nn.Module) -> None:
        self.stack: list[str] = []
        self.failed_at: str | None = None
        self.handles: list[RemovableHandle] = []
        for path, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(path)))
            self.handles.append(module.register_forward_hook(self._leave))

    def _enter(self, path: str) -> Callable[[nn.Module, Any], None]:
        def hook(module: nn.Module, args: Any) -> None:
            self.stack.append(path)
            self.failed_at = path

        return hook

    def _leave(self, module: nn.Module, args: Any, output: Any) -> None:
        self.stack.pop()
        self.failed_at = self.stack[-1] if self.stack else None

    def failure(self, shape: tuple[int, ...], cause: Exception) -> SpecError:
        """The error for a forward pass that raised ``cause``, naming the module it failed in."""
        where = self.failed_at or "<model>"
        return SpecError(
            [
                Problem(
                    f"forward pass on input {shape} failed in module {where!r}: {cause}",
                    ("input",),
                    hint="give an input_shape the model accepts, e.g. the spec's own input",
                )
            ]
        )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
