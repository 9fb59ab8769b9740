"""Adapting a checkpoint to a changed architecture: for each tensor that differs, the rule its
layer declares (``video_interpreter.layers.adaptation``) makes the model's tensor from the
source's, and says how. Planned before anything is loaded, so a refused load changes nothing.

The source's own declarations come from its spec (a checkpoint of this package carries it):
a flat position table's grid cannot be read from its shape, and guessing it (a square root) is
how rectangular grids get resampled wrongly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import AdaptationError
from ..layers.adaptation import (
    AdaptRule,
    ConvKernel,
    Derived,
    Factorised,
    Head,
    Inflation,
    PositionTable,
    RelativeTable,
    adaptation_rules,
)
from ..model import build_meta
from ..spec import ArchitectureSpec
from ._report import AdaptedTensor

__all__ = ["Adapt", "AdaptPlan", "plan_adaptation"]

_INFLATIONS = ("centre", "average")


@dataclass(frozen=True)
class Adapt:
    """How ``adapt=`` loads bring a checkpoint into a changed architecture. ``inflation``: how a
    2D kernel becomes 3D, ``"centre"`` (on the middle frame, zeros elsewhere: a clip of one
    repeated frame gives the 2D network's output exactly) or ``"average"`` (repeated on every
    frame and divided by their number, as I3D does: exact away from the clip's borders only,
    where zero temporal padding enters the average).

    ``source_grids`` states the grid of a source position table that the source's spec cannot
    (a plain state dict: an image ViT's ``(1, 1 + 14 * 14, D)`` table is
    ``{"backbone.embed.position": (14, 14)}``); its prefix tokens are the model's."""

    inflation: Inflation = "centre"
    source_grids: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.inflation not in _INFLATIONS:
            raise AdaptationError(f"inflation must be one of {_INFLATIONS}, got {self.inflation!r}")


@dataclass
class AdaptPlan:
    """What an adapting load does besides loading equal tensors: ``tensors`` to load in place
    of the source's, keys to initialise afresh (``fresh``), source keys ``dropped``, and one
    ``AdaptedTensor`` line per change."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    fresh: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    adapted: list[AdaptedTensor] = field(default_factory=list)


def _owner_name(model: nn.Module, key: str) -> str:
    path = key.rpartition(".")[0]
    return type(model.get_submodule(path) if path else model).__name__


def _source_rules(spec: ArchitectureSpec | None) -> dict[str, AdaptRule]:
    return adaptation_rules(build_meta(spec)) if spec is not None else {}


_DEFAULT_MODES = {1: "linear", 2: "bicubic", 3: "trilinear"}


def _table_source(
    key: str,
    rule: PositionTable | RelativeTable,
    have: torch.Tensor,
    declared: AdaptRule | None,
    stated: tuple[int, ...] | None,
) -> PositionTable | RelativeTable:
    """The source table's geometry: declared by the source's spec, stated by the caller, else
    read from its shape."""
    source: PositionTable | RelativeTable | None
    if isinstance(declared, type(rule)):
        source = declared
    elif stated is not None and isinstance(rule, PositionTable):
        mode = _DEFAULT_MODES.get(len(stated), "linear")
        source = PositionTable(tuple(stated), rule.prefix, rule.flat, mode)
    else:
        source = rule.read(have)
    if source is None:
        raise AdaptationError(
            f"{key}: the source's {rule.describe().split(',')[0]} of shape "
            f"{tuple(have.shape)} does not say its grid; load from a checkpoint that carries "
            "its spec (save_model writes it), or state it: Adapt(source_grids={key: grid})"
        )
    if not source.expected_shape(have):
        raise AdaptationError(
            f"{key}: the source's tensor {tuple(have.shape)} is not the {source.describe()} "
            "its spec declares"
        )
    return source


def _resample(
    rule: PositionTable | RelativeTable, source: PositionTable | RelativeTable, have: torch.Tensor
) -> tuple[torch.Tensor, str]:
    if isinstance(rule, PositionTable) and isinstance(source, PositionTable):
        return rule.resample(have, source)
    if isinstance(rule, RelativeTable) and isinstance(source, RelativeTable):
        return rule.resample(have, source)
    raise AdaptationError(f"a {source.describe()} cannot become a {rule.describe()}")


def _plan_unstored(
    plan: AdaptPlan,
    key: str,
    rule: Derived,
    held: torch.Tensor | None,
    declared: AdaptRule | None,
) -> None:
    """A derived tensor the model does not store (a non-persistent buffer, such as a fixed
    sine-cosine table) is computed by its module for the model's geometry; a line says so when
    the source's differs, and a copy the source carries is dropped."""
    target = tuple(rule.compute().shape)
    before = tuple(held.shape) if held is not None else None
    if before is None and isinstance(declared, Derived):
        before = tuple(declared.compute().shape)
    if held is None and before in (None, target):
        return  # nothing in the source, and the geometry is unchanged
    if held is not None:
        plan.dropped.append(key)
    stored = "; the source's copy dropped" if held is not None else ""
    plan.adapted.append(
        AdaptedTensor(key, before, target, f"recomputed: {rule.what} (not stored){stored}")
    )


def plan_adaptation(
    model: nn.Module,
    model_state: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    source_spec: ArchitectureSpec | None,
    options: Adapt,
    scheme: str,
) -> AdaptPlan:
    """For each model tensor the source cannot give as it is, apply its layer's rule; every
    rule that cannot do what is asked is collected into one ``AdaptationError``."""
    rules = adaptation_rules(model)
    source_rules = _source_rules(source_spec)
    plan = AdaptPlan()
    refused: list[str] = []
    # A head is re-initialised whole: one tensor that does not fit replaces all of its tensors.
    replaced_heads = {
        rule.name
        for key, rule in rules.items()
        if isinstance(rule, Head)
        and (key not in state or state[key].shape != model_state[key].shape)
    }
    for key, want in model_state.items():
        rule, have = rules.get(key), state.get(key)
        target = tuple(want.shape)
        before = None if have is None else tuple(have.shape)
        try:
            if isinstance(rule, Head):
                if rule.name in replaced_heads:
                    why = (
                        "not in the source"
                        if have is None
                        else "the source's does not fit"
                        if have.shape != want.shape
                        else "the rest of the head does not fit"
                    )
                    plan.fresh.append(key)
                    plan.adapted.append(
                        AdaptedTensor(
                            key,
                            before,
                            target,
                            f"{rule.describe()} re-initialised by {_owner_name(model, key)}'s "
                            f"init ({scheme} scheme): {why}",
                        )
                    )
            elif isinstance(rule, Derived):
                if have is None or not rule.agrees(have):
                    plan.fresh.append(key)
                    plan.adapted.append(
                        AdaptedTensor(key, before, target, f"recomputed: {rule.what}")
                    )
            elif have is None:
                continue  # missing: refused by the loader as without adapt
            elif isinstance(rule, PositionTable | RelativeTable):
                stated = options.source_grids.get(key)
                source = _table_source(key, rule, have, source_rules.get(key), stated)
                if source.geometry == rule.geometry:
                    continue  # same geometry: loads as it is, or is a mismatch
                tensor, how = _resample(rule, source, have)
                if tuple(tensor.shape) != target:
                    raise AdaptationError(
                        f"resampled to {tuple(tensor.shape)}, the model's is {target}: only "
                        "the grid may change, not the width"
                    )
                plan.tensors[key] = tensor
                plan.adapted.append(AdaptedTensor(key, before, target, how))
            elif isinstance(rule, ConvKernel | Factorised) and have.shape != want.shape:
                tensor, steps = rule.adapt(have, target, options.inflation)
                plan.tensors[key] = tensor
                plan.adapted.append(AdaptedTensor(key, before, target, "; ".join(steps)))
        except AdaptationError as exc:
            refused.append(f"{key} ({rule.describe() if rule else 'no rule'}): {exc}")
    for key, rule in rules.items():
        if isinstance(rule, Derived) and key not in model_state:
            _plan_unstored(plan, key, rule, state.get(key), source_rules.get(key))
    for key, tensor in state.items():
        if key not in model_state and isinstance(source_rules.get(key), Head):
            plan.dropped.append(key)
            plan.adapted.append(
                AdaptedTensor(
                    key, tuple(tensor.shape), None, "a head of the source the model lacks: dropped"
                )
            )
    if refused:
        raise AdaptationError(
            f"{len(refused)} tensor{'s' if len(refused) > 1 else ''} cannot be adapted:\n  "
            + "\n  ".join(refused)
        )
    return plan
