"""``save_sharded``: model, optimizer and scheduler state from every rank into one
self-describing directory, written atomically.

Every rank writes its own shards (torch.distributed.checkpoint) into a hidden staging directory
beside the destination; the files are hashed (the work shared among the ranks); then rank 0
alone writes ``spec.json`` and ``metadata.json``, syncs them and renames the staging directory
to its final name. A crash at any moment leaves either no checkpoint or a complete one under
that name, never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

from .._deprecation import reject_unknown, renamed_option
from ..checkpoint._remote import is_url
from ..errors import CheckpointError
from ..spec import ArchitectureSpec
from ._manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    METADATA_FILE,
    SPEC_FILE,
    ShardedCheckpointMetadata,
    checked_fields,
    now_utc,
    package_version,
    read_manifest,
)
from ._ranks import Ranks
from ._remote import uploaded_checkpoint
from ._rng import capture_rng
from ._state import split_state
from ._storage import hash_files, write_tensors

__all__ = ["Stateful", "model_spec", "save_sharded"]

logger = logging.getLogger(__name__)


class Stateful(Protocol):
    """A learning-rate scheduler (or anything with ``state_dict``/``load_state_dict``)."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state_dict: Any, /) -> Any: ...


def model_spec(model: nn.Module) -> ArchitectureSpec:
    """The ``ArchitectureSpec`` of a ``VideoInterpreter``, sharded or wrapped (DDP, compile)."""
    for candidate in (model, getattr(model, "module", None), getattr(model, "_orig_mod", None)):
        spec = getattr(candidate, "spec", None)
        if isinstance(spec, ArchitectureSpec):
            return spec
    raise CheckpointError(
        f"cannot save a {type(model).__name__} as a sharded checkpoint: it embeds the model's "
        "ArchitectureSpec, and this model has none (build it with shard_model or build_model)"
    )


def _stage(destination: Path, overwrite: bool) -> str:
    """Rank 0: check the destination and make the hidden staging directory beside it."""
    if destination.exists() and not overwrite:
        if not destination.is_dir():
            raise CheckpointError(f"{destination} exists and is not a directory")
        if any(destination.iterdir()):
            raise CheckpointError(
                f"{destination} already exists and is not empty; pass overwrite=True to replace "
                "it, or choose another directory"
            )
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Not tempfile.mkdtemp: its 0o700 would become the checkpoint's permissions.
        staging = destination.parent / f".{destination.name}.{secrets.token_hex(6)}.partial"
        staging.mkdir()
        return str(staging)
    except OSError as exc:
        raise CheckpointError(f"cannot create a directory beside {destination}: {exc}") from exc


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _commit(
    staging: Path, destination: Path, manifest: dict[str, Any], spec: ArchitectureSpec
) -> dict[str, Any]:
    """Rank 0: write the description, then give the directory its final name."""
    try:
        _write_json(staging / SPEC_FILE, spec.to_dict())
        _write_json(staging / METADATA_FILE, manifest)
        _fsync_directory(staging)
        if destination.exists():
            # A directory cannot be renamed over a non-empty one: move the old one aside first.
            aside = Path(
                tempfile.mkdtemp(
                    prefix=f".{destination.name}.", suffix=".old", dir=destination.parent
                )
            )
            os.replace(destination, aside / destination.name)
            os.replace(staging, destination)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(staging, destination)
        _fsync_directory(destination.parent)
    except OSError as exc:
        raise CheckpointError(f"could not complete {destination}: {exc}") from exc
    return manifest


def _prepare(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Stateful | None,
    rng: bool,
    ranks: Ranks,
) -> tuple[ArchitectureSpec, dict[str, Any], dict[str, torch.Tensor]]:
    """This rank's spec, state skeletons and tensors to write."""
    spec = model_spec(model)
    if optimizer is not None:
        model_state, optim_state = get_state_dict(model, optimizer)
    else:
        model_state, optim_state = get_model_state_dict(model), None
    skeleton: dict[str, Any] = {"model": None, "optimizer": None, "scheduler": None}
    tensors: dict[str, torch.Tensor] = {}
    for name, state in (
        ("model", model_state),
        ("optimizer", optim_state),
        ("scheduler", scheduler.state_dict() if scheduler is not None else None),
    ):
        if state is not None:
            skeleton[name], part = split_state(state, name)
            tensors.update(part)
    if any(t.is_meta for t in tensors.values()):
        raise CheckpointError(
            "the model's tensors are on the meta device (no weights); materialise or load it first"
        )
    if rng:
        tensors.update(capture_rng(ranks.rank))
    return spec, skeleton, tensors


def save_sharded(
    model: nn.Module,
    directory: str | Path,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Stateful | None = None,
    epoch: int | None = None,
    step: int | None = None,
    loss: float | None = None,
    metrics: Mapping[str, Any] | None = None,
    notes: str | None = None,
    save_rng: bool = True,
    overwrite: bool = False,
    **deprecated_options: Any,
) -> ShardedCheckpointMetadata:
    """Save ``model`` (sharded with ``shard_model``, or whole, e.g. in one process or under
    DDP) with its spec and metadata into ``directory``; every rank calls it.

    With ``optimizer`` (and ``scheduler``) their states are saved too, keyed by parameter name
    so they load into any number of ranks; with ``save_rng`` (``rng=`` before 0.2, deprecated)
    each rank's random generator states, so
    resuming on as many ranks continues bit-identically. Whole (unsharded) tensors such as
    BatchNorm statistics are saved from rank 0. Returns the checkpoint's metadata on every rank.
    Without a process group it saves from this one process. ``directory`` may be an fsspec URL
    (``s3://bucket/run/step_1000``): saved locally, then uploaded with ``metadata.json`` last
    (the metadata returned then names the local staging copy, removed once uploaded).

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.distributed import save_sharded
        >>> save_sharded(build_model("tiny_r2plus1d"), "run/step_10", step=10).world_size
        1
    """
    save_rng = renamed_option(deprecated_options, "rng", "save_rng", save_rng, True, "save_sharded")
    reject_unknown(deprecated_options, "save_sharded")
    if is_url(directory):  # staged locally, uploaded with metadata.json last
        url = str(directory)
        with uploaded_checkpoint(url, overwrite=overwrite) as local:
            saved = save_sharded(
                model,
                local,
                optimizer=optimizer,
                scheduler=scheduler,
                epoch=epoch,
                step=step,
                loss=loss,
                metrics=metrics,
                notes=notes,
                save_rng=save_rng,
            )
        logger.info("uploaded sharded checkpoint %s", url)
        return saved
    ranks = Ranks.current()
    destination = Path(directory)
    prepared: tuple[ArchitectureSpec, dict[str, Any], dict[str, torch.Tensor]]
    problems: list[str] = []
    try:
        prepared = _prepare(model, optimizer, scheduler, save_rng, ranks)
        fields = checked_fields(epoch=epoch, step=step, loss=loss, metrics=metrics, notes=notes)
    except CheckpointError as exc:
        problems.append(f"cannot save {destination}: {exc}")
    ranks.agree(problems)  # every rank stops here together, or none does
    spec, skeleton, tensors = prepared

    staging = Path(ranks.on_main(lambda: _stage(destination, overwrite)))
    try:
        written = write_tensors(tensors, staging, ranks)
        digests = hash_files(staging, written, ranks)
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "name": spec.name,
            "version": spec.version,
            "fingerprint": spec.fingerprint,
            "world_size": ranks.world_size,
            "created": now_utc(),
            "package_version": package_version(),
            "torch_version": str(torch.__version__),
            **fields,
            "optimizer": type(optimizer).__name__ if optimizer is not None else None,
            "rng": save_rng,
            "state": skeleton,
            "files": digests,
        }
        ranks.on_main(lambda: _commit(staging, destination, manifest, spec))
    except BaseException:
        if ranks.is_main:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    saved, _ = read_manifest(destination)
    logger.info(
        "saved sharded checkpoint %s from %d ranks (%d bytes)",
        destination,
        ranks.world_size,
        saved.size_bytes,
    )
    return saved
