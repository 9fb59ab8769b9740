"""``shard_model``: a spec built on the meta device, sharded with FSDP2 unit by unit, then
materialised so each rank allocates and initialises only its own shards.

Downstream of the model stage (``build_meta``, the init schemes). The units follow the spec's
structure (see ``sharding_units``); a checkpoint's weights can be loaded instead of initialising
(``load_sharded_model``), so no rank ever holds the full model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from ..errors import BuildError
from ..model import VideoInterpreter, build_meta
from ..spec import SpecSource, load_spec
from ._init import initialize_sharded
from ._units import Granularity, sharding_units

__all__ = ["DeviceLike", "default_device", "shard_model"]

logger = logging.getLogger(__name__)

DeviceLike = torch.device | str | None


def _require_process_group(what: str) -> None:
    if not (dist.is_available() and dist.is_initialized()):
        raise BuildError(
            f"{what} needs a process group: call torch.distributed.init_process_group() first "
            "(launch with torchrun; backend 'nccl' on GPUs, 'gloo' on CPUs). In one process "
            "without one, use build_model or load_model"
        )


def default_device(device: DeviceLike = None, mesh: DeviceMesh | None = None) -> torch.device:
    """``device``, else the mesh's device type, else this rank's GPU under NCCL, else CPU."""
    if device is not None:
        chosen = torch.device(device)
    elif mesh is not None:
        chosen = torch.device(mesh.device_type)
    elif torch.cuda.is_available() and "nccl" in str(dist.get_backend()):
        chosen = torch.device("cuda")
    else:
        chosen = torch.device("cpu")
    if chosen.type == "meta":
        raise BuildError("shard_model allocates shards; device='meta' is not a place for them")
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", torch.cuda.current_device())
    if mesh is not None and mesh.device_type != chosen.type:
        raise BuildError(
            f"device {chosen} does not match the mesh's device type {mesh.device_type!r}"
        )
    return chosen


def shard_model(
    source: SpecSource | VideoInterpreter,
    *,
    mesh: DeviceMesh | None = None,
    granularity: Granularity = "block",
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
    init: bool = True,
    overrides: Sequence[str] = (),
    reshard_after_forward: bool | None = None,
    mp_policy: MixedPrecisionPolicy | None = None,
) -> VideoInterpreter:
    """Build ``source`` (a spec path, name, mapping or ``ArchitectureSpec``, or a
    ``VideoInterpreter``) sharded over ``mesh`` with FSDP2 (``fully_shard``).

    The model is built on the meta device, each unit named by ``sharding_units(model,
    granularity)`` is sharded, then the root; then every rank allocates its shards on
    ``device`` (default: this rank's GPU under NCCL, else the CPU) and, with ``init``,
    initialises them with the spec's init scheme. Under the same ``torch.manual_seed`` the
    weights equal ``build_model``'s on any number of ranks. With ``init=False`` they are left
    uninitialised for ``load_sharded`` to fill. A ``VideoInterpreter`` that is already
    materialised keeps its weights (every rank must hold the same ones); one on the meta device
    is treated like a spec.

    ``mesh`` defaults to a 1-D mesh over every rank; ``reshard_after_forward`` and
    ``mp_policy`` are passed to ``fully_shard``. Requires an initialised process group.

    Examples:
        >>> from video_interpreter.distributed import shard_model
        >>> shard_model("tiny_r2plus1d")    # under torchrun, after init_process_group: sharded
        Traceback (most recent call last):
            ...
        video_interpreter.errors.BuildError: shard_model needs a process group: ...
    """
    _require_process_group("shard_model")
    device = default_device(device, mesh)
    if mesh is None:
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    if isinstance(source, VideoInterpreter):
        model = source
    else:
        model = build_meta(load_spec(source, overrides=overrides, check_shapes=False))
    if isinstance(model, FSDPModule):
        raise BuildError("this model is already sharded (fully_shard was applied to it)")
    tensors = [*model.parameters(), *model.buffers()]
    on_meta = [t.is_meta for t in tensors]
    if any(on_meta) and not all(on_meta):
        raise BuildError(
            "the model is partly on the meta device: materialise it fully (or not at all) "
            "before sharding"
        )
    if dtype is not None:
        model.to(dtype=dtype)
    options: dict[str, Any] = {"mesh": mesh}
    if reshard_after_forward is not None:
        options["reshard_after_forward"] = reshard_after_forward
    if mp_policy is not None:
        options["mp_policy"] = mp_policy
    units = sharding_units(model, granularity)
    for name in units:
        fully_shard(model.get_submodule(name), **options)
    fully_shard(model, **options)
    if all(on_meta):
        model.to_empty(device=device)
        if init:
            initialize_sharded(model, model.spec.init, device)
    logger.debug(
        "sharded %s/%s over %d ranks in %d units + root (%s)",
        model.spec.name,
        model.spec.version,
        mesh.size(),
        len(units),
        granularity,
    )
    return model
