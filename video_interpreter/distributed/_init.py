"""Initialising a sharded model: the same weights as ``build_model`` under the same seed, on any
number of ranks, while no rank ever holds more than one layer's full weights.

``initialize`` (model stage) runs an init plan: each module's scheme rule or its
``reset_parameters()``, children before parents, from torch's global generator. Here every rank
runs the same plan from the same seed; for each step it swaps the layer's sharded parameters
for full-size temporary ones, runs the step (so it draws the same random numbers as an
unsharded build), keeps its own shard and drops the rest. Every rank therefore spends the time
of a full initialisation, but memory only for its shards plus the largest layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import cast

import torch
from torch import nn
from torch.distributed.tensor import DTensor

from ..errors import BuildError
from ..layers import get_init
from ..model import init_plan, run_plan

__all__ = ["initialize_sharded", "local_part"]


def local_part(full: torch.Tensor, sharded: DTensor) -> torch.Tensor:
    """The part of ``full`` (the whole tensor) that this rank's shard of ``sharded`` holds."""
    chunks = sharded.__create_chunk_list__()  # type: ignore[no-untyped-call]
    if len(chunks) != 1:  # FSDP's Shard / Replicate placements give each rank one block
        raise BuildError(
            f"a sharded tensor of shape {tuple(sharded.shape)} has {len(chunks)} local blocks "
            f"on this rank (placements {sharded.placements}); expected one"
        )
    index = tuple(
        slice(offset, offset + size)
        for offset, size in zip(chunks[0].offsets, chunks[0].sizes, strict=True)
    )
    return full[index]


@contextlib.contextmanager
def _full_parameters(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Within the block, ``module``'s sharded parameters (its children's too: a layer's
    ``reset_parameters`` may set its children's, which were initialised before it) are full
    tensors, its own uninitialised and its children's gathered; on success each rank's shard
    receives its part of them."""
    swapped: list[tuple[nn.Module, str, nn.Parameter]] = []
    try:
        for owner in module.modules():
            for name, param in list(owner._parameters.items()):
                if isinstance(param, DTensor):
                    if owner is module:
                        full = torch.empty(param.shape, dtype=param.dtype, device=device)
                    else:  # initialised already: every rank gathers the current values
                        full = param.full_tensor().detach().to(device)
                    owner._parameters[name] = nn.Parameter(full, param.requires_grad)
                    swapped.append((owner, name, param))
        yield
        for owner, name, param in swapped:
            # Read back the attribute: a rule may have replaced the tensor, not filled it.
            filled = owner._parameters[name]
            if filled is None:
                raise BuildError(f"initialising {type(owner).__name__} removed its {name!r}")
            shard = cast(DTensor, param)
            shard.to_local().copy_(local_part(filled, shard))
    finally:
        for owner, name, param in swapped:
            owner._parameters[name] = param


def initialize_sharded(model: nn.Module, scheme: str, device: torch.device) -> None:
    """``initialize(model, scheme)`` for a model whose parameters are FSDP shards (DTensors)
    and whose buffers are whole: same plan, same seeds, same random draws."""
    run_plan(init_plan(model, get_init(scheme)), context=partial(_full_parameters, device=device))
