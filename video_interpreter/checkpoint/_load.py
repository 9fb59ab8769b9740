"""Loading: ``load_model`` (architecture rebuilt from the checkpoint), ``load_checkpoint``,
``read_metadata`` and ``resume``.

``load_model`` builds the modules on the meta device, reads the weights memory-mapped and hands
the mapped tensors to the model (``assign=True``): nothing is initialised, nothing is copied,
and pages come from the file as the model first uses them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, overload

import torch
from torch import nn

from .._deprecation import deprecated, is_path
from ..errors import CheckpointError
from ..model import VideoInterpreter, build_meta
from ..spec import ArchitectureSpec, SpecSource, load_spec
from ._adapt import Adapt
from ._format import restore_rng_state
from ._precision import precision_dtype
from ._read import MapLocation, PathLike, read_checkpoint
from ._remote import is_url, local_copy
from ._report import LoadReport, spec_diff
from ._save import Stateful
from ._types import Checkpoint, CheckpointMetadata
from ._weights import apply_weights, unwrap_model

__all__ = ["architecture_of", "load_checkpoint", "load_model", "read_metadata", "resume"]

logger = logging.getLogger(__name__)


def load_checkpoint(
    path: PathLike,
    *,
    verify: str | None = None,
    map_location: MapLocation = None,
    trust_pickle: bool = False,
) -> Checkpoint:
    """Read a checkpoint: spec, state dict, training state and metadata.

    ``verify`` (a sha256 hex digest) is checked before any tensor is read. A file holding
    arbitrary pickled objects is refused unless ``trust_pickle=True``.

    Examples:
        >>> from video_interpreter import build_model, load_checkpoint, save_model
        >>> _ = save_model(build_model("tiny_r2plus1d"), "tiny.pth", epoch=2)
        >>> checkpoint = load_checkpoint("tiny.pth")
        >>> checkpoint.epoch, checkpoint.spec.name
        (2, 'tiny_r2plus1d')
    """
    return read_checkpoint(
        path, verify=verify, map_location=map_location, trust_pickle=trust_pickle
    )


def read_metadata(path: PathLike) -> CheckpointMetadata:
    """Everything but the tensors' values, cheaply: the header of a ``.safetensors`` file, the
    pickled index of a ``.pth`` (tensors mapped, never read).

    Examples:
        >>> from video_interpreter import build_model, read_metadata, save_model
        >>> _ = save_model(build_model("tiny_r2plus1d"), "tiny.pth", notes="first run")
        >>> read_metadata("tiny.pth").notes                  # no tensor is read
        'first run'
    """
    return read_checkpoint(path, metadata_only=True).metadata


def architecture_of(
    checkpoint: Checkpoint, spec: SpecSource | None, *, adapt: bool | Adapt = False
) -> ArchitectureSpec:
    """The architecture to build: ``spec`` if given (it must match an embedded one unless
    ``adapt`` brings the checkpoint into it), else the embedded spec."""
    if spec is None:
        if checkpoint.spec is None:
            raise CheckpointError(
                f"{checkpoint.path} is a {checkpoint.metadata.kind.replace('_', ' ')} without an "
                "architecture; pass spec= (a spec file, name or mapping) to say what to build"
            )
        return checkpoint.spec
    resolved = load_spec(spec, check_shapes=False)
    embedded = checkpoint.spec
    if embedded is not None and embedded.fingerprint != resolved.fingerprint and not adapt:
        raise CheckpointError(
            f"{checkpoint.path} holds architecture {embedded.fingerprint[:12]} "
            f"({embedded.name}/{embedded.version}), but spec= is {resolved.fingerprint[:12]} "
            f"({resolved.name}/{resolved.version}). Spec diff:\n"
            f"{spec_diff(embedded, resolved, 'checkpoint', 'spec=')}\n"
            "To bring the weights into the new architecture, pass adapt=True (CLI: --adapt)"
        )
    return resolved


@overload
def load_model(
    path: PathLike,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    strict: bool = True,
    verify: str | None = None,
    spec: SpecSource | None = None,
    adapt: bool | Adapt = False,
    trust_pickle: bool = False,
    return_report: Literal[False] = False,
) -> VideoInterpreter: ...


@overload
def load_model(
    path: PathLike,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    strict: bool = True,
    verify: str | None = None,
    spec: SpecSource | None = None,
    adapt: bool | Adapt = False,
    trust_pickle: bool = False,
    return_report: Literal[True],
) -> tuple[VideoInterpreter, LoadReport]: ...


def load_model(
    path: PathLike,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    strict: bool = True,
    verify: str | None = None,
    spec: SpecSource | None = None,
    adapt: bool | Adapt = False,
    trust_pickle: bool = False,
    return_report: bool = False,
) -> VideoInterpreter | tuple[VideoInterpreter, LoadReport]:
    """Rebuild the model a checkpoint holds: architecture from its embedded spec (or ``spec=``
    for a plain state dict), weights memory-mapped and assigned, never initialised twice.

    ``device`` (default CPU) places the weights. ``dtype`` is the model's floating-point
    precision; by default the checkpoint's: the precision it was stored in
    (``save_model(..., dtype=torch.bfloat16)``, buffers included, so the model runs), else
    its tensors' own. Every tensor converted is listed under "cast" in the load report,
    which ``return_report=True`` returns beside the model.

    ``spec=`` with ``adapt=True`` (or ``Adapt(...)``) builds another architecture and brings the
    checkpoint into it by the rules its layers declare (see ``load_weights``); the report lists
    every tensor adapted::

        model, report = load_model("k400.safetensors", spec="ten_classes.yaml", adapt=True,
                                   return_report=True)

    ``path`` may also be a URL: any fsspec URL (``s3://bucket/v1.safetensors``) or an MLflow
    registered model (``models:/v1@best``, ``models:/v1/3``; the tracking server from
    ``MLFLOW_TRACKING_URI``), read from its artifacts without unpickling anything::

        model = load_model("models:/v1@best")

    Examples:
        >>> from video_interpreter import build_model, load_model, save_model
        >>> saved = save_model(build_model("tiny_r2plus1d"), "tiny.safetensors")
        >>> model = load_model("tiny.safetensors", verify=saved.sha256)  # spec from the file
        >>> model.spec.name
        'tiny_r2plus1d'
    """
    if is_url(path):
        # A URL: a temporary local copy, checked against the sha256 its source records.
        with local_copy(str(path)) as (local, recorded):
            model, report = _load_model(
                local, device, dtype, strict, verify or recorded, spec, adapt, trust_pickle
            )
    else:
        model, report = _load_model(path, device, dtype, strict, verify, spec, adapt, trust_pickle)
    return (model, report) if return_report else model


def _load_model(
    path: PathLike,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
    strict: bool,
    verify: str | None,
    spec: SpecSource | None,
    adapt: bool | Adapt,
    trust_pickle: bool,
) -> tuple[VideoInterpreter, LoadReport]:
    checkpoint = read_checkpoint(
        path, verify=verify, map_location=device or "cpu", trust_pickle=trust_pickle
    )
    architecture = architecture_of(checkpoint, spec, adapt=adapt)
    model = build_meta(architecture)
    wanted = dtype if dtype is not None else precision_dtype(checkpoint.metadata.precision)
    if wanted is None:
        report = apply_weights(
            model, checkpoint, strict=strict, adapt=adapt, keep_source_dtype=True
        )
    else:
        model.to(dtype=wanted)  # on the meta device: only the dtypes change
        report = apply_weights(model, checkpoint, strict=strict, adapt=adapt)
    if report.cast:
        logger.info(
            "%s: %d tensors cast to %s (%s)",
            path,
            len(report.cast),
            str(wanted).removeprefix("torch."),
            report.summary(),
        )
    logger.debug("loaded %s/%s from %s", architecture.name, architecture.version, path)
    return model, report


def resume(
    model: nn.Module,
    path: PathLike,
    optimizer: Stateful | None = None,
    scheduler: Stateful | None = None,
    *,
    verify: str | None = None,
    restore_rng: bool = True,
    trust_pickle: bool = False,
) -> Checkpoint:
    """Continue training from a ``.pth`` checkpoint: restore the model's weights (strictly, same
    architecture), the optimizer's and scheduler's states and the RNG states, so training goes
    on exactly as if it had never stopped. Returns the checkpoint (``epoch``, ``step``, ...).

    The model comes first, then where its state comes from, as in ``load_weights`` and
    ``load_sharded``; ``resume(path, model, ...)``, the order before 0.2, still works with a
    ``DeprecationWarning``.

    Examples:
        >>> import torch
        >>> from video_interpreter import build_model, resume, save_model
        >>> model = build_model("tiny_r2plus1d")
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> _ = save_model(model, "epoch_3.pth", optimizer=optimizer, epoch=3)
        >>> resume(model, "epoch_3.pth", optimizer).epoch
        3
    """
    if is_path(model) and isinstance(path, nn.Module):
        deprecated("resume(path, model, ...) is now resume(model, path, ...)")
        model, path = path, model
    target = unwrap_model(model)
    device = next((t.device for t in target.state_dict().values() if not t.is_meta), None)
    checkpoint = read_checkpoint(
        path, verify=verify, map_location=device or "cpu", trust_pickle=trust_pickle
    )
    where = Path(path)
    for name, wanted, state in (
        ("optimizer", optimizer, checkpoint.optimizer_state_dict),
        ("scheduler", scheduler, checkpoint.scheduler_state_dict),
    ):
        if wanted is not None and state is None:
            raise CheckpointError(
                f"{where} holds no {name} state ({checkpoint.metadata.format}, "
                f"{checkpoint.metadata.kind}); resume needs a .pth saved with "
                f"save_model(..., {name}=...)"
            )
    apply_weights(target, checkpoint, strict=True)
    for name, stateful, state in (
        ("optimizer", optimizer, checkpoint.optimizer_state_dict),
        ("scheduler", scheduler, checkpoint.scheduler_state_dict),
    ):
        if stateful is None:
            continue
        try:
            stateful.load_state_dict(state)
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(
                f"{where}: the saved {name} state does not fit this {type(stateful).__name__} "
                f"(the model's weights are already restored): {exc}"
            ) from exc
    if restore_rng and checkpoint.rng_state is not None:
        restore_rng_state(checkpoint.rng_state, str(where))
    return checkpoint
