"""Conversions: between this package's two formats, and from another library's state dict
(renamed by the zoo's key maps) into this package's format. Both load strictly into the
architecture first, so a converted file is known to fit."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, overload

from ..errors import CheckpointError
from ..model import build_meta, build_model
from ..spec import SpecSource
from ..zoo import convert_state_dict
from ._adapt import Adapt
from ._load import architecture_of
from ._precision import precision_dtype, storage_state_dict
from ._read import PathLike, read_checkpoint
from ._report import LoadReport
from ._save import checkpoint_format, save_model, write_checkpoint
from ._types import SavedCheckpoint
from ._weights import apply_weights

__all__ = ["convert_checkpoint", "import_state_dict"]


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
    architecture: str,
    source: PathLike,
    destination: PathLike,
    *,
    library: str = "torchvision",
    notes: str | None = None,
    spec: SpecSource | None = None,
    adapt: bool | Adapt = False,
) -> tuple[SavedCheckpoint, LoadReport]:
    """Import another library's state dict (e.g. torchvision's ``r2plus1d_18``) as a checkpoint
    of the spec ``architecture``: keys renamed by the zoo's key map, loaded strictly, saved in
    this package's format. Returns the saved file and the load report (renames included).

    ``spec=`` builds another spec with the same module tree (a new class count, say) and
    ``adapt`` brings the weights into it; an image network's weights
    (``library="torchvision_image"``: torchvision's ``resnet18``/``resnet50``) need ``adapt``,
    whose ``inflation`` turns each 2D kernel into a 3D one. Source modules without a
    counterpart (an image stem's max-pool) are notes of the report::

        saved, report = import_state_dict("i3d_r50", "resnet50.pth", "i3d.safetensors",
                                          library="torchvision_image", adapt=True)
    """
    checkpoint = read_checkpoint(source, map_location="cpu")
    mapped = convert_state_dict(architecture, checkpoint.state_dict, library)
    model = build_model(spec if spec is not None else architecture, device="meta")
    report = apply_weights(
        model, mapped.state_dict, strict=True, adapt=adapt, keep_source_dtype=True
    )
    report = dataclasses.replace(
        report,
        source=f"{source} ({library})",
        remapped=dict(mapped.renamed),
        dropped=(*mapped.dropped, *report.dropped),
        notes=(*report.notes, *mapped.notes),
    )
    saved = save_model(
        model,
        destination,
        notes=notes or f"imported from {library} {architecture} ({Path(source).name})",
    )
    return saved, report
