"""Which modules of a ``VideoInterpreter`` become FSDP units: the sharding granularity.

A unit's parameters are gathered just before its forward and freed after it, so units bound the
memory a forward needs beyond the shards. The rule follows the spec's structure:

``"block"`` (default)
    Walk the backbone through sequences (``nn.Sequential`` / ``nn.ModuleList``: what ``ResStage``,
    ``Repeat`` and ``Sequential`` nodes build) and make each composite layer found there a unit:
    a residual block, a transformer or Swin block, an Inception ``Concat``, an embedding with its
    projection. A composite layer holding a list of composite layers (MViT's encoder) gives each
    of them a unit and keeps its own remaining parameters in a unit around them.
``"stage"``
    Each top-level backbone node that holds parameters and is made of several layers (a
    ``ResStage``, a ``Repeat``, a ``Sequential``, a ``TransformerBlock``, ...) is one unit.
``"root"``
    One unit: the whole model (enough for small models).

Single layers met on the way (a stem ``Conv3d``, a ``BatchNorm3d``), the neck and the heads stay
in the root's unit, which holds whatever no other unit claimed.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from ..errors import BuildError

__all__ = ["GRANULARITIES", "Granularity", "sharding_units"]

Granularity = Literal["block", "stage", "root"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)

_SEQUENCES = (nn.Sequential, nn.ModuleList)


def _holds_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _composite(module: nn.Module) -> bool:
    return next(module.children(), None) is not None and _holds_parameters(module)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _blocks(module: nn.Module, name: str) -> list[str]:
    """Units under ``module`` (itself included), innermost first."""
    if not _composite(module):
        return []
    if isinstance(module, _SEQUENCES):
        return [
            unit
            for key, child in module.named_children()
            for unit in _blocks(child, _join(name, key))
        ]
    inner: list[str] = []
    for key, child in module.named_children():
        if isinstance(child, _SEQUENCES) and all(_composite(c) for c in child.children()):
            inner.extend(_blocks(child, _join(name, key)))
    return [*inner, name]


def sharding_units(model: nn.Module, granularity: Granularity = "block") -> list[str]:
    """The qualified names of the modules ``shard_model`` wraps as FSDP units, inner before
    outer (the order ``fully_shard`` needs); the root is not listed but is always a unit.

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.distributed import sharding_units
        >>> sharding_units(build_model("tiny_r2plus1d", device="meta"), "block")
        ['backbone.layer1.0', 'backbone.layer2.0']
    """
    if granularity not in GRANULARITIES:
        raise BuildError(
            f"unknown sharding granularity {granularity!r}; choose one of {list(GRANULARITIES)}"
        )
    backbone = getattr(model, "backbone", None)
    if granularity == "root" or not isinstance(backbone, nn.Module):
        return []
    units: list[str] = []
    for key, node in backbone.named_children():
        name = f"backbone.{key}"
        if granularity == "stage":
            units.extend([name] if _composite(node) else [])
        else:
            units.extend(_blocks(node, name))
    return units
