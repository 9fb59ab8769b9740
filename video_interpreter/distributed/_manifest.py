"""The sharded checkpoint's layout and its self-description (``metadata.json``, ``spec.json``).

A sharded checkpoint is a directory::

    run/step_1000/
      spec.json          the resolved spec the weights belong to (rebuilds the architecture)
      metadata.json      format, fingerprint, world size, epoch/step/loss/metrics/notes, the JSON
                         skeleton of every saved state (plain values; tensors by key) and the
                         sha256 of every other file
      .metadata          torch.distributed.checkpoint's index of the tensors' chunks
      __<rank>_0.distcp  the tensor chunks each rank wrote

``metadata.json`` and ``spec.json`` are written by rank 0 only, after every rank has written its
tensors; the directory gets its final name only then (see ``save_sharded``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# Shared with the single-file format, so both describe a checkpoint the same way.
from ..checkpoint._format import checked_fields, now_utc, package_version
from ..checkpoint._types import training_state
from ..errors import CheckpointError, SpecError
from ..spec import ArchitectureSpec, load_spec
from ._state import tensor_keys

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "SPEC_FILE",
    "ShardedCheckpointMetadata",
    "checked_fields",
    "now_utc",
    "package_version",
    "read_manifest",
]

FORMAT_NAME = "video_interpreter.sharded_checkpoint"
# Bumped when a reader of an older version could misread a newer directory.
FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class ShardedCheckpointMetadata:
    """What a sharded checkpoint directory says about itself.

    ``world_size`` is the number of ranks that wrote it (it loads into any number). ``files``
    maps each file's name to its sha256; ``model_keys`` are the model's state-dict keys.
    """

    path: Path
    name: str
    version: str
    fingerprint: str
    spec: ArchitectureSpec
    world_size: int
    created: str
    package_version: str
    torch_version: str
    format_version: int = FORMAT_VERSION
    epoch: int | None = None
    step: int | None = None
    loss: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    notes: str | None = None
    optimizer: str | None = None
    has_scheduler: bool = False
    has_rng_state: bool = False
    files: Mapping[str, str] = field(default_factory=dict)
    size_bytes: int = 0
    model_keys: tuple[str, ...] = ()

    @property
    def has_optimizer(self) -> bool:
        return self.optimizer is not None

    @property
    def training_state(self) -> tuple[str, ...]:
        """The training state held besides the weights, e.g. ``("optimizer", "rng")``."""
        return training_state(self.has_optimizer, self.has_scheduler, self.has_rng_state)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (path as a string, spec as a plain dict)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(
            path=str(self.path),
            spec=self.spec.to_dict(),
            metrics=dict(self.metrics),
            files=dict(self.files),
            model_keys=list(self.model_keys),
            training_state=list(self.training_state),
        )
        return out


# -- the plain fields a caller passes (epoch, step, loss, metrics, notes) --------------------


# -- reading --------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path.parent} is not a sharded checkpoint: {path.name} is missing (save one with "
            "save_sharded; a single-file checkpoint is read with load_model)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def read_manifest(directory: str | Path) -> tuple[ShardedCheckpointMetadata, dict[str, Any]]:
    """The checkpoint's metadata and the raw ``metadata.json`` (state skeletons included)."""
    root = Path(directory)
    if not root.is_dir():
        what = "a file" if root.exists() else "missing"
        raise CheckpointError(
            f"sharded checkpoint {root} is {what}: expected a directory written by save_sharded"
        )
    raw = _read_json(root / METADATA_FILE)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise CheckpointError(
            f"{root / METADATA_FILE} is not a {FORMAT_NAME} manifest (format {found!r})"
        )
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{root} has sharded format version {version!r}; this package reads versions up to "
            f"{FORMAT_VERSION}: upgrade video_interpreter to read it"
        )
    try:
        spec = load_spec(_read_json(root / SPEC_FILE), check_shapes=False)
    except SpecError as exc:
        raise CheckpointError(f"{root / SPEC_FILE} holds an invalid spec:\n{exc}") from exc
    try:
        if spec.fingerprint != raw["fingerprint"]:
            raise CheckpointError(
                f"{root}: {SPEC_FILE} has fingerprint {spec.fingerprint[:12]} but "
                f"{METADATA_FILE} records {str(raw['fingerprint'])[:12]}; the directory was "
                "altered after saving"
            )
        state = raw["state"]
        files = {str(k): str(v) for k, v in raw["files"].items()}
        metadata = ShardedCheckpointMetadata(
            path=root,
            name=spec.name,
            version=spec.version,
            fingerprint=spec.fingerprint,
            spec=spec,
            world_size=int(raw["world_size"]),
            created=str(raw["created"]),
            package_version=str(raw["package_version"]),
            torch_version=str(raw["torch_version"]),
            format_version=version,
            epoch=raw["epoch"],
            step=raw["step"],
            loss=raw["loss"],
            metrics=dict(raw["metrics"]),
            notes=raw["notes"],
            optimizer=raw["optimizer"],
            has_scheduler=state["scheduler"] is not None,
            has_rng_state=bool(raw["rng"]),
            files=files,
            size_bytes=sum(p.stat().st_size for p in root.iterdir() if p.is_file()),
            model_keys=tuple(key.removeprefix("model/") for key in tensor_keys(state["model"])),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(
            f"{root / METADATA_FILE} is incomplete or malformed: {exc!r}"
        ) from exc
    return metadata, raw
