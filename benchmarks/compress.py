"""Smaller models, side by side: every zoo model in float32, bfloat16 storage and both int8
schemes; file size, CPU latency and agreement with the float32 model.

For each model: build it (``torch.manual_seed(0)``, so untrained weights), save it as float32
``.safetensors``, then ``compress_checkpoint`` it each way and load the file back as a user
would (``load_model``: bfloat16 compute; ``load_quantized``). Latency: eval,
``inference_mode``, batch 1 at the spec's clip, median of ``--repeats`` after a warm-up, same
threads for all; the float32 model and the compressed one take turns forward by forward, so a
machine busy with other work slows both alike (the ratio is the figure to read; the float32
row gives the median of its runs). Agreement: max abs difference of the logits and top-1
agreement on ``--clips`` random clips (seed 0), against the float32 model. The weights are
untrained, so the logits are small and close together: top-1 agreement here is a harsher test
than it would be on a trained model, whose top class usually leads by a margin. Prints a
Markdown table; after each quantised row, an HTML comment says which float tensors the file
still holds, by the layer type that owns them (what keeps the size ratio above int8's 0.25).

    python benchmarks/compress.py [--models r3d_18 video_transformer_s] [--clips 4] [--repeats 3]
    python benchmarks/compress.py --models videomae_base --methods int8_weight_only --clips 2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from video_interpreter.checkpoint import load_model, save_model
from video_interpreter.compress import (
    agreement,
    check_clips,
    compress_checkpoint,
    latency_ms,
    load_quantized,
    run_clips,
)
from video_interpreter.errors import CompressionError
from video_interpreter.model import build_model

MODELS = (
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
    "s3d",
    "mvit_v2_s",
    "swin3d_t",
    "video_transformer_s",
    "videomae_base",
    "timesformer_base",
    "vivit_b",
)
METHODS = ("bfloat16", "int8_weight_only", "int8_dynamic")
HEADER = (
    "| model | method | size (MB) | size ratio | latency (ms) | latency ratio "
    "| max abs diff | top-1 agreement |"
)


def float_left(model: torch.nn.Module) -> str:
    """The floating-point tensors a quantised model still saves, in MB by the layer type that
    owns them, largest first (the top three): what int8 did not shrink."""
    owners = {
        f"{path}.{name}" if path else name: type(module).__name__
        for path, module in model.named_modules()
        for name, _ in [
            *module.named_parameters(recurse=False),
            *module.named_buffers(recurse=False),
        ]
    }
    by_type: dict[str, float] = {}
    for key, tensor in model.state_dict().items():
        if type(tensor) is torch.Tensor and tensor.is_floating_point():
            owner = owners.get(key, "?")
            by_type[owner] = by_type.get(owner, 0.0) + tensor.numel() * tensor.element_size() / 1e6
    top = sorted(by_type.items(), key=lambda item: -item[1])[:3]
    total = sum(by_type.values())
    return f"{total:.1f} MB float left: " + ", ".join(f"{t} {mb:.2f} MB" for t, mb in top)


def rows(
    name: str, folder: Path, clips: int, repeats: int, methods: Sequence[str] = METHODS
) -> list[str]:
    torch.manual_seed(0)
    model = build_model(name).eval()
    source = folder / f"{name}.safetensors"
    saved = save_model(model, source)
    inputs = check_clips(model, clips)
    expected = run_clips(model, inputs)
    out = [
        f"| `{name}` | float32 | {saved.size_bytes / 1e6:.1f} | 1.00 | BEFORE | 1.00 | 0 | 100% |"
    ]
    befores: list[float] = []
    for method in methods:
        destination = folder / f"{name}_{method}.safetensors"
        label = method
        if method == "bfloat16":
            result = compress_checkpoint(source, destination, dtype=torch.bfloat16)
            restored = load_model(destination)
            try:
                run_clips(restored, inputs[:1])
            except CompressionError:  # a CPU kernel without bfloat16 (S3D's avg_pool3d)
                restored = load_model(destination, dtype=torch.float32)
                label += " (computed in float32: a CPU kernel lacks bfloat16)"
        else:
            try:
                result = compress_checkpoint(source, destination, scheme=method)
            except CompressionError:  # no layer the scheme covers (S3D: all Conv3d)
                out.append(f"| `{name}` | {method} | - | - | - | - | - | no Linear layer |")
                continue
            restored = load_quantized(destination)
        measured = agreement(expected, run_clips(restored, inputs))
        before, after = latency_ms([model, restored], inputs[0], repeats)
        befores.append(before)
        if result.quantized_fraction:
            label += f" ({result.quantized_fraction:.0%} of params)"
        out.append(
            f"| `{name}` | {label} | {result.compressed_bytes / 1e6:.1f} | "
            f"{result.size_ratio:.2f} | {after:.0f} | {after / before:.2f} | "
            f"{measured.max_abs_diff:.2g} | {measured.top1_agreement:.0%} |"
        )
        if method == "bfloat16":  # the same file, loaded back to float32
            as_float32 = agreement(
                expected, run_clips(load_model(destination, dtype=torch.float32), inputs)
            )
            out.append(
                f"| `{name}` | bfloat16, loaded as float32 | {result.compressed_bytes / 1e6:.1f} | "
                f"{result.size_ratio:.2f} | - | - | {as_float32.max_abs_diff:.2g} | "
                f"{as_float32.top1_agreement:.0%} |"
            )
        else:
            out.append(f"<!-- {name} {method}: {float_left(restored)} -->")
        destination.unlink()
    out[0] = out[0].replace("BEFORE", f"{statistics.median(befores):.0f}" if befores else "-")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{args.clips} check clips, median of {args.repeats}"
    )
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            start = time.perf_counter()
            for line in rows(name, Path(tmp), args.clips, args.repeats, args.methods):
                print(line, flush=True)
            (Path(tmp) / f"{name}.safetensors").unlink()
            print(f"<!-- {name}: {time.perf_counter() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
