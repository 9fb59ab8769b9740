"""``build_model``: spec -> modules on the meta device -> storage on the target device -> one
initialisation.

The order, in full: the spec is loaded and validated (types propagated by the layers'
declarations); every module is constructed under ``torch.device("meta")``, so no weight is
allocated or drawn; ``allocate`` gives every tensor uninitialised storage on the target device;
``initialize`` runs the spec's init scheme once, children before parents, drawing from torch's
global generator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import nn

from ..errors import SpecError
from ..layers import LAYERS, LayerRegistry, assemble
from ..spec import ArchitectureSpec, Limits, SpecSource, load_spec
from ..spec._limits import check_parameters, current_limits, module_budget, raised_limits
from ._init import initialize
from ._model import VideoInterpreter

__all__ = ["DeviceLike", "allocate", "build_meta", "build_model", "materialize"]

logger = logging.getLogger(__name__)

DeviceLike = torch.device | str | None
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def allocate(model: ModuleT, device: DeviceLike = None) -> ModuleT:
    """Give every parameter and buffer of a meta ``model`` uninitialised storage on ``device``.

    What ``Module.to_empty`` does, by public means (``torch.empty`` and module attributes), for
    two reasons recorded in the README's design section: ``to_empty`` calls ``empty_like``, which
    on a meta tensor runs torch's Python reference, whose first call in a process imports sympy
    and ``torch.fx`` (about 0.7 s; a CLI command pays it every time), and which makes an S3D
    build about 8 ms slower; and ``to_empty`` unties a tensor two modules share, where here it
    stays shared. Drop it for ``to_empty`` when torch allocates from meta without the reference.
    """
    target = torch.device(device or "cpu")
    fresh: dict[int, torch.Tensor] = {}  # id of the meta tensor -> its storage on the device

    def empty(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in fresh:
            new = torch.empty(tensor.shape, dtype=tensor.dtype, device=target)
            if isinstance(tensor, nn.Parameter):
                new = nn.Parameter(new, requires_grad=tensor.requires_grad)
            fresh[id(tensor)] = new
        return fresh[id(tensor)]

    for module in model.modules():
        owned = [
            *module.named_parameters(recurse=False, remove_duplicate=False),
            *module.named_buffers(recurse=False, remove_duplicate=False),
        ]
        for name, tensor in owned:
            setattr(module, name, empty(tensor))
    return model


def build_meta(spec: ArchitectureSpec, registry: LayerRegistry = LAYERS) -> VideoInterpreter:
    """The model with every parameter on the meta device: shapes only, nothing allocated.

    Refused (``SpecError``) beyond ``current_limits()``'s modules or parameters."""
    try:
        with module_budget(current_limits()):
            parts = assemble(spec.to_dict(), registry)
        check_parameters([parts.backbone, parts.neck, *parts.heads.values()], current_limits())
    except SpecError as exc:
        raise spec.locate(exc) from None
    return VideoInterpreter.from_parts(spec, parts.backbone, parts.neck, parts.heads, parts.taps)


def materialize(
    model: nn.Module,
    *,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
    init: str | None = "torch",
) -> nn.Module:
    """Give a meta model's tensors storage on ``device`` (uninitialised), then ``initialize``
    them unless ``init`` is None (when weights will be loaded next)."""
    if dtype is not None:
        model.to(dtype=dtype)  # free on meta: changes only the recorded dtype
    allocate(model, device)
    if init is not None:
        initialize(model, init)
    return model


def build_model(
    spec: SpecSource,
    *,
    overrides: Sequence[str] = (),
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
    registry: LayerRegistry | None = None,
    limits: Limits | None = None,
) -> VideoInterpreter:
    """Build a ``VideoInterpreter`` from a spec file path, a spec name (``"v1"``), a mapping or
    an ``ArchitectureSpec``.

    ``overrides`` are dotlist assignments (``"heads.action.num_classes=10"``). With
    ``device="meta"`` nothing is allocated; otherwise weights are allocated once on ``device``
    (default CPU) and initialised once with the spec's ``init`` scheme. ``limits`` bounds the
    spec and the model (default ``current_limits()``): parameters are counted on the meta
    device, before any weight is allocated.

    Examples:
        >>> import torch
        >>> from video_interpreter import build_model
        >>> model = build_model("tiny_r2plus1d", overrides=["heads.action.num_classes=3"])
        >>> model(torch.zeros(1, 3, 8, 32, 32))["action"].shape
        torch.Size([1, 3])
        >>> build_model("r3d_18", device="meta").spec.name     # shapes only: nothing allocated
        'r3d_18'
    """
    registry = LAYERS if registry is None else registry
    with raised_limits(limits or current_limits()):
        resolved = load_spec(spec, overrides=overrides, check_shapes=False, registry=registry)
        model = build_meta(resolved, registry)
    if torch.device(device or "cpu").type == "meta":
        if dtype is not None:
            model.to(dtype=dtype)
        return model
    materialize(model, device=device, dtype=dtype, init=resolved.init)
    logger.debug("built %s/%s on %s", resolved.name, resolved.version, device or "cpu")
    return model
