"""State dicts split into tensors (written by every rank with torch.distributed.checkpoint) and a
JSON skeleton of everything else (written once, by rank 0), and joined back.

A state dict such as an optimizer's mixes tensors (moments, sharded like the parameters) with
plain values (learning rates, betas, parameter names). torch.distributed.checkpoint would pickle
the plain values and unpickle them on load, which can run code; here they go to JSON instead, and
every tensor is replaced in the skeleton by ``{"$tensor": key}``, its key in the checkpoint
(``optimizer/state/backbone.0.weight/exp_avg``).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import CheckpointError

__all__ = ["TENSOR_TAG", "join_state", "split_state", "tensor_keys"]

TENSOR_TAG = "$tensor"


def _plain(value: Any, where: str) -> Any:
    if value is None or type(value) in (bool, str, int):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)  # NumPy and enum integers
    if isinstance(value, numbers.Real):
        return float(value)  # inf and nan too (a plateau scheduler starts at best=inf)
    if isinstance(value, str):
        return str(value)
    raise CheckpointError(
        f"{where} holds a {type(value).__module__}.{type(value).__qualname__}; a sharded "
        "checkpoint keeps tensors, and str, int, float, bool, None and lists and dicts of them "
        "(written as JSON, so loading never runs code); convert the value or leave it out"
    )


def split_state(state: Mapping[str, Any], prefix: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """``(skeleton, tensors)``: ``state`` with each tensor replaced by ``{"$tensor": key}``,
    and the tensors by key (``prefix/part/part``)."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any, path: tuple[str, ...]) -> Any:
        where = "/".join(path)
        if isinstance(value, torch.Tensor):
            if where in tensors:
                raise CheckpointError(f"two tensors of the state would be stored as {where!r}")
            tensors[where] = value
            return {TENSOR_TAG: where}
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str) or key == TENSOR_TAG:
                    raise CheckpointError(
                        f"{where} has a key {key!r}; sharded checkpoint state is keyed by names "
                        "(strings other than '$tensor'), as torch.distributed.checkpoint.state_dict"
                        ".get_state_dict gives it"
                    )
                out[key] = walk(item, (*path, key))
            return out
        if isinstance(value, list | tuple):
            return [walk(item, (*path, str(index))) for index, item in enumerate(value)]
        return _plain(value, where)

    return walk(state, (prefix,)), tensors


def tensor_keys(skeleton: Any) -> list[str]:
    """The checkpoint keys of the tensors a skeleton refers to, in order."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {TENSOR_TAG}:
            return [str(skeleton[TENSOR_TAG])]
        return [key for item in skeleton.values() for key in tensor_keys(item)]
    if isinstance(skeleton, list):
        return [key for item in skeleton for key in tensor_keys(item)]
    return []


def join_state(skeleton: Any, tensors: Mapping[str, torch.Tensor], like: Any = None) -> Any:
    """The state a skeleton describes, its tensors taken from ``tensors``. Where ``like`` (the
    receiving object's own state) holds a tuple, the JSON list becomes a tuple again."""
    if isinstance(skeleton, dict):
        if set(skeleton) == {TENSOR_TAG}:
            return tensors[skeleton[TENSOR_TAG]]
        return {
            key: join_state(item, tensors, like.get(key) if isinstance(like, Mapping) else None)
            for key, item in skeleton.items()
        }
    if isinstance(skeleton, list):
        similar = like if isinstance(like, list | tuple) else ()
        items = [
            join_state(item, tensors, similar[i] if i < len(similar) else None)
            for i, item in enumerate(skeleton)
        ]
        return tuple(items) if isinstance(like, tuple) else items
    return skeleton
