"""``build_model``: spec -> modules on the meta device -> weights allocated and initialised once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn

from ..errors import BuildError, SpecError
from ..layers import LAYERS, InitScheme, LayerRegistry, assemble, get_init
from ..spec import ArchitectureSpec, SpecSource, load_spec
from ._model import VideoInterpreter

__all__ = ["build_meta", "build_model", "initialize", "initializer_for", "materialize"]

logger = logging.getLogger(__name__)

DeviceLike = torch.device | str | None


def build_meta(spec: ArchitectureSpec, registry: LayerRegistry = LAYERS) -> VideoInterpreter:
    """The model with every parameter on the meta device: shapes only, nothing allocated."""
    try:
        parts = assemble(spec.to_dict(), registry)
    except SpecError as exc:
        raise spec.locate(exc) from None
    with torch.device("meta"):
        return VideoInterpreter(spec, parts.backbone, parts.neck, parts.heads)


def _apply_rule(rule: Callable[[nn.Module], None], module: nn.Module) -> None:
    rule(module)
    if isinstance(module, nn.modules.batchnorm._NormBase):
        module.reset_running_stats()


def initializer_for(name: str, module: nn.Module, scheme: InitScheme) -> Callable[[], None] | None:
    """What initialises ``module``'s own tensors under ``scheme`` (None: it owns none).

    A module type the scheme names gets the scheme's rule; any other module gets its
    ``reset_parameters()``. A module that owns tensors and has neither is an error, so no weight
    can be left uninitialised.
    """
    rule = scheme.rule_for(module)
    if rule is not None:
        return partial(_apply_rule, rule, module)
    reset = getattr(module, "reset_parameters", None)
    if callable(reset):
        return reset  # type: ignore[no-any-return]
    if any(True for _ in module.parameters(recurse=False)) or any(
        True for _ in module.buffers(recurse=False)
    ):
        raise BuildError(
            f"module {name or '<root>'} ({type(module).__name__}) holds tensors of its own "
            "but has no reset_parameters(); define one so it can be initialised"
        )
    return None


def initialize(model: nn.Module, scheme: str = "torch") -> None:
    """Initialise every parameter and buffer of ``model`` exactly once under ``scheme``."""
    rules = get_init(scheme)
    for name, module in model.named_modules():
        action = initializer_for(name, module, rules)
        if action is not None:
            action()


def materialize(
    model: nn.Module,
    *,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
    init: str | None = "torch",
) -> nn.Module:
    """Allocate a meta model's tensors on ``device`` (uninitialised), then ``initialize`` them
    unless ``init`` is None (when weights will be loaded next)."""
    if dtype is not None:
        model.to(dtype=dtype)  # free on meta: changes only the recorded dtype
    model.to_empty(device=device or "cpu")
    if init is not None:
        with torch.no_grad():
            initialize(model, init)
    return model


def build_model(
    spec: SpecSource,
    *,
    overrides: Sequence[str] = (),
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
    registry: LayerRegistry = LAYERS,
) -> VideoInterpreter:
    """Build a ``VideoInterpreter`` from a spec file path, a spec name (``"v1"``), a mapping or
    an ``ArchitectureSpec``.

    ``overrides`` are dotlist assignments (``"heads.action.num_classes=10"``). With
    ``device="meta"`` nothing is allocated; otherwise weights are allocated once on ``device``
    (default CPU) and initialised once with the spec's ``init`` scheme.
    """
    resolved = load_spec(spec, overrides=overrides, check_shapes=False, registry=registry)
    model = build_meta(resolved, registry)
    if torch.device(device or "cpu").type == "meta":
        if dtype is not None:
            model.to(dtype=dtype)
        return model
    materialize(model, device=device, dtype=dtype, init=resolved.init)
    logger.debug("built %s/%s on %s", resolved.name, resolved.version, device or "cpu")
    return model
