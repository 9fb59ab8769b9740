"""Export a spec-built model to ``torch.export`` (``.pt2``) or ONNX (``.onnx``).

The flow: resolve what to export (a model, a spec, or a checkpoint that carries its spec) ->
check that each dimension asked to be dynamic can vary (frames: an eager pass on the meta
device at another frame count) -> ``torch.export.export`` with those dimensions symbolic ->
refuse a dimension the trace specialised -> write the ``ExportedProgram`` (``.pt2``, spec and
fingerprint in its extra files) or hand it to torch's dynamo-based ONNX exporter (``.onnx``,
spec and fingerprint in the model's metadata properties). Files appear atomically.

Nothing here special-cases a layer: every registered layer's forward is written in torch that
exports as it is, and the parity test over every shipped spec holds them to it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.export import Dim, ExportedProgram
from torch.export.graph_signature import InputKind

from ..errors import VideoInterpreterError
from ..model import build_model
from ..spec import ArchitectureSpec

__all__ = [
    "DYNAMIC_DIMS",
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "ExportError",
    "ExportFormat",
    "ExportedModel",
    "dynamic_range",
    "evaluating",
    "example_clip",
    "export_model",
    "exported_metadata",
    "format_for",
    "frame_probe",
    "resolve_model",
    "spec_json",
    "spec_of",
    "trace",
]

logger = logging.getLogger(__name__)

ExportFormat = Literal["pt2", "onnx"]
EXPORT_FORMATS: dict[str, ExportFormat] = {".pt2": "pt2", ".onnx": "onnx"}
"""Output suffixes and the format each one selects."""

DYNAMIC_DIMS = ("batch", "frames")
"""Dimensions of the clip ``(B, C, T, H, W)`` an export may leave dynamic: B and T."""

ONNX_OPSET = 20
"""The ONNX opset every ``.onnx`` file is written with (onnxruntime >= 1.17 runs it)."""

TRACE_BATCH = 2
"""The batch size of the traced example: not 0 or 1, which torch.export would specialise."""

SPEC_KEY = "video_interpreter.spec"
FINGERPRINT_KEY = "video_interpreter.fingerprint"
_CHECKPOINT_SUFFIXES = (".pth", ".safetensors")
_DIM_AXIS = {"batch": 0, "frames": 2}


class ExportError(VideoInterpreterError, ValueError):
    """A model could not be exported as asked: an unknown format, a dimension the model cannot
    leave dynamic, a source without an architecture, or an exporter failure."""


@dataclass(frozen=True)
class ExportedModel:
    """What ``export_model`` wrote."""

    path: Path
    format: ExportFormat
    spec: ArchitectureSpec
    dynamic: tuple[str, ...]
    seconds: float
    size_bytes: int
    opset: int | None  # ONNX only


def format_for(out: str | os.PathLike[str], format: str | None = None) -> ExportFormat:
    """The format of ``out``: ``format`` if given, else from its suffix."""
    if format is not None:
        if format not in EXPORT_FORMATS.values():
            raise ExportError(
                f"unknown export format {format!r}; valid formats: "
                + ", ".join(repr(f) for f in EXPORT_FORMATS.values())
            )
        chosen: ExportFormat = "pt2" if format == "pt2" else "onnx"
        return chosen
    suffix = Path(out).suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise ExportError(
            f"cannot tell the export format of {os.fspath(out)!r} from its suffix "
            f"{suffix or '(none)'!r}; valid suffixes: "
            + ", ".join(f"{s} ({f})" for s, f in EXPORT_FORMATS.items())
        )
    return EXPORT_FORMATS[suffix]


def _dynamic_dims(dynamic: Sequence[str] | str) -> tuple[str, ...]:
    names = (dynamic,) if isinstance(dynamic, str) else tuple(dynamic)
    unknown = [name for name in names if name not in DYNAMIC_DIMS]
    if unknown:
        raise ExportError(
            f"unknown dynamic dimension{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown)}; dimensions that can be dynamic: "
            f"{', '.join(DYNAMIC_DIMS)} (channels, height and width are fixed by the spec)"
        )
    return tuple(name for name in DYNAMIC_DIMS if name in names)  # canonical order, no repeats


def resolve_model(
    source: nn.Module | str | os.PathLike[str] | Mapping[str, Any] | ArchitectureSpec,
    *,
    overrides: Sequence[str] = (),
) -> nn.Module:
    """The model to export: a model as given; a spec (path, name, mapping) built with its
    ``init`` scheme; a checkpoint rebuilt from the spec it carries."""
    if isinstance(source, nn.Module):
        if overrides:
            raise ExportError("overrides apply to a spec; the model given is already built")
        spec_of(source)
        return source
    if isinstance(source, str | os.PathLike) and Path(source).suffix in _CHECKPOINT_SUFFIXES:
        if overrides:
            raise ExportError(
                f"overrides apply to a spec; {os.fspath(source)} is a checkpoint of a fixed "
                "architecture"
            )
        return _load_checkpoint(Path(source))
    return build_model(
        Path(source) if isinstance(source, os.PathLike) else source, overrides=overrides
    )


def _load_checkpoint(path: Path) -> nn.Module:
    # Imported here: only a checkpoint source needs the checkpoint stage.
    from ..checkpoint import load_model, read_metadata

    metadata = read_metadata(path)
    if metadata.spec is None:
        raise ExportError(
            f"{path} is a {metadata.kind.replace('_', ' ')} without an embedded architecture, "
            "so the model to export is unknown; export a checkpoint written by save_model, or "
            f"give it its spec first: video-interpreter convert {path} OUT.pth --spec SPEC"
        )
    return load_model(path)


def spec_of(model: nn.Module) -> ArchitectureSpec:
    """The spec a model was built from (what the artefact's metadata records)."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, ArchitectureSpec):
        raise ExportError(
            f"{type(model).__name__} has no spec: export a model built by build_model or "
            "load_model (a VideoInterpreter), a spec, or a checkpoint that carries its spec"
        )
    return spec


def example_clip(
    spec: ArchitectureSpec, *, batch: int, frames: int | None = None, seed: int = 0
) -> torch.Tensor:
    """A random clip batch ``(batch, C, frames or T, H, W)`` from a private generator."""
    c, t, h, w = spec.input
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, c, frames or t, h, w, generator=generator)


def frame_probe(spec: ArchitectureSpec) -> int:
    """Another frame count, one that keeps every temporal stride dividing it: twice the spec's."""
    return 2 * spec.input[1]


def _check_frames_can_vary(model: nn.Module, spec: ArchitectureSpec) -> None:
    """Run the architecture on the meta device at another frame count; a failure means its
    sizes are fixed when the model is built (position tables, pooling grids)."""
    frames = frame_probe(spec)
    meta = build_model(spec, device="meta")
    failed_in: list[str] = []

    def enter(path: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            failed_in.append(path)

        return hook

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        failed_in.pop()

    handles = []
    for path, module in meta.named_modules():
        handles.append(module.register_forward_pre_hook(enter(path or "<model>")))
        handles.append(module.register_forward_hook(leave))
    c, _, h, w = spec.input
    try:
        with torch.no_grad():
            meta.eval()(torch.empty(TRACE_BATCH, c, frames, h, w, device="meta"))
    except (RuntimeError, ValueError) as exc:
        where = failed_in[-1] if failed_in else "<model>"
        raise ExportError(
            f"{spec.name} {spec.version} cannot take a dynamic number of frames: at {frames} "
            f"frames instead of {spec.input[1]} it fails in {where!r} ({exc}). Its sizes along "
            "time are fixed when it is built (learned positions or a token grid sized for the "
            "spec's clip); leave only the batch dynamic (dynamic=('batch',), --dynamic batch), "
            "or build one model per frame count with the override input.frames=N"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()


def _clip_placeholder(program: ExportedProgram) -> Any:
    """The graph input that receives the clip (the others are weights, buffers, constants)."""
    clip_names = {
        spec.arg.name
        for spec in program.graph_signature.input_specs
        if spec.kind == InputKind.USER_INPUT and hasattr(spec.arg, "name")
    }
    return next(
        node for node in program.graph.nodes if node.op == "placeholder" and node.name in clip_names
    )


def _specialised(program: ExportedProgram, dims: Sequence[str]) -> list[str]:
    """The dimensions asked to be dynamic that the trace nevertheless fixed to a number."""
    shape = _clip_placeholder(program).meta["val"].shape
    return [name for name in dims if isinstance(shape[_DIM_AXIS[name]], int)]


def trace(model: nn.Module, dynamic: Sequence[str] | str = ("batch",)) -> ExportedProgram:
    """``torch.export.export`` of ``model`` (eval mode) on the spec's clip with ``dynamic``
    dimensions symbolic; an ``ExportError`` for a dimension that cannot vary."""
    dims = _dynamic_dims(dynamic)
    spec = spec_of(model)
    if "frames" in dims:
        _check_frames_can_vary(model, spec)
    shapes: dict[int, Any] = {}
    if "batch" in dims:
        shapes[0] = Dim("batch", min=1)
    if "frames" in dims:
        shapes[2] = Dim.AUTO  # torch finds the frame counts the strides allow
    clip = example_clip(spec, batch=TRACE_BATCH)
    if "batch" not in dims:
        clip = clip[:1]
    with evaluating(model):
        try:
            program = torch.export.export(model, (clip,), dynamic_shapes={"clip": shapes})
        except Exception as exc:  # the exporter's errors: what failed is in its message
            hint = (
                "; with dynamic=('batch',) the frame count is fixed, which may avoid this"
                if "frames" in dims
                else ""
            )
            raise ExportError(
                f"torch.export could not export {spec.name} {spec.version} with dynamic "
                f"{', '.join(dims) or 'nothing'}: {type(exc).__name__}: {exc}{hint}"
            ) from exc
    fixed = _specialised(program, dims)
    if fixed:
        raise ExportError(
            f"{spec.name} {spec.version}: torch.export fixed {', '.join(fixed)} to the traced "
            "size, so the model cannot take another; export with dynamic="
            f"{tuple(d for d in dims if d not in fixed)!r}"
        )
    if "frames" in dims:
        low, high = dynamic_range(program, "frames")
        if high is not None and high < frame_probe(spec):
            raise ExportError(
                f"{spec.name} {spec.version}: the exported graph holds for {low} to {high} "
                f"frames only (traced at {spec.input[1]}): the model decides by the frame count "
                "how to compute (e.g. one attention window spanning the whole time axis when "
                "it fits), so a longer clip needs another graph. Leave only the batch dynamic "
                "(dynamic=('batch',), --dynamic batch), or export one model per frame count "
                "with the override input.frames=N"
            )
    return program


def _bound(value: Any) -> int | None:
    # A bound is a sympy integer, or torch's symbolic infinity (not an Integer) when unbounded.
    return int(value) if getattr(value, "is_Integer", False) else None


def dynamic_range(program: ExportedProgram, dim: str) -> tuple[int, int | None]:
    """The sizes of a dynamic dimension the exported graph accepts: ``(low, high)``, with
    ``high`` None when unbounded."""
    size = _clip_placeholder(program).meta["val"].shape[_DIM_AXIS[dim]]
    for symbol, bounds in program.range_constraints.items():
        if str(symbol) == str(size):
            return _bound(bounds.lower) or 0, _bound(bounds.upper)
    raise ExportError(f"{dim} is not dynamic in this exported program (its size is {size})")


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode for the block; every submodule's own mode restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def _atomic_path(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out`` that replaces it on success (and is removed otherwise)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create folder {out.parent} for {out.name}: {exc}") from exc
    temporary = out.parent / f".{out.stem}.{secrets.token_hex(6)}.tmp{out.suffix}"
    try:
        yield temporary
        os.replace(temporary, out)
    except OSError as exc:
        raise ExportError(f"could not write {out}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def _metadata(spec: ArchitectureSpec) -> dict[str, str]:
    return {SPEC_KEY: spec.to_json(), FINGERPRINT_KEY: spec.fingerprint}


def _write_pt2(program: ExportedProgram, spec: ArchitectureSpec, out: Path) -> None:
    with _atomic_path(out) as temporary:
        torch.export.save(program, temporary, extra_files=_metadata(spec))


def _write_onnx(program: ExportedProgram, spec: ArchitectureSpec, out: Path) -> None:
    # Imported here: onnx and onnxscript are the `export` extra, needed for .onnx only.
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as exc:
        raise ExportError(
            "writing .onnx needs onnx and onnxscript: pip install 'video-interpreter[export]'"
        ) from exc
    try:
        onnx_program = torch.onnx.export(
            program,
            (),
            dynamo=True,
            opset_version=ONNX_OPSET,
            input_names=["clip"],
            output_names=list(spec.head_names),
            optimize=True,
            verbose=False,
        )
    except Exception as exc:  # the exporter's errors: what failed is in its message
        raise ExportError(
            f"the ONNX exporter could not convert {spec.name} {spec.version}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if onnx_program is None:  # only the TorchScript path returns nothing
        raise ExportError("torch.onnx.export returned no program")
    onnx_program.model.metadata_props.update(_metadata(spec))
    with _atomic_path(out) as temporary:
        onnx_program.save(temporary, external_data=False)


def export_model(
    model_or_spec: nn.Module | str | os.PathLike[str] | Mapping[str, Any] | ArchitectureSpec,
    out: str | os.PathLike[str],
    *,
    dynamic: Sequence[str] | str = ("batch",),
    format: ExportFormat | None = None,
    overrides: Sequence[str] = (),
) -> ExportedModel:
    """Export a model, a spec or a checkpoint to ``out``: ``.pt2`` (``torch.export``, loadable
    with ``torch.export.load`` alone) or ``.onnx`` (opset ``ONNX_OPSET``).

    ``dynamic`` names the clip dimensions left free: ``("batch",)`` or ``("batch", "frames")``
    (``()`` fixes both). A spec is built with its ``init`` scheme (seed torch first for
    reproducible weights); ``overrides`` adjust a spec (``input.frames=8``). The artefact carries
    the resolved spec and its fingerprint.

    Examples:
        >>> from video_interpreter import build_model, check_export, export_model
        >>> model = build_model("tiny_r2plus1d").eval()
        >>> exported = export_model(model, "tiny.pt2")        # .onnx with the export extra
        >>> check_export("tiny.pt2", model).ok
        True
    """
    path = Path(out)
    chosen = format_for(path, format)
    dims = _dynamic_dims(dynamic)
    model = resolve_model(model_or_spec, overrides=overrides)
    spec = spec_of(model)
    start = time.perf_counter()
    program = trace(model, dims)
    if chosen == "pt2":
        _write_pt2(program, spec, path)
    else:
        _write_onnx(program, spec, path)
    seconds = time.perf_counter() - start
    size = path.stat().st_size
    logger.info("exported %s %s to %s in %.1f s", spec.name, spec.version, path, seconds)
    return ExportedModel(
        path=path,
        format=chosen,
        spec=spec,
        dynamic=dims,
        seconds=seconds,
        size_bytes=size,
        opset=ONNX_OPSET if chosen == "onnx" else None,
    )


def exported_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The spec (JSON) and fingerprint an exported ``.pt2`` or ``.onnx`` file carries."""
    chosen = format_for(path)
    if chosen == "pt2":
        files = dict.fromkeys(_metadata_keys(), "")
        try:
            torch.export.load(path, extra_files=files)
        except Exception as exc:
            raise ExportError(
                f"cannot read {os.fspath(path)} as a torch.export file: {exc}"
            ) from exc
        found = {k: str(v) for k, v in files.items() if v}
    else:
        import onnx

        try:
            model = onnx.load(os.fspath(path), load_external_data=False)
        except Exception as exc:
            raise ExportError(f"cannot read {os.fspath(path)} as an ONNX model: {exc}") from exc
        found = {p.key: p.value for p in model.metadata_props if p.key in _metadata_keys()}
    missing = [key for key in _metadata_keys() if key not in found]
    if missing:
        raise ExportError(
            f"{os.fspath(path)} carries no {', '.join(missing)}: it was not written by export_model"
        )
    return found


def _metadata_keys() -> tuple[str, str]:
    return (SPEC_KEY, FINGERPRINT_KEY)


def spec_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The resolved spec an exported file carries, as a mapping (``build_model`` takes it)."""
    loaded: dict[str, Any] = json.loads(exported_metadata(path)[SPEC_KEY])
    return loaded
