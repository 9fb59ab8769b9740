"""What compression costs: file size, CPU latency and output agreement with the float model.

``compress_checkpoint`` is the whole job of ``video-interpreter compress``: read a float
checkpoint, write it smaller (a storage precision, or a quantisation scheme), and, when asked,
measure the difference. Agreement is measured on a fixed set of random clips (seeded, so every
run and every method sees the same clips): the largest absolute difference of any logit, and
the share of (clip, head) pairs whose top-1 class is unchanged. Latency is the median of
batch-1 forwards at the spec's clip size, in eval mode under ``inference_mode``, with the same
number of threads for both models, which take turns forward by forward.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import load_model, read_metadata, save_model
from ..errors import CompressionError
from ..model import VideoInterpreter
from ._quantize import coverage, load_quantized, quantize, save_quantized
from ._schemes import get_scheme

__all__ = [
    "Agreement",
    "CompressionResult",
    "Outputs",
    "agreement",
    "check_clips",
    "compress_checkpoint",
    "input_dtype",
    "latency_ms",
    "run_clips",
]

logger = logging.getLogger(__name__)

Outputs = list[dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Agreement:
    """How far a compressed model's outputs are from the reference's on the check clips."""

    clips: int
    max_abs_diff: float  # largest |logit difference| over every clip, head and class
    top1_agreement: float  # share of (clip, head) pairs with the same top-1 class

    def __str__(self) -> str:
        return (
            f"max abs diff {self.max_abs_diff:.3g}, top-1 agreement "
            f"{self.top1_agreement:.0%} ({self.clips} clips)"
        )


def check_clips(model: VideoInterpreter, count: int = 8, seed: int = 0) -> torch.Tensor:
    """``count`` random clips of the model's input size, ``(count, C, T, H, W)``, from a
    generator of its own (the global one is left alone), so every run sees the same."""
    if count < 1:
        raise CompressionError(f"the number of check clips must be at least 1, got {count}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((count, *model.spec.input), generator=generator)


def input_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype a model computes in (that of its first floating parameter)."""
    for parameter in model.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def run_clips(model: nn.Module, clips: torch.Tensor) -> Outputs:
    """The model's outputs for each clip (batch 1), as float32, in eval mode."""
    dtype = input_dtype(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return [
                {name: out.float() for name, out in model(clip[None].to(dtype)).items()}
                for clip in clips
            ]
    except (NotImplementedError, RuntimeError) as exc:
        if "not implemented for" not in str(exc):
            raise
        # Some CPU kernels (avg_pool3d, for one) have no bfloat16 or float16 version.
        raise CompressionError(
            f"the model cannot compute in {str(dtype).removeprefix('torch.')} on "
            f"{clips.device.type}: {str(exc).splitlines()[0]}; load it with "
            "dtype=torch.float32 to compute in float32"
        ) from exc
    finally:
        model.train(was_training)


def agreement(reference: Outputs, candidate: Outputs) -> Agreement:
    """Compare two models' outputs on the same clips.

    Examples:
        >>> import torch
        >>> import torch
        >>> from video_interpreter.compress import agreement
        >>> outputs = [{"action": torch.tensor([[0.1, 0.9], [0.8, 0.2]])}]   # one batch of clips
        >>> agreement(outputs, outputs).top1_agreement
        1.0
    """
    if len(reference) != len(candidate) or not reference:
        raise CompressionError(
            f"cannot compare outputs of {len(reference)} and {len(candidate)} clips"
        )
    worst = 0.0
    same = pairs = 0
    for ref, out in zip(reference, candidate, strict=True):
        for name, logits in ref.items():
            worst = max(worst, float((out[name] - logits).abs().max()))
            same += int(bool((out[name].argmax(-1) == logits.argmax(-1)).all()))
            pairs += 1
    return Agreement(len(reference), worst, same / pairs)


def latency_ms(models: Sequence[nn.Module], clip: torch.Tensor, repeats: int = 5) -> list[float]:
    """Median wall time (ms) of a batch-1 forward of ``clip`` (C, T, H, W) through each model,
    after one warm-up each. The models take turns, forward by forward, so a machine busy with
    other work slows them alike and their ratio stays meaningful."""
    if repeats < 1:
        raise CompressionError(f"repeats must be at least 1, got {repeats}")
    batches = [clip[None].to(input_dtype(model)) for model in models]
    modes = [model.training for model in models]
    times: list[list[float]] = [[] for _ in models]
    try:
        for model in models:
            model.eval()
        with torch.inference_mode():
            for model, batch in zip(models, batches, strict=True):
                model(batch)
            for _ in range(repeats):
                for index, (model, batch) in enumerate(zip(models, batches, strict=True)):
                    start = time.perf_counter()
                    model(batch)
                    times[index].append((time.perf_counter() - start) * 1e3)
    finally:
        for model, training in zip(models, modes, strict=True):
            model.train(training)
    return [statistics.median(measured) for measured in times]


@dataclass(frozen=True)
class CompressionResult:
    """What ``compress_checkpoint`` wrote and, with ``check=True``, what it costs."""

    source: Path
    destination: Path
    method: str  # "bfloat16", "float16" or a quantisation scheme
    source_bytes: int
    compressed_bytes: int
    quantized_fraction: float  # share of the parameters quantised (0 for a storage dtype)
    threads: int
    clips: int
    clip_shape: tuple[int, ...]  # (C, T, H, W): the spec's input, the timed batch-1 clip
    latency_before_ms: float | None = None
    latency_after_ms: float | None = None
    agreement: Agreement | None = None
    float32_agreement: Agreement | None = None  # a storage dtype, loaded back as float32
    note: str | None = None  # how the check had to differ from the usual one, and why

    @property
    def size_ratio(self) -> float:
        return self.compressed_bytes / self.source_bytes


_DTYPES = {torch.bfloat16: "bfloat16", torch.float16: "float16"}


def compress_checkpoint(
    source: str | Path,
    destination: str | Path,
    *,
    dtype: torch.dtype | None = None,
    scheme: str | None = None,
    check: bool = False,
    clips: int = 8,
    seed: int = 0,
    repeats: int = 5,
    verify: str | None = None,
) -> CompressionResult:
    """Write ``source`` (a float checkpoint) as ``destination``, smaller: its parameters stored
    in ``dtype`` (``torch.bfloat16`` or ``torch.float16``), or quantised with ``scheme``.
    Metadata (metrics, notes, epoch) is carried over.

    With ``check`` the written file is loaded back and compared with the source model:
    CPU latency (batch 1, the spec's clip, median of ``repeats``) and agreement on ``clips``
    random clips drawn with ``seed``. A quantised file must reproduce the quantised model
    exactly; a difference raises ``CompressionError``.

    Examples:
        >>> import torch
        >>> import torch
        >>> from video_interpreter import build_model, save_model
        >>> from video_interpreter.compress import compress_checkpoint
        >>> _ = save_model(build_model("tiny_r2plus1d"), "tiny.pth")
        >>> result = compress_checkpoint("tiny.pth", "tiny_bf16.pth", dtype=torch.bfloat16)
        >>> result.compressed_bytes < result.source_bytes
        True
    """
    source, destination = Path(source), Path(destination)
    if (dtype is None) == (scheme is None):
        raise CompressionError("compress needs exactly one of dtype= or scheme=")
    if scheme is not None:
        method = get_scheme(scheme).name
    elif dtype is not None and dtype in _DTYPES:
        method = _DTYPES[dtype]
    else:
        raise CompressionError(
            f"dtype={dtype} is not a storage precision; use torch.bfloat16 or torch.float16"
        )
    if source.resolve() == destination.resolve():
        raise CompressionError(f"{destination} is the source checkpoint; write to another file")
    meta = read_metadata(source)
    if meta.quantization is not None or meta.precision is not None:
        raise CompressionError(
            f"{source} is already compressed ({meta.precision or meta.quantization}); "
            "compress the float32 checkpoint"
        )
    reference = load_model(source, verify=verify, dtype=torch.float32)
    quantized: VideoInterpreter | None = None
    if scheme is not None:
        quantized = quantize(reference, scheme)
        done = sum(d for d, _ in coverage(quantized).values())
        fraction = done / max(sum(p.numel() for p in quantized.parameters()), 1)
        saved = save_quantized(
            quantized,
            destination,
            epoch=meta.epoch,
            step=meta.step,
            loss=meta.loss,
            metrics=meta.metrics,
            notes=meta.notes,
            monitor=meta.monitor,
        )
    else:
        saved = save_model(
            reference,
            destination,
            dtype=dtype,
            epoch=meta.epoch,
            step=meta.step,
            loss=meta.loss,
            metrics=meta.metrics,
            notes=meta.notes,
            monitor=meta.monitor,
        )
        fraction = 0.0
    result = CompressionResult(
        source=source,
        destination=destination,
        method=method,
        source_bytes=meta.size_bytes,
        compressed_bytes=saved.size_bytes,
        quantized_fraction=fraction,
        threads=torch.get_num_threads(),
        clips=clips,
        clip_shape=tuple(reference.spec.input),
    )
    if not check:
        return result
    inputs = check_clips(reference, clips, seed)
    expected = run_clips(reference, inputs)
    if quantized is not None:
        restored: nn.Module = load_quantized(destination)
        outputs = run_clips(restored, inputs)
        _require_identical(destination, run_clips(quantized, inputs), outputs)
        float32 = None
    else:
        as_float32 = load_model(destination, dtype=torch.float32)
        float32 = agreement(expected, run_clips(as_float32, inputs))
        restored = load_model(destination)
        try:
            outputs = run_clips(restored, inputs)
        except CompressionError as exc:
            result = replace(result, note=f"{exc}: measured as loaded in float32")
            restored, outputs = as_float32, run_clips(as_float32, inputs)
    before, after = latency_ms([reference, restored], inputs[0], repeats)
    return replace(
        result,
        latency_before_ms=before,
        latency_after_ms=after,
        agreement=agreement(expected, outputs),
        float32_agreement=float32,
    )


def _require_identical(path: Path, saved: Outputs, restored: Outputs) -> None:
    for index, (a, b) in enumerate(zip(saved, restored, strict=True)):
        for name, logits in a.items():
            if not torch.equal(logits, b[name]):
                raise CompressionError(
                    f"{path}: the reloaded model's '{name}' output differs from the quantised "
                    f"model's on check clip {index}; the file does not restore the model"
                )
