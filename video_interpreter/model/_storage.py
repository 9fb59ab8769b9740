"""Storage for a model built on the meta device."""

from __future__ import annotations

from typing import TypeVar, cast

import torch
from torch import nn

__all__ = ["DeviceLike", "allocate"]

DeviceLike = torch.device | str | None
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def allocate(model: ModuleT, device: DeviceLike = None) -> ModuleT:
    """Give every parameter and buffer of ``model`` uninitialised storage on ``device``.

    ``Module.to_empty`` does the same, but slower (it runs torch's Python reference of
    ``empty_like`` per tensor on meta) and it unties a tensor two modules share; here a shared
    tensor stays shared.
    """
    target = torch.device(device or "cpu")
    fresh: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (old, new): old kept alive

    def empty(tensor: torch.Tensor) -> torch.Tensor:
        if id(tensor) not in fresh:
            new = torch.empty(tensor.shape, dtype=tensor.dtype, device=target)
            if isinstance(tensor, nn.Parameter):
                new = nn.Parameter(new, requires_grad=tensor.requires_grad)
            fresh[id(tensor)] = (tensor, new)
        return fresh[id(tensor)][1]

    for module in model.modules():
        for key, param in module._parameters.items():
            if param is not None:
                module._parameters[key] = cast(nn.Parameter, empty(param))
        for key, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[key] = empty(buffer)
    return model
