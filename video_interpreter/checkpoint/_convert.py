"""Conversions: between this package's two formats, and from another library's state dict
(renamed by the zoo's key maps) into this package's format. Both load strictly into the
architecture first, so a converted file is known to fit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..model import build_meta, build_model
from ..spec import SpecSource
from ..zoo import convert_state_dict, read_transformers_config, transformers_spec
from ._load import architecture_of
from ._precision import precision_dtype, storage_state_dict
from ._read import PathLike, read_checkpoint
from ._report import LoadReport
from ._save import checkpoint_format, save_model, write_checkpoint
from ._types import SavedCheckpoint
from ._weights import apply_weights

__all__ = ["convert_checkpoint", "import_state_dict", "import_transformers"]


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
    this package's format. Returns the saved file and the load report (renames included)."""
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


_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _transformers_weights(directory: Path) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of a ``save_pretrained`` directory (one file, or shards listed by an
    index), read safely (no unpickling of code), and the file it came from for messages."""
    for name in _WEIGHT_FILES:
        if (directory / name).is_file():
            read = read_checkpoint(directory / name, map_location="cpu")
            return dict(read.state_dict), name
    for name in _SHARD_INDEXES:
        index = directory / name
        if not index.is_file():
            continue
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{index} is not a readable shard index: {exc}") from exc
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            if Path(shard).name != shard:
                raise CheckpointError(f"{index} names {shard!r}, outside the directory")
            state.update(read_checkpoint(directory / shard, map_location="cpu").state_dict)
        return state, name
    raise CheckpointError(
        f"{directory} holds no weights: expected one of "
        f"{', '.join(_WEIGHT_FILES + _SHARD_INDEXES)} (as save_pretrained writes)"
    )


def import_transformers(
    directory: PathLike, destination: PathLike, *, notes: str | None = None
) -> tuple[SavedCheckpoint, LoadReport]:
    """Convert a transformers video classifier saved with ``save_pretrained`` (``config.json``
    and ``model.safetensors`` or ``pytorch_model.bin``) into a checkpoint of this package.

    The spec is generated from ``config.json`` (``transformers_spec``), so any size of a
    supported model type converts; the weights are renamed by the model type's key map and
    loaded strictly. Returns the saved file and the load report (renames and dropped keys).

    Example::

        saved, report = import_transformers("videomae-base-finetuned-kinetics", "videomae.pth")
        model = load_model(saved.path)   # takes (B, C, T, H, W) clips
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder} is not a directory; pass the folder save_pretrained wrote "
            "(config.json and model.safetensors or pytorch_model.bin)"
        )
    config = read_transformers_config(folder)
    spec = transformers_spec(config, where=str(folder / "config.json"))
    state, weights_file = _transformers_weights(folder)
    mapped = convert_state_dict(config["model_type"], state, "transformers")
    model = build_model(spec, device="meta")
    report = apply_weights(model, mapped.state_dict, strict=True, keep_source_dtype=True)
    report = dataclasses.replace(
        report,
        source=f"{folder / weights_file} (transformers {config['model_type']})",
        remapped=dict(mapped.renamed),
        dropped=(*mapped.dropped, *report.dropped),
    )
    saved = save_model(
        model,
        destination,
        notes=notes or f"imported from transformers {config['model_type']} ({folder.name})",
    )
    return saved, report
