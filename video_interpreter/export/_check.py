"""Parity of an exported artefact with the eager model it came from.

A fresh clip at another batch size than the traced one (and, where frames are dynamic, another
frame count) runs through the eager model and through the artefact: the ``torch.export``
module loaded back from the ``.pt2`` file, or onnxruntime's CPU session for ``.onnx``. Every
head's largest absolute difference is compared with the format's tolerance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ._export import (
    ExportError,
    ExportFormat,
    evaluating,
    example_clip,
    format_for,
    frame_probe,
    spec_of,
)

__all__ = ["CHECK_BATCH", "TOLERANCES", "ParityReport", "check_export", "check_frames"]

TOLERANCES: dict[ExportFormat, float] = {"pt2": 1e-5, "onnx": 1e-4}
"""Largest absolute difference from eager allowed, per format."""

CHECK_BATCH = 1
"""The batch size checked by default: not the traced one (2), and the size torch.export would
specialise on if the dimension were not truly dynamic."""


@dataclass(frozen=True)
class ParityReport:
    """Largest absolute difference of each head between the artefact and eager."""

    path: Path
    format: ExportFormat
    input_shape: tuple[int, ...]
    max_abs_diff: dict[str, float]
    tolerance: float

    @property
    def ok(self) -> bool:
        return all(diff <= self.tolerance for diff in self.max_abs_diff.values())

    def summary(self) -> str:
        runtime = "torch.export module" if self.format == "pt2" else "onnxruntime (CPU)"
        heads = ", ".join(f"{name} {diff:.3g}" for name, diff in self.max_abs_diff.items())
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"parity {verdict}: {runtime} vs eager on input {list(self.input_shape)}: "
            f"max |diff| {heads} (tolerance {self.tolerance:g})"
        )


def _run_pt2(path: Path, clip: torch.Tensor) -> list[torch.Tensor]:
    program = torch.export.load(path)
    with torch.no_grad():
        outputs = program.module()(clip)
    return list(outputs.values()) if isinstance(outputs, dict) else list(outputs)


def _run_onnx(path: Path, clip: torch.Tensor) -> list[torch.Tensor]:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExportError(
            "checking .onnx needs onnxruntime: pip install 'video-interpreter[export]'"
        ) from exc
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: clip.numpy()}
    return [torch.from_numpy(out) for out in session.run(None, feed)]


def check_export(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    batch: int = CHECK_BATCH,
    frames: int | None = None,
    seed: int = 1,
) -> ParityReport:
    """Run the exported file at ``path`` and ``model`` (eager) on one fresh clip of ``batch``
    clips and ``frames`` frames (default: the spec's), and report every head's difference.

    Examples:
        >>> from video_interpreter import build_model, check_export, export_model
        >>> model = build_model("tiny_r2plus1d").eval()
        >>> _ = export_model(model, "tiny.pt2")
        >>> report = check_export("tiny.pt2", model, batch=2)
        >>> report.ok
        True
    """
    artefact = Path(path)
    chosen = format_for(artefact)
    spec = spec_of(model)
    clip = example_clip(spec, batch=batch, frames=frames, seed=seed)
    with evaluating(model), torch.no_grad():
        expected = model(clip)
    try:
        got = _run_pt2(artefact, clip) if chosen == "pt2" else _run_onnx(artefact, clip)
    except ExportError:
        raise
    except Exception as exc:  # the runtime's own errors (a failed shape guard, a bad file)
        raise ExportError(
            f"{artefact} failed on a clip of shape {list(clip.shape)}: {type(exc).__name__}: {exc}"
        ) from exc
    if len(got) != len(expected):
        raise ExportError(
            f"{artefact} gives {len(got)} outputs, the model {len(expected)} "
            f"({', '.join(expected)}): it was exported from another architecture"
        )
    for (name, want), out in zip(expected.items(), got, strict=True):
        if tuple(out.shape) != tuple(want.shape):
            raise ExportError(
                f"{artefact}: output {name!r} has shape {tuple(out.shape)}, the model gives "
                f"{tuple(want.shape)}: it was exported from another architecture"
            )
    diffs = {
        name: float((out.to(want.dtype) - want).abs().max())
        for (name, want), out in zip(expected.items(), got, strict=True)
    }
    return ParityReport(
        path=artefact,
        format=chosen,
        input_shape=tuple(clip.shape),
        max_abs_diff=diffs,
        tolerance=TOLERANCES[chosen],
    )


def check_frames(model: nn.Module) -> int:
    """The frame count a check of a frames-dynamic export runs at (not the traced one)."""
    return frame_probe(spec_of(model))
