"""Loading sharded checkpoints: into a model on any number of ranks (``load_sharded``), a model
built straight from a checkpoint (``load_sharded_model``), and the metadata alone.

The tensors a rank needs are read from the chunks that overlap its shards, so a model sharded
over N ranks loads a checkpoint written by M ranks, and one process without a process group
loads the whole model. Strict by default: keys that do not match, shapes that differ and an
architecture whose fingerprint differs are refused before any tensor is read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from .._deprecation import deprecated, is_path, reject_unknown, renamed_option
from ..checkpoint import load_checkpoint, load_model, spec_diff
from ..checkpoint._remote import is_url
from ..errors import CheckpointError
from ..model import VideoInterpreter, allocate, build_meta
from ..spec import ArchitectureSpec
from ._init import local_part
from ._manifest import ShardedCheckpointMetadata, read_manifest
from ._ranks import Ranks
from ._remote import downloaded_checkpoint
from ._rng import restore_rng as restore_rng_states
from ._rng import rng_prefix
from ._save import Stateful, model_spec
from ._shard import DeviceLike, shard_model
from ._state import join_state, split_state, tensor_keys
from ._storage import empty_like_stored, read_index, read_tensors, verify_files
from ._units import Granularity

__all__ = ["check_keys", "load_sharded", "load_sharded_model", "read_sharded_metadata"]

logger = logging.getLogger(__name__)

_SHOWN = 8


def read_sharded_metadata(directory: str | Path) -> ShardedCheckpointMetadata:
    """A sharded checkpoint's metadata and spec, without reading a tensor.

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.distributed import read_sharded_metadata, save_sharded
        >>> _ = save_sharded(build_model("tiny_r2plus1d"), "run/epoch_4", epoch=4)
        >>> read_sharded_metadata("run/epoch_4").epoch
        4
    """
    if is_url(directory):
        with downloaded_checkpoint(str(directory)) as local:
            return read_sharded_metadata(local)
    metadata, _ = read_manifest(directory)
    return metadata


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def check_keys(what: str, saved: list[str], wanted: list[str], where: Path) -> None:
    """Refuse a load whose keys differ, listing what is missing and what is unexpected."""
    # Keys read without their checkpoint prefix ("model/"), as the state dict names them.
    missing = sorted(key.split("/", 1)[-1] for key in set(wanted) - set(saved))
    unexpected = sorted(key.split("/", 1)[-1] for key in set(saved) - set(wanted))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {_listed(missing)}")
        if unexpected:
            parts.append(f"in the checkpoint but not in the {what}: {_listed(unexpected)}")
        raise CheckpointError(f"{where}: the {what} state does not fit; " + "; ".join(parts))


def _check_architecture(model: nn.Module, metadata: ShardedCheckpointMetadata) -> None:
    try:
        spec: ArchitectureSpec | None = model_spec(model)
    except CheckpointError:
        spec = None  # a plain module: its keys and shapes are still checked
    if spec is not None and spec.fingerprint != metadata.fingerprint:
        raise CheckpointError(
            f"{metadata.path} holds architecture {metadata.fingerprint[:12]} "
            f"({metadata.name}/{metadata.version}), but the model is {spec.fingerprint[:12]} "
            f"({spec.name}/{spec.version}). Spec diff:\n"
            f"{spec_diff(metadata.spec, spec, 'checkpoint', 'model')}"
        )


def load_sharded(
    model: nn.Module,
    directory: str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Stateful | None = None,
    *,
    strict: bool = True,
    check_digests: bool = True,
    restore_rng: bool = True,
    **deprecated_options: Any,
) -> ShardedCheckpointMetadata:
    """Load a ``save_sharded`` directory into ``model`` (and ``optimizer``, ``scheduler``);
    every rank calls it. Returns the checkpoint's metadata (epoch, step, ...).

    ``model`` may be sharded over any number of ranks (``shard_model``), or whole: in one
    process without a process group, or on every rank of a group. A whole model still on the
    meta device is allocated on the CPU first. ``check_digests`` checks every file's recorded
    sha256 (the reading shared among the ranks) before loading. With ``restore_rng`` the RNG
    states are restored when the checkpoint was written by as many ranks as load it.
    ``strict=False`` loads the model tensors both sides have and leaves the others as they are.
    ``directory`` may be an fsspec URL: each rank reads a temporary local copy.

    Before 0.2 this was ``load_sharded(directory, model, ...)`` with ``verify=`` and
    ``restore_rng_state=``; those still work, with a ``DeprecationWarning``.

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.distributed import load_sharded, save_sharded
        >>> model = build_model("tiny_r2plus1d")             # one process: no process group
        >>> _ = save_sharded(model, "run/step_10", step=10)
        >>> load_sharded(build_model("tiny_r2plus1d"), "run/step_10").step
        10
    """
    if is_path(model) and isinstance(directory, nn.Module):
        deprecated("load_sharded(directory, model, ...) is now load_sharded(model, directory, ...)")
        model, directory = directory, model
    check_digests = renamed_option(
        deprecated_options, "verify", "check_digests", check_digests, True, "load_sharded"
    )
    restore_rng = renamed_option(
        deprecated_options, "restore_rng_state", "restore_rng", restore_rng, True, "load_sharded"
    )
    reject_unknown(deprecated_options, "load_sharded")
    if is_url(directory):
        with downloaded_checkpoint(str(directory)) as local:
            return load_sharded(
                model,
                local,
                optimizer,
                scheduler=scheduler,
                strict=strict,
                check_digests=check_digests,
                restore_rng=restore_rng,
            )
    ranks = Ranks.current()
    metadata, manifest = read_manifest(directory)
    root = metadata.path
    _check_architecture(model, metadata)
    state = manifest["state"]
    for name, wanted in (("optimizer", optimizer), ("scheduler", scheduler)):
        if wanted is not None and state[name] is None:
            raise CheckpointError(
                f"{root} holds no {name} state; save it with save_sharded(..., {name}=...)"
            )
    if not isinstance(model, FSDPModule) and any(t.is_meta for t in model.state_dict().values()):
        allocate(model, "cpu")

    # The receiving state: this rank's shards (or whole tensors), filled in place below.
    if optimizer is not None:
        model_state, optim_state = get_state_dict(model, optimizer)
    else:
        model_state, optim_state = get_model_state_dict(model), None
    _, model_tensors = split_state(model_state, "model")
    saved_model_keys = tensor_keys(state["model"])
    if strict:
        check_keys("model", saved_model_keys, list(model_tensors), root)
    else:
        shared = set(saved_model_keys)
        skipped = sorted(set(model_tensors) - shared)
        if skipped:
            logger.warning("%s: not in the checkpoint, left as they are: %s", root, skipped)
        model_tensors = {k: t for k, t in model_tensors.items() if k in shared}
    targets: dict[str, torch.Tensor] = dict(model_tensors)
    stateless: list[str] = []
    if optimizer is not None:
        _, optim_tensors = split_state(optim_state or {}, "optimizer")
        stateless = _parameters_without_saved_state(state["optimizer"], optim_state)
        if stateless:
            # Parameters that never had a gradient before the save have no optimizer state in
            # the checkpoint, while get_state_dict gave every parameter of the receiving
            # optimizer some: they are left without state, as in the run that saved.
            prefixes = tuple(f"optimizer/state/{name}/" for name in stateless)
            optim_tensors = {k: t for k, t in optim_tensors.items() if not k.startswith(prefixes)}
            logger.info("%s: no optimizer state saved for %s", root, ", ".join(stateless))
        check_keys(
            f"{type(optimizer).__name__} optimizer (saved: {metadata.optimizer})",
            tensor_keys(state["optimizer"]),
            list(optim_tensors),
            root,
        )
        targets.update(optim_tensors)
    index = read_index(root)
    if scheduler is not None:
        targets.update(
            {key: empty_like_stored(index, key) for key in tensor_keys(state["scheduler"])}
        )
    same_ranks = metadata.world_size == ranks.world_size
    rng_keys = [k for k in index.state_dict_metadata if k.startswith(rng_prefix(ranks.rank))]
    restoring = restore_rng and metadata.has_rng_state and same_ranks and bool(rng_keys)
    if restore_rng and metadata.has_rng_state and not same_ranks:
        logger.info(
            "%s: written by %d ranks, loaded by %d: random generator states not restored",
            root,
            metadata.world_size,
            ranks.world_size,
        )
    if restoring:
        targets.update({key: empty_like_stored(index, key) for key in rng_keys})

    if check_digests:
        verify_files(root, metadata.files, ranks)
    read_tensors(root, targets, index, ranks)

    options = StateDictOptions(strict=strict)
    if optimizer is not None and stateless:
        # The keys were checked above; torch's own check would refuse the stateless ones.
        set_model_state_dict(model, model_state, options=options)
        set_optimizer_state_dict(
            model,
            optimizer,
            join_state(state["optimizer"], targets, like=optim_state),
            options=StateDictOptions(strict=False),
        )
        for parameter in _named_parameters(model, stateless):
            optimizer.state.pop(parameter, None)  # as the optimizer that saved had it
    elif optimizer is not None:
        loaded_optim = join_state(state["optimizer"], targets, like=optim_state)
        set_state_dict(
            model,
            optimizer,
            model_state_dict=model_state,
            optim_state_dict=loaded_optim,
            options=options,
        )
    else:
        set_model_state_dict(model, model_state, options=options)
    if scheduler is not None:
        scheduler.load_state_dict(
            join_state(state["scheduler"], targets, like=scheduler.state_dict())
        )
    if restoring:
        restore_rng_states(targets, ranks.rank, str(root))
    logger.info("loaded %s (%d ranks) on %d ranks", root, metadata.world_size, ranks.world_size)
    return metadata


def _named_parameters(model: nn.Module, names: list[str]) -> list[nn.Parameter]:
    wanted = set(names)
    return [p for name, p in model.named_parameters() if name in wanted]


def _parameters_without_saved_state(saved: Any, receiving: Any) -> list[str]:
    """Parameters the receiving optimizer state has an entry for and the saved one has none
    (per-parameter state keyed by name, as ``get_state_dict`` gives it)."""
    saved_state = saved.get("state") if isinstance(saved, Mapping) else None
    own_state = receiving.get("state") if isinstance(receiving, Mapping) else None
    if not isinstance(saved_state, Mapping) or not isinstance(own_state, Mapping):
        return []
    return sorted(str(name) for name in own_state if name not in saved_state)


def _load_whole_into_shards(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], where: Path
) -> None:
    """Each rank copies its part of every whole tensor (memory-mapped, so a rank reads only
    the pages of its own shards) into its shards."""
    own = model.state_dict()
    check_keys("model", list(state_dict), list(own), where)
    mismatched = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)}, model {tuple(tensor.shape)}"
        for key, tensor in own.items()
        if tuple(state_dict[key].shape) != tuple(tensor.shape)
    ]
    if mismatched:
        raise CheckpointError(f"{where} does not fit: " + "; ".join(mismatched[:_SHOWN]))
    with torch.no_grad():
        for key, tensor in own.items():
            if isinstance(tensor, DTensor):
                tensor.to_local().copy_(local_part(state_dict[key], tensor))
            else:
                tensor.copy_(state_dict[key])


def load_sharded_model(
    path: str | Path,
    *,
    granularity: Granularity = "block",
    device: DeviceLike = None,
    check_digests: bool = True,
    **shard_options: Any,
) -> VideoInterpreter:
    """Rebuild the model a checkpoint holds, sharded over this job's ranks, its weights read
    shard by shard: no rank ever holds the whole model.

    ``path`` is a sharded checkpoint directory or a single-file checkpoint (``.pth`` /
    ``.safetensors``, memory-mapped: each rank reads only its own shards' pages). The
    architecture comes from the checkpoint; ``shard_options`` (``mesh``, ``dtype``,
    ``reshard_after_forward``, ``mp_policy``) go to ``shard_model``. Without a process group
    the whole model is loaded in this process. Training state is not restored here: use
    ``load_sharded(model, directory, optimizer)`` to resume. ``check_digests`` checks the
    directory's recorded sha256s first (``verify=``, its name before 0.2, still works).

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.distributed import load_sharded_model, save_sharded
        >>> _ = save_sharded(build_model("tiny_r2plus1d"), "run/last")
        >>> load_sharded_model("run/last").spec.name
        'tiny_r2plus1d'
    """
    check_digests = renamed_option(
        shard_options, "verify", "check_digests", check_digests, True, "load_sharded_model"
    )
    where = Path(path)
    distributed = Ranks.current().distributed
    if where.is_dir():
        spec = read_sharded_metadata(where).spec
        if distributed:
            model = shard_model(
                spec, granularity=granularity, device=device, init=False, **shard_options
            )
        else:
            model = allocate(build_meta(spec), device)
        load_sharded(model, where, check_digests=check_digests, restore_rng=False)
        return model
    if not distributed:
        return load_model(where, device=device)
    checkpoint = load_checkpoint(where, map_location="cpu")
    if checkpoint.spec is None:
        raise CheckpointError(
            f"{where} holds no architecture ({checkpoint.metadata.kind}); build the model with "
            "shard_model(spec, init=False) and load its weights yourself"
        )
    model = shard_model(
        checkpoint.spec, granularity=granularity, device=device, init=False, **shard_options
    )
    _load_whole_into_shards(model, checkpoint.state_dict, where)
    logger.info("loaded %s sharded over %d ranks", where, Ranks.current().world_size)
    return model
