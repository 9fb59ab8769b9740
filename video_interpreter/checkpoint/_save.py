"""``save_model``: a model, its spec and (in ``.pth``) its training state, written atomically.

The format follows the suffix: ``.pth`` (or ``.pt``) is one dict of tensors and plain values
that ``torch.load(weights_only=True)`` opens, holding the seed's fields (``epoch``,
``model_state_dict``, ``optimizer_state_dict``, ``loss``) and the metadata; ``.safetensors``
holds the weights, with the same metadata as JSON strings in its header, and no training state.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol, cast

import torch
from torch import nn

from ..errors import CheckpointError
from ..spec import ArchitectureSpec
from ._atomic import HashingWriter, atomic_write
from ._format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    capture_rng_state,
    check_plain,
    checked_fields,
    content_digest,
    now_utc,
    package_version,
)
from ._precision import precision_name, storage_state_dict
from ._remote import is_url, upload
from ._safetensors import write_safetensors
from ._types import SavedCheckpoint
from ._weights import unwrap_model

__all__ = ["Stateful", "checkpoint_format", "save_model", "write_checkpoint"]

logger = logging.getLogger(__name__)

_SUFFIXES = {".pth": "pth", ".pt": "pth", ".safetensors": "safetensors"}


class Stateful(Protocol):
    """An optimizer or learning-rate scheduler: anything with ``state_dict()``."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state_dict: Any, /) -> Any: ...


def checkpoint_format(path: Path) -> str:
    """``"pth"`` or ``"safetensors"``, from the file name's suffix."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise CheckpointError(
            f"cannot tell the checkpoint format of {path.name!r} from its suffix "
            f"{path.suffix!r}; use one of {', '.join(_SUFFIXES)}"
        )
    return fmt


def write_checkpoint(
    path: Path,
    *,
    spec: ArchitectureSpec,
    state_dict: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any] | None = None,
    scheduler_state: Mapping[str, Any] | None = None,
    rng_state: Mapping[str, Any] | None = None,
    epoch: Any = None,
    step: Any = None,
    loss: Any = None,
    metrics: Mapping[str, Any] | None = None,
    notes: str | None = None,
    created: str | None = None,
    monitor: tuple[str, str] | None = None,
    precision: str | None = None,
    quantization: Mapping[str, Any] | None = None,
) -> SavedCheckpoint:
    """Write a checkpoint of ``spec`` + ``state_dict`` (+ training state, ``.pth`` only).

    ``precision`` (the parameters' storage precision) and ``quantization`` (a plain dict
    describing quantised tensors) are recorded only when given, so other files are unchanged.
    """
    fmt = checkpoint_format(path)
    if any(t.is_meta for t in state_dict.values()):
        raise CheckpointError(
            f"cannot save {path.name}: the model's tensors are on the meta device (no weights); "
            "materialise or load it first"
        )
    fields: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": str(spec.name),
        "version": str(spec.version),
        "fingerprint": spec.fingerprint,
        "spec": spec.to_dict(),
        "created": created or now_utc(),
        "package_version": package_version(),
        "torch_version": str(torch.__version__),  # a str subclass, refused by weights_only
        **checked_fields(
            epoch=epoch, step=step, loss=loss, metrics=metrics, notes=notes, monitor=monitor
        ),
    }
    if precision is not None:
        fields["precision"] = precision
    if quantization is not None:
        check_plain(quantization, "quantization")
        fields["quantization"] = dict(quantization)
    if fmt == "safetensors":
        held = [n for n, s in (("optimizer", optimizer_state), ("scheduler", scheduler_state)) if s]
        if held:
            raise CheckpointError(
                f"{path.name}: a .safetensors checkpoint holds weights only, not "
                f"{' or '.join(held)} state; save training checkpoints as .pth"
            )
        _refuse_shared_storage(path, state_dict)
        with atomic_write(path) as sink:
            write_safetensors(sink, state_dict, fields)
    else:
        payload: dict[str, Any] = {
            **fields,
            "model_state_dict": dict(state_dict),
            "optimizer_state_dict": optimizer_state,
            "scheduler_state_dict": scheduler_state,
            "rng_state": rng_state,
        }
        for name in ("optimizer_state_dict", "scheduler_state_dict", "rng_state"):
            check_plain(payload[name], name)
        payload["digest"] = content_digest(payload)
        with atomic_write(path) as sink:
            _torch_save(payload, sink)
    saved = SavedCheckpoint(path, sink.hexdigest(), sink.size, spec.fingerprint)
    logger.info("saved %s (%d bytes, sha256 %s)", path, saved.size_bytes, saved.sha256[:12])
    return saved


def _torch_save(payload: Mapping[str, Any], sink: HashingWriter) -> None:
    try:
        torch.save(payload, cast(IO[bytes], sink))  # torch only calls write()
    except RuntimeError as exc:
        # When an error (or Ctrl-C) interrupts it, torch's zip writer still tries to finish the
        # archive on the way out and raises its own RuntimeError, hiding the real cause.
        original = exc.__context__
        if original is not None and "inline_container" in str(exc):
            raise original from None
        raise


def _refuse_shared_storage(path: Path, state_dict: Mapping[str, torch.Tensor]) -> None:
    seen: dict[tuple[torch.device, int], str] = {}
    for key, tensor in state_dict.items():
        if tensor.numel() == 0:
            continue
        where = (tensor.device, tensor.untyped_storage().data_ptr())
        if where in seen:
            raise CheckpointError(
                f"{path.name}: {seen[where]!r} and {key!r} share memory (tied weights), which "
                ".safetensors cannot express; save as .pth, which keeps the tie"
            )
        seen[where] = key


def save_model(
    model: nn.Module,
    path: str | Path,
    *,
    optimizer: Stateful | None = None,
    scheduler: Stateful | None = None,
    epoch: int | None = None,
    step: int | None = None,
    loss: float | torch.Tensor | None = None,
    metrics: Mapping[str, Any] | None = None,
    notes: str | None = None,
    monitor: tuple[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> SavedCheckpoint:
    """Save ``model`` (a ``VideoInterpreter``, possibly wrapped by DDP or torch.compile) with its
    spec and metadata; with ``optimizer``/``scheduler`` (``.pth`` only) also their states and
    the RNG states, so ``resume`` continues training bit-identically.

    ``monitor`` (``(metric, "max" | "min")``) records which metric ranks this model and in
    which direction, so a ``ModelStore`` can choose its best model from the files alone.
    ``dtype`` (``torch.bfloat16`` or ``torch.float16``) stores the floating-point parameters
    in that precision, about half the bytes, and records it; buffers (BatchNorm running
    statistics) stay float32. A float16 save of a model with values beyond float16's range
    (65504) is refused, never stored as infinity. The model itself is not changed.
    The write is atomic and hashed: the returned ``sha256`` is of the bytes written.

    Examples:
        >>> from video_interpreter import build_model, read_metadata, save_model
        >>> model = build_model("tiny_r2plus1d")
        >>> saved = save_model(model, "tiny.pth", epoch=3, metrics={"acc": 0.9})
        >>> len(saved.sha256), read_metadata("tiny.pth").metrics
        (64, {'acc': 0.9})
    """
    if is_url(path):
        return _save_to_url(
            model,
            str(path),
            optimizer=optimizer,
            scheduler=scheduler,
            epoch=epoch,
            step=step,
            loss=loss,
            metrics=metrics,
            notes=notes,
            monitor=monitor,
            dtype=dtype,
        )
    path = Path(path)
    target = unwrap_model(model)
    spec = getattr(target, "spec", None)
    if not isinstance(spec, ArchitectureSpec):
        raise CheckpointError(
            f"cannot save {type(target).__name__} to {path.name}: a checkpoint embeds the "
            "model's ArchitectureSpec, and this model has none (build it with build_model); "
            "for other modules, torch.save(module.state_dict(), ...)"
        )
    pth = checkpoint_format(path) == "pth"
    precision = precision_name(dtype)
    state_dict = target.state_dict()
    if dtype is not None and precision is not None:
        state_dict = storage_state_dict(target, state_dict, dtype, path.name)
    return write_checkpoint(
        path,
        spec=spec,
        state_dict=state_dict,
        optimizer_state=optimizer.state_dict() if optimizer is not None else None,
        scheduler_state=scheduler.state_dict() if scheduler is not None else None,
        rng_state=capture_rng_state() if pth else None,
        epoch=epoch,
        step=step,
        loss=loss,
        metrics=metrics,
        notes=notes,
        monitor=monitor,
        precision=precision,
    )


def _save_to_url(model: nn.Module, url: str, **options: Any) -> SavedCheckpoint:
    """Save locally, then upload in one request: the object appears whole or not at all."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    with tempfile.TemporaryDirectory(prefix="vi-upload-") as tmp:
        saved = save_model(model, Path(tmp) / name, **options)
        upload(saved.path, url)
    return dataclasses.replace(saved, path=Path(name), url=url)
