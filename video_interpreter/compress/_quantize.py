"""``quantize``, ``save_quantized`` and ``load_quantized``: int8 models through torchao, kept in
this package's self-describing checkpoints.

A quantised weight is a torchao tensor subclass (``Int8Tensor``). A checkpoint never pickles
it: ``save_quantized`` writes its parts as plain tensors under ``"<key>::<part>"``
(``qdata``: int8, ``scale``, ``zero_point``) and records in the metadata the scheme, torchao's
version and, per quantised key, its class name, shape, dtype, parts and attributes. So a
``.pth`` stays a dict of tensors and plain values (``torch.load(weights_only=True)`` opens it
without torchao) and ``.safetensors`` works too. ``load_quantized`` builds the model, applies
the recorded scheme (from this package's table, never from the file) and copies the stored
parts into the tensors it made, after checking that they describe the same thing: the
restored model computes bit for bit what the saved one did.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import SavedCheckpoint, load_checkpoint, read_metadata
from ..checkpoint._save import write_checkpoint
from ..checkpoint._weights import apply_weights, unwrap_model
from ..errors import CheckpointError, CompressionError
from ..model import VideoInterpreter, build_meta
from ..spec import ArchitectureSpec
from ._schemes import QuantizationScheme, get_scheme, require_torchao, torchao_config

__all__ = [
    "PART_SEPARATOR",
    "QuantizationCoverage",
    "coverage",
    "load_quantized",
    "quantization_scheme",
    "quantize",
    "save_quantized",
]

logger = logging.getLogger(__name__)

# "<state-dict key>::<part>": no module or parameter name contains "::".
PART_SEPARATOR = "::"
LIBRARY = "torchao"
# Set on a model by quantize(): which scheme made it, so save_quantized can record it.
_SCHEME_ATTRIBUTE = "quantization_scheme"


def quantization_scheme(model: nn.Module) -> str | None:
    """The name of the scheme ``quantize`` applied to ``model`` (None: not quantised).

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.compress import quantization_scheme, quantize
        >>> model = build_model("tiny_r2plus1d")
        >>> quantization_scheme(model) is None
        True
        >>> quantization_scheme(quantize(model, "int8_weight_only"))
        'int8_weight_only'
    """
    name = getattr(unwrap_model(model), _SCHEME_ATTRIBUTE, None)
    return name if isinstance(name, str) else None


def _is_quantized(tensor: torch.Tensor) -> bool:
    return type(tensor) not in (torch.Tensor, nn.Parameter) and hasattr(
        tensor, "__tensor_flatten__"
    )


QuantizationCoverage = dict[str, tuple[int, int]]


def coverage(model: nn.Module) -> QuantizationCoverage:
    """Per layer type (class name) that owns parameters: (quantised, total) parameter counts."""
    out: dict[str, list[int]] = {}
    for module in unwrap_model(model).modules():
        own = list(module.parameters(recurse=False))
        if not own:
            continue
        counts = out.setdefault(type(module).__name__, [0, 0])
        for parameter in own:
            counts[1] += parameter.numel()
            if _is_quantized(parameter):
                counts[0] += parameter.numel()
    return {name: (done, total) for name, (done, total) in out.items()}


def _spec_of(model: nn.Module, action: str) -> ArchitectureSpec:
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ArchitectureSpec):
        raise CompressionError(
            f"cannot {action} a {type(model).__name__}: a quantised checkpoint embeds the "
            "model's ArchitectureSpec, and this model has none (build it with build_model)"
        )
    return spec


def quantize(model: nn.Module, scheme: str) -> VideoInterpreter:
    """A quantised copy of ``model`` (a ``VideoInterpreter``; the model itself is unchanged).

    ``scheme`` is one of ``SCHEMES`` (``"int8_weight_only"``, ``"int8_dynamic"``); both
    quantise the weights of ``nn.Linear`` layers only (see ``video_interpreter.compress``
    for what is covered per layer type). Needs torchao (the ``compress`` extra).

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.compress import load_quantized, quantize, save_quantized
        >>> quantized = quantize(build_model("tiny_r2plus1d"), "int8_weight_only")
        >>> _ = save_quantized(quantized, "tiny_int8.safetensors")
        >>> load_quantized("tiny_int8.safetensors").spec.name
        'tiny_r2plus1d'
    """
    chosen = get_scheme(scheme)
    torchao = require_torchao(f"quantize(..., {scheme!r})")
    target = unwrap_model(model)
    spec = _spec_of(target, "quantize")
    if quantization_scheme(target) is not None:
        raise CompressionError(
            f"{spec.name}/{spec.version} is already quantised "
            f"({quantization_scheme(target)}); quantise the float model"
        )
    if any(t.is_meta for t in target.state_dict().values()):
        raise CompressionError(
            f"cannot quantise {spec.name}/{spec.version}: its tensors are on the meta device "
            "(no weights); load or initialise it first"
        )
    if not isinstance(target, VideoInterpreter):
        raise CompressionError(
            f"quantize takes a VideoInterpreter (build_model, load_model), got "
            f"{type(target).__name__}"
        )
    quantized = copy.deepcopy(target)
    _apply(quantized, chosen, torchao)
    covered = sum(done for done, _ in coverage(quantized).values())
    if covered == 0:
        raise CompressionError(
            f"{spec.name}/{spec.version} has no layer that {scheme} quantises (it covers "
            f"{', '.join(c.__name__ for c in chosen.covers)}); store it in bfloat16 instead: "
            "save_model(model, path, dtype=torch.bfloat16)"
        )
    setattr(quantized, _SCHEME_ATTRIBUTE, chosen.name)
    total = sum(p.numel() for p in quantized.parameters())
    logger.info(
        "quantised %s/%s with %s: %d of %d parameters (%.0f%%)",
        spec.name,
        spec.version,
        scheme,
        covered,
        total,
        100 * covered / max(total, 1),
    )
    return quantized


def _apply(model: nn.Module, scheme: QuantizationScheme, torchao: Any) -> None:
    quantization = torchao.quantization
    quantization.quantize_(
        model,
        torchao_config(scheme, torchao),
        filter_fn=lambda module, _name: scheme.covered(module),
    )


# -- describing a quantised tensor in plain values --------------------------------------------


def _plain(value: Any) -> Any:
    """An attribute of a torchao tensor as a plain value (JSON and weights-only safe)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    return repr(value)  # configuration objects: compared, never rebuilt from the file


def _describe(tensor: torch.Tensor) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    names, attributes = tensor.__tensor_flatten__()  # type: ignore[attr-defined]
    parts = {str(name): getattr(tensor, name) for name in names}
    description = {
        "layout": type(tensor).__name__,
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "parts": {
            name: [str(part.dtype).removeprefix("torch."), list(part.shape)]
            for name, part in parts.items()
        },
        "attributes": {str(key): _plain(value) for key, value in dict(attributes).items()},
    }
    return description, parts


def save_quantized(
    model: nn.Module,
    path: str | Path,
    *,
    epoch: int | None = None,
    step: int | None = None,
    loss: float | None = None,
    metrics: Mapping[str, Any] | None = None,
    notes: str | None = None,
    monitor: tuple[str, str] | None = None,
) -> SavedCheckpoint:
    """Save a model made by ``quantize`` as a self-describing checkpoint (``.pth`` or
    ``.safetensors``, by suffix): spec, plain tensors, and the quantisation recorded in the
    metadata. Returns the ``SavedCheckpoint``.

    Examples:
        >>> from video_interpreter import build_model, read_metadata
        >>> from video_interpreter.compress import quantize, save_quantized
        >>> model = quantize(build_model("tiny_r2plus1d"), "int8_weight_only")
        >>> _ = save_quantized(model, "tiny_int8.safetensors", metrics={"acc": 0.9})
        >>> read_metadata("tiny_int8.safetensors").metrics
        {'acc': 0.9}
    """
    path = Path(path)
    target = unwrap_model(model)
    spec = _spec_of(target, "save")
    scheme = quantization_scheme(target)
    if scheme is None:
        raise CompressionError(
            f"cannot save {spec.name}/{spec.version} to {path.name} as quantised: it was not "
            "made by video_interpreter.compress.quantize; save a float model with save_model"
        )
    torchao = require_torchao(f"saving a {scheme} model")
    state: dict[str, torch.Tensor] = {}
    tensors: dict[str, Any] = {}
    for key, tensor in target.state_dict().items():
        if not _is_quantized(tensor):
            state[key] = tensor
            continue
        description, parts = _describe(tensor)
        for name, part in parts.items():
            if type(part) is not torch.Tensor:
                raise CompressionError(
                    f"cannot save {key!r}: its part {name!r} is a {type(part).__name__}, not a "
                    "plain tensor (a torchao layout this package does not store)"
                )
            state[f"{key}{PART_SEPARATOR}{name}"] = part
        tensors[key] = description
    quantization = {
        "scheme": scheme,
        "library": LIBRARY,
        "library_version": str(getattr(torchao, "__version__", "unknown")),
        "tensors": tensors,
    }
    return write_checkpoint(
        path,
        spec=spec,
        state_dict=state,
        epoch=epoch,
        step=step,
        loss=loss,
        metrics=metrics,
        notes=notes,
        monitor=monitor,
        quantization=quantization,
    )


# -- loading ----------------------------------------------------------------------------------


def _damaged(path: Path, what: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: the quantisation record is damaged or was edited: {what}; the file cannot be "
        "restored as the model that was saved"
    )


def _recorded(
    path: Path, record: Mapping[str, Any]
) -> tuple[QuantizationScheme, str, dict[str, Any]]:
    library = record.get("library")
    if library != LIBRARY:
        raise _damaged(path, f"library {library!r:.40}, expected {LIBRARY!r}")
    name = record.get("scheme")
    if not isinstance(name, str):
        raise _damaged(path, "the scheme is missing")
    try:
        scheme = get_scheme(name)
    except CompressionError as exc:
        raise _damaged(path, str(exc)) from None
    version = record.get("library_version")
    tensors = record.get("tensors")
    if not isinstance(version, str) or not isinstance(tensors, Mapping) or not tensors:
        raise _damaged(path, "the torchao version or the list of quantised tensors is missing")
    return scheme, version, dict(tensors)


def _split(
    path: Path, state: Mapping[str, torch.Tensor], recorded: Mapping[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, torch.Tensor]]]:
    plain: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        base, separator, part = key.rpartition(PART_SEPARATOR)
        if not separator:
            plain[key] = tensor
        elif base not in recorded:
            raise _damaged(path, f"tensor {key!r} is a part of {base!r}, which is not recorded")
        else:
            parts.setdefault(base, {})[part] = tensor
    missing = sorted(set(recorded) - set(parts))
    if missing:
        raise _damaged(path, f"no stored parts for {', '.join(missing[:3])}")
    return plain, parts


def _placeholder(path: Path, key: str, entry: Any, model_state: Mapping[str, Any]) -> torch.Tensor:
    """A float tensor of the recorded shape, quantised and then overwritten by the stored
    parts: only the model's structure comes from it. The recorded shape must be the
    architecture's before anything is allocated."""
    want = model_state.get(key)
    if want is None:
        raise _damaged(path, f"{key!r} is not a tensor of the embedded architecture")
    try:
        shape = tuple(int(n) for n in entry["shape"])
        dtype = getattr(torch, str(entry["dtype"]))
    except (TypeError, KeyError, ValueError, AttributeError):
        raise _damaged(path, f"the entry of {key!r} has no valid shape and dtype") from None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise _damaged(path, f"{key!r} records dtype {entry['dtype']!r:.20}")
    if shape != tuple(want.shape):
        raise _damaged(
            path, f"{key!r} records shape {list(shape)}, the architecture has {list(want.shape)}"
        )
    return torch.zeros(shape, dtype=dtype)


def _restore(
    path: Path, model: nn.Module, recorded: Mapping[str, Any], parts: Mapping[str, Any]
) -> None:
    made = {key for key, tensor in model.state_dict().items() if _is_quantized(tensor)}
    if made != set(recorded):
        extra = sorted(made - set(recorded))[:3]
        absent = sorted(set(recorded) - made)[:3]
        raise _damaged(
            path,
            f"the scheme quantises other tensors than the file holds (not stored: {extra}, "
            f"not quantised by the scheme: {absent})",
        )
    with torch.no_grad():
        for key in sorted(recorded):
            module_path, _, name = key.rpartition(".")
            owner = model.get_submodule(module_path) if module_path else model
            template = getattr(owner, name)
            description, targets = _describe(template)
            if description != recorded[key]:
                raise _damaged(
                    path,
                    f"{key!r} is recorded as {recorded[key]!r:.300}, the scheme makes "
                    f"{description!r:.300}",
                )
            for part, target in targets.items():
                stored = parts[key].get(part)
                if stored is None or stored.shape != target.shape or stored.dtype != target.dtype:
                    raise _damaged(path, f"part {part!r} of {key!r} is missing or mis-shaped")
                target.copy_(stored)
            if set(parts[key]) != set(targets):
                raise _damaged(path, f"{key!r} has unexpected parts {sorted(parts[key])}")


def load_quantized(path: str | Path, *, verify: str | None = None) -> VideoInterpreter:
    """Rebuild a model saved by ``save_quantized``: the same scheme applied to the embedded
    architecture, the stored parts put back, outputs bit-identical to the saved model's.

    Refused with ``CompressionError`` when torchao is not installed, and with
    ``CheckpointError`` when the quantisation record does not describe what the scheme
    makes (edited, damaged, or written with an incompatible torchao).

    Examples:
        >>> from video_interpreter import build_model
        >>> from video_interpreter.compress import load_quantized, quantize, save_quantized
        >>> quantized = quantize(build_model("tiny_r2plus1d"), "int8_dynamic")
        >>> saved = save_quantized(quantized, "q.safetensors")
        >>> load_quantized("q.safetensors", verify=saved.sha256).spec.name
        'tiny_r2plus1d'
    """
    path = Path(path)
    record = read_metadata(path).quantization
    if record is None:
        raise CompressionError(
            f"{path} is not a quantised checkpoint; load it with video_interpreter.load_model"
        )
    scheme, version, recorded = _recorded(path, record)
    torchao = require_torchao(
        f"loading {path} (quantised with torchao {version}, scheme {scheme.name})"
    )
    installed = str(getattr(torchao, "__version__", "unknown"))
    if installed != version:
        logger.warning(
            "%s was quantised with torchao %s, torchao %s is installed", path, version, installed
        )
    checkpoint = load_checkpoint(path, verify=verify, map_location="cpu")
    spec = checkpoint.spec
    if spec is None:
        raise _damaged(path, "the checkpoint embeds no architecture")
    plain, parts = _split(path, checkpoint.state_dict, recorded)
    model = build_meta(spec)
    shapes = model.state_dict()
    placeholders = {key: _placeholder(path, key, entry, shapes) for key, entry in recorded.items()}
    apply_weights(model, {**plain, **placeholders}, strict=True, keep_source_dtype=True)
    _apply(model, scheme, torchao)
    _restore(path, model, recorded, parts)
    setattr(model, _SCHEME_ATTRIBUTE, scheme.name)
    logger.debug("loaded %s/%s (%s) from %s", spec.name, spec.version, scheme.name, path)
    return model
