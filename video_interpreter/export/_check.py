"""Parity of an exported artefact with the eager model it came from.

A fresh clip at another batch size than the traced one (and, where frames are dynamic, another
frame count) runs through the eager model and through the artefact: the ``torch.export``
module loaded back from the ``.pt2`` file, or onnxruntime's CPU session for ``.onnx``. Every
head's largest absolute difference is compared with the format's tolerance.

A small difference proves little when the output barely depends on the input (freshly
initialised weights whose features are near zero leave every clip's logits at the head's bias):
eager also runs a second, different clip, and a head whose outputs on the two clips differ by
no more than the tolerance, or by less than ``WEAK_SPREAD`` of their magnitude, is reported as
weak evidence (``ParityReport.weak_heads``, a warning line in ``summary``).
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

__all__ = [
    "CHECK_BATCH",
    "TOLERANCES",
    "WEAK_SPREAD",
    "ParityReport",
    "check_export",
    "check_frames",
]

TOLERANCES: dict[ExportFormat, float] = {"pt2": 1e-5, "onnx": 1e-4}
"""Largest absolute difference from eager allowed, per format."""

CHECK_BATCH = 1
"""The batch size checked by default: not the traced one (2), and the size torch.export would
specialise on if the dimension were not truly dynamic."""

WEAK_SPREAD = 1e-3
"""Below this relative spread of a head's outputs across two different clips (their largest
difference over their largest magnitude), parity is reported as weak evidence."""


@dataclass(frozen=True)
class ParityReport:
    """Largest absolute difference of each head between the artefact and eager."""

    path: Path
    format: ExportFormat
    input_shape: tuple[int, ...]
    max_abs_diff: dict[str, float]
    tolerance: float
    input_spread: dict[str, float]
    """Per head, eager's largest output difference between the checked clip and another one."""
    output_scale: dict[str, float]
    """Per head, eager's largest output magnitude on those two clips."""

    @property
    def ok(self) -> bool:
        return all(diff <= self.tolerance for diff in self.max_abs_diff.values())

    @property
    def weak_heads(self) -> list[str]:
        """Heads whose outputs barely depend on the input, so that agreeing within the
        tolerance says little about the artefact."""
        return [
            name
            for name, spread in self.input_spread.items()
            if spread <= self.tolerance or spread < WEAK_SPREAD * self.output_scale[name]
        ]

    def summary(self) -> str:
        runtime = "torch.export module" if self.format == "pt2" else "onnxruntime (CPU)"
        heads = ", ".join(f"{name} {diff:.3g}" for name, diff in self.max_abs_diff.items())
        verdict = "ok" if self.ok else "FAILED"
        line = (
            f"parity {verdict}: {runtime} vs eager on input {list(self.input_shape)}: "
            f"max |diff| {heads} (tolerance {self.tolerance:g})"
        )
        weak = self.weak_heads
        if not weak:
            return line
        spreads = ", ".join(
            f"{name} {self.input_spread[name]:.3g} of {self.output_scale[name]:.3g}"
            for name in weak
        )
        return (
            f"{line}\nwarning: weak evidence: the output barely depends on the input (largest "
            f"change between two different clips, of the largest magnitude: {spreads}), so "
            "agreeing within the tolerance says little; check again with trained weights "
            "(export a checkpoint)"
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
    other = example_clip(spec, batch=batch, frames=frames, seed=seed + 1)
    with evaluating(model), torch.no_grad():
        expected = model(clip)
        elsewhere = model(other)
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
        input_spread={
            name: float((elsewhere[name] - want).abs().max()) for name, want in expected.items()
        },
        output_scale={
            name: float(torch.maximum(want.abs().max(), elsewhere[name].abs().max()))
            for name, want in expected.items()
        },
    )


def check_frames(model: nn.Module) -> int:
    """The frame count a check of a frames-dynamic export runs at (not the traced one)."""
    return frame_probe(spec_of(model))
