"""Conversions: between this package's two formats, and from another library's state dict
(mapped by a key map: the zoo's, or a user's file) into this package's format. Both load
strictly into the architecture first, so a converted file is known to fit."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, overload

import torch

from ..errors import CheckpointError
from ..layers import closest_names
from ..model import build_meta, build_model
from ..spec import ArchitectureSpec, SpecSource, find_spec_file
from ..zoo import (
    KeyMap,
    KeyMapSource,
    MappedStateDict,
    apply_key_map,
    key_map,
    read_transformers_config,
    resolve_key_map,
    transformers_spec,
)
from ._adapt import Adapt
from ._load import architecture_of
from ._precision import precision_dtype, storage_state_dict
from ._read import PathLike, read_checkpoint
from ._report import LoadError, LoadReport, ShapeMismatch
from ._save import checkpoint_format, save_model, write_checkpoint
from ._types import SavedCheckpoint
from ._weights import apply_weights

__all__ = ["convert_checkpoint", "import_state_dict", "import_transformers"]


@overload
def convert_checkpoint(
    source: PathLike,
    destination: PathLike,
    *,
    spec: SpecSource | None = None,
    drop_training_state: bool = False,
    adapt: bool | Adapt = False,
    verify: str | None = None,
    trust_pickle: bool = False,
    return_report: Literal[False] = False,
) -> SavedCheckpoint: ...


@overload
def convert_checkpoint(
    source: PathLike,
    destination: PathLike,
    *,
    spec: SpecSource | None = None,
    drop_training_state: bool = False,
    adapt: bool | Adapt = False,
    verify: str | None = None,
    trust_pickle: bool = False,
    return_report: Literal[True],
) -> tuple[SavedCheckpoint, LoadReport]: ...


def convert_checkpoint(
    source: PathLike,
    destination: PathLike,
    *,
    spec: SpecSource | None = None,
    drop_training_state: bool = False,
    adapt: bool | Adapt = False,
    verify: str | None = None,
    trust_pickle: bool = False,
    return_report: bool = False,
) -> SavedCheckpoint | tuple[SavedCheckpoint, LoadReport]:
    """Re-write ``source`` as ``destination`` (format from its suffix), metadata kept.

    A plain state dict needs ``spec=``. Optimizer and scheduler state cannot go into
    ``.safetensors``; converting a training checkpoint there needs ``drop_training_state=True``.
    A storage precision (``save_model(..., dtype=...)``) is kept. ``return_report=True`` also
    returns the load report.

    With ``adapt=True`` (or ``Adapt(...)``), ``spec=`` may be another architecture: the weights
    are brought into it by the rules its layers declare (see ``load_weights``), and the
    training state, which belongs to the old architecture, is not carried over::

        saved, report = convert_checkpoint("k400.pth", "ten.pth", spec="ten.yaml", adapt=True,
                                           return_report=True)

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
    architecture = architecture_of(checkpoint, spec, adapt=adapt)
    model = build_meta(architecture)
    report = apply_weights(model, checkpoint, strict=True, adapt=adapt, keep_source_dtype=True)
    changed = checkpoint.spec is None or checkpoint.spec.fingerprint != architecture.fingerprint
    # An optimizer's state is per parameter of the old architecture: it cannot follow a change.
    keep_training = checkpoint_format(destination) == "pth" and not (adapt and changed)
    training = checkpoint.optimizer_state_dict is not None or (
        checkpoint.scheduler_state_dict is not None
    )
    if training and not keep_training and not drop_training_state and not adapt:
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
    saved = write_checkpoint(
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
    return (saved, report) if return_report else saved


def import_state_dict(
    architecture: SpecSource | None,
    source: PathLike | Mapping[str, torch.Tensor],
    destination: PathLike,
    *,
    library: str | None = None,
    key_map: KeyMapSource | None = None,
    notes: str | None = None,
    spec: SpecSource | None = None,
    adapt: bool | Adapt = False,
) -> tuple[SavedCheckpoint, LoadReport]:
    """Import another library's state dict as a checkpoint of the spec ``architecture`` (a
    name, a spec file, a mapping or an ``ArchitectureSpec``).

    The key map is ``key_map`` (a ``KeyMap``, a key-map file, or data shaped like one), else the
    zoo's for ``library`` (default torchvision) and the spec's name; ``architecture`` may be
    None when the key map names one (a spec file it names is found beside the key-map file
    first). ``source`` is a file (``.pth``, ``.safetensors``) or a state dict in memory. The
    import is refused (``LoadError``, its report listing
    every problem) when a source tensor is left unmapped or a model tensor unfilled, or a
    shape differs after the transforms. Returns the saved file and the report, each transform
    applied listed in ``report.transformed``::

        saved, report = import_state_dict(None, "videomae.safetensors", "videomae.pth",
                                          key_map="videomae_base.yaml")

    ``spec=`` builds another spec with the same module tree (a new class count, say) and
    ``adapt`` brings the weights into it; an image network's weights
    (``library="torchvision_image"``: torchvision's ``resnet18``/``resnet50``) need ``adapt``,
    whose ``inflation`` turns each 2D kernel into a 3D one. Source modules without a
    counterpart (an image stem's max-pool) are notes of the report::

        saved, report = import_state_dict("i3d_r50", "resnet50.pth", "i3d.safetensors",
                                          library="torchvision_image", adapt=True)

    Examples:
        >>> import torch, torchvision
        >>> from video_interpreter.checkpoint import import_state_dict
        >>> torch.save(torchvision.models.video.r3d_18().state_dict(), "r3d_18_torchvision.pth")
        >>> saved, report = import_state_dict("r3d_18", "r3d_18_torchvision.pth", "r3d_18.pth")
        >>> report.ok
        True
    """
    rules = _key_map_for(architecture, library, key_map)
    if spec is None:
        spec = architecture if architecture is not None else _named_spec(rules)
    source_state, source_name = _source_state(source)
    mapped = apply_key_map(rules, source_state)
    model = build_model(spec, device="meta")
    label = f"{source_name} ({rules.source})"
    if not adapt or mapped.unmapped:  # adapt=True leaves differing tensors to the layers' rules
        _refuse_misfits(model.state_dict(), source_state, mapped, label, model.spec)
    report = apply_weights(
        model, mapped.state_dict, strict=True, adapt=adapt, keep_source_dtype=True
    )
    report = dataclasses.replace(
        report,
        source=label,
        remapped=dict(mapped.renamed),
        dropped=(*mapped.dropped, *report.dropped),
        transformed=tuple(mapped.transformed),
        notes=(*report.notes, *mapped.notes),
    )
    name = model.spec.name
    saved = save_model(
        model,
        destination,
        notes=notes or f"imported from {rules.source} {name} ({Path(source_name).name})",
    )
    return saved, report


def _named_spec(rules: KeyMap) -> SpecSource:
    """The spec a key map names: a file beside the key-map file, else a name or path as usual."""
    if rules.architecture is None:
        raise CheckpointError(
            f"the key map {rules.origin} names no architecture; pass the spec to import into "
            "(CLI: --spec SPEC)"
        )
    beside = find_spec_file(rules.architecture, relative_to=Path(rules.origin).parent)
    return beside if beside is not None else rules.architecture


def _source_state(
    source: PathLike | Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(source, Mapping):
        bad = [
            k
            for k, v in source.items()
            if not isinstance(k, str) or not isinstance(v, torch.Tensor)
        ]
        if bad:
            raise CheckpointError(
                f"the source state dict has {len(bad)} entries that are not str -> tensor, "
                f"e.g. {bad[0]!r}"
            )
        return dict(source), "state dict"
    return read_checkpoint(source, map_location="cpu").state_dict, str(source)


def _key_map_for(
    architecture: SpecSource | None, library: str | None, given: KeyMapSource | None
) -> KeyMap:
    if given is not None:
        if library is not None:
            raise CheckpointError(
                f"give a key map or a library ({library!r}) to import with, not both"
            )
        return resolve_key_map(given)
    if isinstance(architecture, ArchitectureSpec):
        name = architecture.name
    elif isinstance(architecture, str) and not Path(architecture).suffix:
        name = architecture
    else:
        raise CheckpointError(
            f"the zoo's key maps are found by spec name; {architecture!r} is not one: pass "
            "key_map= (CLI: --key-map FILE)"
        )
    return key_map(name, library or "torchvision")


def _refuse_misfits(
    model_state: Mapping[str, torch.Tensor],
    source_state: Mapping[str, torch.Tensor],
    mapped: MappedStateDict,
    label: str,
    spec: ArchitectureSpec,
) -> None:
    """Every key left over on either side, and every shape that differs, in one report."""
    state = mapped.state_dict
    missing = [k for k in model_state if k not in state]
    unexpected = [k for k in state if k not in model_state]
    mismatched = [
        ShapeMismatch(k, tuple(state[k].shape), tuple(model_state[k].shape))
        for k in model_state
        if k in state and state[k].shape != model_state[k].shape
    ]
    if not (missing or unexpected or mismatched or mapped.unmapped):
        return
    hints: dict[str, str] = {}
    for key in missing:  # the produced key that was probably meant for it
        near = closest_names(key, unexpected, n=1)
        if near:
            hints[key] = f"closest produced key: {near[0]}"
    covered = {**mapped.renamed, **{k: k for k in mapped.dropped}}
    for key in mapped.unmapped:  # a covered key beside it shows the rule that nearly fit
        parent = key.rpartition(".")[0]
        siblings = [k for k in covered if k.rpartition(".")[0] == parent]
        near = closest_names(key, siblings or list(covered), n=1) or siblings[:1]
        if near:
            fate = covered[near[0]]
            hints[key] = f"{near[0]!r} is covered" + (
                f", renamed to {fate!r}" if fate != near[0] else ", dropped"
            )
    shapes: dict[str, tuple[tuple[int, ...] | None, tuple[int, ...] | None]] = {
        k: (None, tuple(model_state[k].shape)) for k in missing
    }
    shapes.update({k: (tuple(state[k].shape), None) for k in unexpected})
    shapes.update({k: (tuple(source_state[k].shape), None) for k in mapped.unmapped})
    report = LoadReport(
        source=label,
        target=f"{spec.name}/{spec.version}",
        loaded=tuple(k for k in model_state if k in state and k not in {m.key for m in mismatched}),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        mismatched=tuple(mismatched),
        remapped=dict(mapped.renamed),
        dropped=tuple(mapped.dropped),
        transformed=tuple(mapped.transformed),
        unmapped=tuple(mapped.unmapped),
        shapes=shapes,
        hints=hints,
    )
    raise LoadError(
        report,
        "every source tensor must be mapped or dropped, every model tensor filled: add "
        "transforms, rules or drop entries to the key map",
        headline="the key map leaves tensors over or shapes that differ",
    )


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
    loaded strictly (``import_state_dict``). Returns the saved file and the load report (renames
    and dropped keys).

    Examples:
        >>> import transformers
        >>> from video_interpreter import load_model
        >>> from video_interpreter.checkpoint import import_transformers
        >>> config = transformers.VideoMAEConfig(
        ...     image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=32,
        ...     num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=3)
        >>> transformers.VideoMAEForVideoClassification(config).save_pretrained("videomae")
        >>> saved, report = import_transformers("videomae", "videomae.safetensors")
        >>> report.ok, load_model(saved.path).spec.input
        (True, ClipShape(channels=3, frames=4, height=32, width=32))
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
    model_type = config["model_type"]
    saved, report = import_state_dict(
        spec,
        state,
        destination,
        key_map=key_map(model_type, "transformers"),
        notes=notes or f"imported from transformers {model_type} ({folder.name})",
    )
    return saved, dataclasses.replace(
        report, source=f"{folder / weights_file} (transformers {model_type})"
    )
