"""Conversions: between this package's two formats, and from another library's state dict
(renamed by the zoo's key maps) into this package's format. Both load strictly into the
architecture first, so a converted file is known to fit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import CheckpointError
from ..model import build_meta, build_model
from ..spec import SpecSource
from ..zoo import convert_state_dict
from ._load import architecture_of
from ._precision import precision_dtype, storage_state_dict
from ._read import PathLike, read_checkpoint
from ._report import LoadReport
from ._save import checkpoint_format, save_model, write_checkpoint
from ._types import SavedCheckpoint
from ._weights import apply_weights

__all__ = ["convert_checkpoint", "import_state_dict"]


def convert_checkpoint(
    source: PathLike,
    destination: PathLike,
    *,
    spec: SpecSource | None = None,
    drop_training_state: bool = False,
    verify: str | None = None,
    trust_pickle: bool = False,
) -> SavedCheckpoint:
    """Re-write ``source`` as ``destination`` (format from its suffix), metadata kept.

    A plain state dict needs ``spec=``. Optimizer and scheduler state cannot go into
    ``.safetensors``; converting a training checkpoint there needs ``drop_training_state=True``.
    A storage precision (``save_model(..., dtype=...)``) is kept.

    Examples:
        >>> from video_interpreter import build_model, read_metadata, save_model
        >>> from video_interpreter.checkpoint import convert_checkpoint
        >>> _ = save_model(build_model("tiny_r2plus1d"), "tiny.pth", epoch=1)
        >>> _ = convert_checkpoint("tiny.pth", "tiny.safetensors")
        >>> read_metadata("tiny.safetensors").format
        'safetensors'
    """
    destination = Path(destination)
    checkpoint = read_checkpoint(
        source, verify=verify, map_location="cpu", trust_pickle=trust_pickle
    )
    architecture = architecture_of(checkpoint, spec)
    model = build_meta(architecture)
    apply_weights(model, checkpoint, strict=True, keep_source_dtype=True)
    keep_training = checkpoint_format(destination) == "pth"
    training = checkpoint.optimizer_state_dict is not None or (
        checkpoint.scheduler_state_dict is not None
    )
    if training and not keep_training and not drop_training_state:
        raise CheckpointError(
            f"{source} holds optimizer/scheduler state, which {destination.name} (.safetensors) "
            "cannot keep; pass drop_training_state=True (CLI: --drop-training-state) to convert "
            "the weights only"
        )
    meta = checkpoint.metadata
    state_dict = model.state_dict()
    stored = precision_dtype(meta.precision)
    if stored is not None:  # parameters back in their stored precision, buffers as they were
        state_dict = storage_state_dict(model, state_dict, stored, destination.name)
    return write_checkpoint(
        destination,
        spec=architecture,
        state_dict=state_dict,
        optimizer_state=checkpoint.optimizer_state_dict if keep_training else None,
        scheduler_state=checkpoint.scheduler_state_dict if keep_training else None,
        rng_state=checkpoint.rng_state if keep_training else None,
        epoch=meta.epoch,
        step=meta.step,
        loss=meta.loss,
        metrics=meta.metrics,
        notes=meta.notes,
        created=meta.created,
        monitor=meta.monitor,
        precision=meta.precision,
    )


def import_state_dict(
    architecture: str,
    source: PathLike,
    destination: PathLike,
    *,
    library: str = "torchvision",
    notes: str | None = None,
) -> tuple[SavedCheckpoint, LoadReport]:
    """Import another library's state dict (e.g. torchvision's ``r2plus1d_18``) as a checkpoint
    of the spec ``architecture``: keys renamed by the zoo's key map, loaded strictly, saved in
    this package's format. Returns the saved file and the load report (renames included).

    Examples:
        >>> import torch
        >>> import torch, torchvision
        >>> from video_interpreter.checkpoint import import_state_dict
        >>> torch.save(torchvision.models.video.r3d_18().state_dict(), "r3d_18_torchvision.pth")
        >>> saved, report = import_state_dict("r3d_18", "r3d_18_torchvision.pth", "r3d_18.pth")
        >>> report.ok
        True
    """
    checkpoint = read_checkpoint(source, map_location="cpu")
    mapped = convert_state_dict(architecture, checkpoint.state_dict, library)
    model = build_model(architecture, device="meta")
    report = apply_weights(model, mapped.state_dict, strict=True, keep_source_dtype=True)
    report = dataclasses.replace(
        report,
        source=f"{source} ({library})",
        remapped=dict(mapped.renamed),
        dropped=(*mapped.dropped, *report.dropped),
    )
    saved = save_model(
        model,
        destination,
        notes=notes or f"imported from {library} {architecture} ({Path(source).name})",
    )
    return saved, report
