"""What saving returns and what reading gives back: ``SavedCheckpoint``, ``CheckpointMetadata``
and ``Checkpoint``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..spec import ArchitectureSpec

__all__ = ["Checkpoint", "CheckpointMetadata", "SavedCheckpoint", "training_state"]


def training_state(optimizer: bool, scheduler: bool, rng: bool) -> tuple[str, ...]:
    """The names of the training state a checkpoint holds besides the weights."""
    held = (("optimizer", optimizer), ("scheduler", scheduler), ("rng", rng))
    return tuple(name for name, present in held if present)


@dataclass(frozen=True)
class SavedCheckpoint:
    """A file ``save_model`` wrote: where, its sha256 (hashed while writing), size, and the
    fingerprint of the architecture it holds."""

    path: Path
    sha256: str
    size_bytes: int
    fingerprint: str
    url: str | None = None  # where it was uploaded, for a save to a URL (path is then its name)


@dataclass(frozen=True)
class CheckpointMetadata:
    """Everything a checkpoint says about itself except its tensors' values.

    ``kind`` is ``"video_interpreter"`` (this package's format, spec embedded), ``"training"``
    (a dict with ``model_state_dict``, no spec), ``"state_dict"`` (tensors only) or
    ``"pickled_model"`` (a whole module, opened with ``trust_pickle=True``). Fields a kind does
    not carry are None.
    """

    path: Path
    format: str  # "pth" or "safetensors"
    kind: str
    size_bytes: int
    tensor_count: int
    tensor_bytes: int
    format_version: int | None = None
    name: str | None = None
    version: str | None = None
    fingerprint: str | None = None
    spec: Mapping[str, Any] | None = field(default=None, repr=False)
    created: str | None = None
    package_version: str | None = None
    torch_version: str | None = None
    epoch: int | None = None
    step: int | None = None
    loss: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    notes: str | None = None
    monitor: tuple[str, str] | None = None  # (metric, "max" | "min") that ranks the model
    # The storage precision of the parameters ("bfloat16", "float16"); None: as trained.
    precision: str | None = None
    # How the weights were quantised (scheme, library and version, the quantised tensors);
    # such a checkpoint is opened by video_interpreter.compress.load_quantized.
    quantization: Mapping[str, Any] | None = field(default=None, repr=False)
    has_optimizer: bool = False
    has_scheduler: bool = False
    has_rng_state: bool = False

    @property
    def training_state(self) -> tuple[str, ...]:
        """The training state held besides the weights, e.g. ``("optimizer", "rng")``."""
        return training_state(self.has_optimizer, self.has_scheduler, self.has_rng_state)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the path as a string)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["path"] = str(self.path)
        out["metrics"] = dict(self.metrics)
        out["monitor"] = list(self.monitor) if self.monitor is not None else None
        out["spec"] = dict(self.spec) if self.spec is not None else None
        out["quantization"] = dict(self.quantization) if self.quantization is not None else None
        out["training_state"] = list(self.training_state)
        return out


@dataclass(frozen=True, repr=False)
class Checkpoint:
    """A checkpoint read into memory (tensors memory-mapped where the format allows).

    ``spec`` is the embedded architecture (None for a plain state dict). ``epoch``, ``step``,
    ``loss``, ``metrics`` and ``notes`` are read from ``metadata``.
    """

    metadata: CheckpointMetadata
    spec: ArchitectureSpec | None
    state_dict: dict[str, torch.Tensor]
    optimizer_state_dict: dict[str, Any] | None = None
    scheduler_state_dict: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        return self.metadata.path

    @property
    def epoch(self) -> int | None:
        return self.metadata.epoch

    @property
    def step(self) -> int | None:
        return self.metadata.step

    @property
    def loss(self) -> float | None:
        return self.metadata.loss

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.metadata.metrics

    @property
    def notes(self) -> str | None:
        return self.metadata.notes

    def __repr__(self) -> str:
        # Short: the default would print every tensor (tens of thousands of lines).
        meta = self.metadata
        parts = [f"{str(meta.path)!r}", f"{meta.format}", f"kind={meta.kind!r}"]
        if meta.name is not None:
            parts.append(f"architecture='{meta.name}/{meta.version}'")
        parts.append(f"tensors={len(self.state_dict)} ({meta.tensor_bytes} bytes)")
        for name in ("epoch", "step", "loss"):
            value = getattr(meta, name)
            if value is not None:
                parts.append(f"{name}={value!r}")
        if meta.training_state:
            parts.append(f"training_state={meta.training_state!r}")
        return f"Checkpoint({', '.join(parts)})"
