"""Reading any supported checkpoint file into a ``Checkpoint``, safely.

Supported: this package's ``.pth`` and ``.safetensors``, a plain state dict (either format), a
training dict with ``model_state_dict`` (``epoch``, ``optimizer_state_dict``, ``loss``), and, only
with ``trust_pickle=True``, a whole pickled module. The format is told by the file's first bytes,
not its name. ``.pth`` files are opened with ``torch.load(weights_only=True, mmap=True)``, so
unpickling can run no code and tensors stay in the page cache until used. Every failure of a
foreign reader becomes a ``CheckpointError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

import torch
from torch import nn

from ..errors import CheckpointError
from ..spec import ArchitectureSpec
from ._atomic import sha256_file
from ._format import FORMAT_NAME, FORMAT_VERSION, checked_monitor, content_digest
from ._precision import PRECISIONS
from ._safetensors import SafetensorsHeader, header_digest, read_header, read_tensors
from ._types import Checkpoint, CheckpointMetadata
from ._zipcheck import check_torch_zip

__all__ = [
    "PathLike",
    "detect_format",
    "read_checkpoint",
    "refuse_quantized",
    "spec_from_checkpoint",
]

logger = logging.getLogger(__name__)

PathLike = str | Path
MapLocation = str | torch.device | None

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_2_PLUS = b"\x80"
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def detect_format(path: Path) -> str:
    """``"pth"`` (torch zip), ``"pth-legacy"`` (torch's old pickle format) or
    ``"safetensors"``, from the first bytes."""
    if path.is_dir():
        raise _directory_error(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes): not a checkpoint")
    if head.startswith(_ZIP_MAGIC):
        return "pth"
    if head.startswith(_PICKLE_PROTOCOL_2_PLUS):
        return "pth-legacy"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    raise CheckpointError(
        f"{path} is neither a torch .pth (zip) nor a .safetensors file (it starts with "
        f"{head[:8]!r}); truncated to nothing, damaged, or another kind of file"
    )


# What save_sharded writes (video_interpreter.distributed), known here by name only: the
# checkpoint stage does not import the distributed one.
_SHARDED_MARKERS = ("metadata.json", "spec.json")


def _directory_error(path: Path) -> CheckpointError:
    if all((path / name).is_file() for name in _SHARDED_MARKERS):
        return CheckpointError(
            f"{path} is a sharded checkpoint (a directory written by save_sharded), not a "
            "checkpoint file; load it with video_interpreter.distributed.load_sharded_model, "
            f"or write one file first: `video-interpreter consolidate {path} OUT.pth`"
        )
    return CheckpointError(f"{path} is a directory, not a checkpoint file (.pth, .safetensors)")


def _check_sha256(path: Path, expected: str) -> None:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise _directory_error(path)
    if not _SHA256.match(expected):
        raise CheckpointError(
            f"verify={expected!r} is not a sha256 (64 hexadecimal characters) for {path}"
        )
    actual = sha256_file(path)
    if actual != expected.lower():
        raise CheckpointError(
            f"{path}: sha256 mismatch: expected {expected.lower()}, the file has {actual}; it "
            "is damaged, truncated or not the file that was recorded"
        )


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _torch_load(path: Path, fmt: str, map_location: MapLocation, trust_pickle: bool) -> Any:
    if fmt == "pth":
        check_torch_zip(path)
    try:
        return torch.load(
            path, map_location=map_location, mmap=fmt == "pth", weights_only=not trust_pickle
        )
    except pickle.UnpicklingError as exc:
        message = str(exc)
        if message.startswith("Weights only load failed"):
            found = _GLOBAL.search(message)
            what = f" (such as {found.group(1)})" if found else ""
            raise CheckpointError(
                f"{path}: refused to unpickle: the file holds Python objects{what} besides "
                "tensors and plain values (for example a whole model saved with "
                "torch.save(model)), and unpickling them can run arbitrary code. If the file "
                "is damaged, restore it; if it is intact and you trust its origin, pass "
                "trust_pickle=True (CLI: --trust-pickle) once and re-save it with save_model()"
            ) from exc
        raise CheckpointError(
            f"{path}: corrupt .pth: its pickled index is damaged ({exc})"
        ) from exc
    except Exception as exc:  # zip, storage, decoding errors of a damaged file
        raise CheckpointError(
            f"{path}: corrupt or truncated .pth: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _is_tensor_dict(value: Any) -> TypeGuard[Mapping[str, torch.Tensor]]:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def _nbytes(state_dict: Mapping[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state_dict.values())


def _optional(kind: type | tuple[type, ...], value: Any, name: str, path: Path) -> Any:
    if value is not None and not isinstance(value, kind):
        raise CheckpointError(
            f"{path}: field {name!r} holds a {type(value).__name__}, which this format does not "
            "allow; the file is damaged or was not written by video_interpreter"
        )
    return value


def spec_from_checkpoint(spec: Any, fingerprint: Any, path: Path) -> ArchitectureSpec:
    """The embedded spec, proven to be the one saved: it must hash to the stored fingerprint.

    The embedded spec is already resolved (defaults filled), so it is rebuilt as is rather than
    composed again; the fingerprint match stands in for re-validation.
    """
    if not isinstance(spec, Mapping) or not isinstance(fingerprint, str):
        raise CheckpointError(f"{path}: the embedded spec or its fingerprint is missing or damaged")
    try:
        resolved = ArchitectureSpec.from_resolved(dict(spec), source=f"{path} (embedded spec)")
        actual = resolved.fingerprint
    except Exception as exc:  # a damaged spec can fail in many ways; all mean the same
        raise CheckpointError(f"{path}: the embedded spec is damaged: {exc}") from exc
    if actual != fingerprint:
        raise CheckpointError(
            f"{path}: the embedded spec hashes to {actual[:12]}, the checkpoint records "
            f"{fingerprint[:12]}; the file is damaged or was edited"
        )
    return resolved


def refuse_quantized(checkpoint: Checkpoint) -> None:
    """A quantised checkpoint holds the parts of quantised tensors, which only the compress
    stage can put back together: say so instead of reporting hundreds of unexpected keys."""
    quantization = checkpoint.metadata.quantization
    if quantization is not None:
        scheme = quantization.get("scheme")
        raise CheckpointError(
            f"{checkpoint.path} holds a quantised model (scheme {scheme!r:.40}); load it with "
            "video_interpreter.compress.load_quantized(path), which needs torchao "
            "(pip install 'video-interpreter[compress]')"
        )


# -- interpreting what was read ---------------------------------------------------------------


def _metadata_fields(fields: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Type-check the metadata fields of this package's format."""
    version = fields.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: the format version is missing or damaged")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version}; this version of video-interpreter reads "
            f"formats up to {FORMAT_VERSION}: upgrade the package to open it"
        )
    out: dict[str, Any] = {"format_version": version}
    for name in ("name", "version", "fingerprint", "created", "package_version", "torch_version"):
        out[name] = _optional(str, fields.get(name), name, path)
    out["notes"] = _optional(str, fields.get("notes"), "notes", path)
    out["epoch"] = _optional(int, fields.get("epoch"), "epoch", path)
    out["step"] = _optional(int, fields.get("step"), "step", path)
    out["loss"] = _optional((int, float), fields.get("loss"), "loss", path)
    if isinstance(out["loss"], int):
        try:
            out["loss"] = float(out["loss"])
        except OverflowError as exc:
            raise CheckpointError(f"{path}: field 'loss' is an integer too large") from exc
    out["metrics"] = _optional(Mapping, fields.get("metrics"), "metrics", path) or {}
    out["spec"] = _optional(Mapping, fields.get("spec"), "spec", path)
    monitor = checked_monitor(fields.get("monitor"), f"{path}: field 'monitor'")
    out["monitor"] = (monitor["metric"], monitor["mode"]) if monitor is not None else None
    precision = _optional(str, fields.get("precision"), "precision", path)
    if precision is not None and precision not in PRECISIONS:
        raise CheckpointError(
            f"{path}: field 'precision' is {precision!r:.40}; this version reads "
            f"{', '.join(PRECISIONS)} (the file is damaged or was written by a newer version)"
        )
    out["precision"] = precision
    out["quantization"] = _optional(Mapping, fields.get("quantization"), "quantization", path)
    return out


def _from_pth(path: Path, obj: Any, size: int) -> Checkpoint:
    fmt = "pth"
    if isinstance(obj, nn.Module):  # only reachable with trust_pickle=True
        state = obj.state_dict()
        spec = getattr(obj, "spec", None)
        spec = spec if isinstance(spec, ArchitectureSpec) else None
        meta = CheckpointMetadata(
            path,
            fmt,
            "pickled_model",
            size,
            len(state),
            _nbytes(state),
            name=spec.name if spec else None,
            version=spec.version if spec else None,
            fingerprint=spec.fingerprint if spec else None,
            spec=spec.to_dict() if spec else None,
        )
        return Checkpoint(meta, spec, dict(state))
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a dict: not a checkpoint this package "
            "reads (expected a state dict or a dict with model_state_dict)"
        )
    if obj.get("format") == FORMAT_NAME:
        return _from_ours(path, obj, size)
    for key in ("model_state_dict", "state_dict"):
        if key in obj:
            state = obj[key]
            if not _is_tensor_dict(state):
                raise CheckpointError(f"{path}: {key!r} is not a dict of tensors")
            epoch = obj.get("epoch")
            loss = obj.get("loss")
            if isinstance(loss, torch.Tensor) and loss.numel() == 1:
                loss = float(loss)
            if isinstance(loss, int) and not -(2**53) <= loss <= 2**53:
                loss = None  # a foreign file's odd value: not one a float holds
            optimizer = obj.get("optimizer_state_dict")
            meta = CheckpointMetadata(
                path,
                fmt,
                "training",
                size,
                len(state),
                _nbytes(state),
                epoch=epoch if isinstance(epoch, int) else None,
                loss=float(loss) if isinstance(loss, int | float) else None,
                has_optimizer=optimizer is not None,
                has_scheduler=obj.get("scheduler_state_dict") is not None,
            )
            return Checkpoint(
                meta, None, dict(state), optimizer, obj.get("scheduler_state_dict"), None
            )
    if _is_tensor_dict(obj):
        meta = CheckpointMetadata(path, fmt, "state_dict", size, len(obj), _nbytes(obj))
        return Checkpoint(meta, None, dict(obj))
    keys = ", ".join(repr(k) for k in list(obj)[:8])
    raise CheckpointError(
        f"{path}: unrecognised checkpoint layout (top-level keys {keys}); expected this "
        "package's format, a state dict, or a dict with 'model_state_dict'"
    )


def _from_ours(path: Path, obj: Mapping[str, Any], size: int) -> Checkpoint:
    content = {k: v for k, v in obj.items() if k != "digest"}
    try:
        digest = content_digest(content)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if obj.get("digest") != digest:
        raise CheckpointError(
            f"{path}: the checkpoint's metadata does not match its digest; the file is "
            "damaged or was edited"
        )
    fields = _metadata_fields(obj, path)
    state = obj.get("model_state_dict")
    if not _is_tensor_dict(state):
        raise CheckpointError(f"{path}: 'model_state_dict' is missing or not a dict of tensors")
    spec = spec_from_checkpoint(fields["spec"], fields["fingerprint"], path)
    optimizer = obj.get("optimizer_state_dict")
    scheduler = obj.get("scheduler_state_dict")
    rng = obj.get("rng_state")
    meta = CheckpointMetadata(
        path,
        "pth",
        "video_interpreter",
        size,
        len(state),
        _nbytes(state),
        **fields,
        has_optimizer=optimizer is not None,
        has_scheduler=scheduler is not None,
        has_rng_state=rng is not None,
    )
    return Checkpoint(meta, spec, dict(state), optimizer, scheduler, rng)


def _from_safetensors(
    path: Path, header: SafetensorsHeader, size: int, device: str, metadata_only: bool
) -> Checkpoint:
    count = len(header.tensors)
    nbytes = sum(entry.nbytes for entry in header.tensors.values())
    raw = header.metadata
    # Any of these marks the file as ours: a damaged "format" value must not demote it to a
    # plain state dict (the digest check below then reports the damage).
    ours = raw.get("format") == json.dumps(FORMAT_NAME) or "digest" in raw or "fingerprint" in raw
    if not ours:
        tensors = {} if metadata_only else read_tensors(path, device)
        meta = CheckpointMetadata(path, "safetensors", "state_dict", size, count, nbytes)
        return Checkpoint(meta, None, tensors)
    try:
        decoded = {k: json.loads(v) for k, v in raw.items() if k != "digest"}
        digest = json.dumps(header_digest(decoded, header.tensors))
    except RecursionError as exc:  # json's own parser, on values nested thousands deep
        raise CheckpointError(
            f"{path}: damaged metadata in the header (nested too deeply to read)"
        ) from exc
    except (ValueError, CheckpointError) as exc:
        raise CheckpointError(f"{path}: damaged metadata in the header ({exc})") from exc
    if raw.get("digest") != digest:
        raise CheckpointError(
            f"{path}: the checkpoint's metadata does not match its digest; the file is "
            "damaged or was edited"
        )
    fields = _metadata_fields(decoded, path)
    spec = spec_from_checkpoint(fields["spec"], fields["fingerprint"], path)
    tensors = {} if metadata_only else read_tensors(path, device)
    meta = CheckpointMetadata(
        path, "safetensors", "video_interpreter", size, count, nbytes, **fields
    )
    return Checkpoint(meta, spec, tensors)


def read_checkpoint(
    path: PathLike,
    *,
    verify: str | None = None,
    map_location: MapLocation = None,
    trust_pickle: bool = False,
    metadata_only: bool = False,
) -> Checkpoint:
    """Read ``path`` (format from its content). ``verify`` is checked before anything else."""
    path = Path(path)
    if verify is not None:  # first: nothing of a file that fails it is trusted
        _check_sha256(path, verify)
    fmt = detect_format(path)
    size = path.stat().st_size
    if fmt == "safetensors":
        header = read_header(path)
        device = "cpu" if map_location is None else str(torch.device(map_location))
        return _from_safetensors(path, header, size, device, metadata_only)
    obj = _torch_load(path, fmt, map_location, trust_pickle)
    # A .pth index is read whole either way; its tensors stay mapped, not read.
    return _from_pth(path, obj, size)
