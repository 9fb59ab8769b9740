"""``compress``: a smaller copy of a checkpoint, and what it costs."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ..compress import SCHEMES, CompressionResult, compress_checkpoint
from ._arguments import non_negative_int

__all__ = ["register"]

# Command-line names of the storage precisions.
_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def register(commands: Any) -> None:
    compress = commands.add_parser(
        "compress",
        help="write a smaller copy of a checkpoint (bf16/fp16 storage or int8 quantisation)",
        description=(
            "compress SRC OUT --dtype bf16 stores the parameters in bfloat16 (any model); "
            "--quantize SCHEME quantises the Linear layers to int8 with torchao (the compress "
            "extra). --check loads OUT back and measures CPU latency (batch 1, the spec's clip) "
            "and agreement with SRC on fixed random clips."
        ),
    )
    compress.add_argument("source", metavar="SRC", help="a float32 checkpoint")
    compress.add_argument("destination", metavar="OUT", help=".pth or .safetensors")
    method = compress.add_mutually_exclusive_group(required=True)
    method.add_argument("--dtype", choices=tuple(_DTYPES), help="storage precision")
    method.add_argument(
        "--quantize",
        choices=tuple(SCHEMES),
        metavar="SCHEME",
        help=f"quantisation scheme: {', '.join(SCHEMES)}",
    )
    compress.add_argument(
        "--check", action="store_true", help="measure latency and output agreement against SRC"
    )
    compress.add_argument(
        "--clips",
        type=non_negative_int,
        default=8,
        help="random clips to compare outputs on (default 8)",
    )
    compress.add_argument(
        "--repeats",
        type=non_negative_int,
        default=5,
        help="timed forwards per model, median reported (default 5)",
    )
    compress.add_argument("--seed", type=int, default=0, help="seed of the check clips")
    compress.set_defaults(handler=_compress)


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.2f} MB"


def render(result: CompressionResult) -> list[str]:
    """The lines ``compress`` prints: size, and with a check, latency and agreement."""
    what = result.method
    if result.quantized_fraction:
        what += f", {result.quantized_fraction:.0%} of the parameters quantised"
    lines = [f"wrote {result.destination} ({what})"]
    rows = [
        (
            "size",
            _megabytes(result.source_bytes),
            _megabytes(result.compressed_bytes),
            f"{result.size_ratio:.2f}",
            "",
        )
    ]
    if result.latency_before_ms is not None and result.latency_after_ms is not None:
        rows.append(
            (
                "CPU latency",
                f"{result.latency_before_ms:.1f} ms",
                f"{result.latency_after_ms:.1f} ms",
                f"{result.latency_after_ms / result.latency_before_ms:.2f}",
                f"batch 1 x {'x'.join(map(str, result.clip_shape))}, "
                f"{result.threads} threads, median",
            )
        )
    header = ("", "before", "after", "after/before", "")
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in (1, 2, 3)]
        lines.append(("  ".join(cells) + "  " + row[4]).rstrip())
    if result.agreement is not None:
        lines.append(f"outputs vs SRC: {result.agreement}")
    if result.float32_agreement is not None:
        lines.append(f"loaded as float32: {result.float32_agreement}")
    if result.note:
        lines.append(f"note: {result.note}")
    return lines


def _compress(args: argparse.Namespace) -> int:
    result = compress_checkpoint(
        args.source,
        args.destination,
        dtype=_DTYPES[args.dtype] if args.dtype else None,
        scheme=args.quantize,
        check=args.check,
        clips=args.clips,
        repeats=args.repeats,
        seed=args.seed,
    )
    for line in render(result):
        print(line)
    return 0
