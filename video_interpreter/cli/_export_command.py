"""``export``: a spec or checkpoint to ``.pt2`` or ``.onnx``, parity with eager checked."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..export import (
    DYNAMIC_DIMS,
    EXPORT_FORMATS,
    ExportError,
    check_export,
    check_frames,
    export_model,
    format_for,
    resolve_model,
)
from ._checkpoint_commands import _size

__all__ = ["register"]


def _dims(text: str) -> tuple[str, ...]:
    """An ``argparse`` type: ``batch`` or ``batch,frames``."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in DYNAMIC_DIMS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown dimension {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(DYNAMIC_DIMS)} (comma-separated, e.g. batch,frames)"
        )
    return names


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export a spec or checkpoint to torch.export (.pt2) or ONNX (.onnx)",
        description=(
            "Export SPEC_OR_CHECKPOINT to OUT: .pt2 (torch.export, loadable with "
            "torch.export.load alone) or .onnx (torch's dynamo-based exporter). The file "
            "carries the resolved spec and its fingerprint. A spec is exported with freshly "
            "initialised weights (--seed); a checkpoint with its own."
        ),
    )
    export.add_argument(
        "source", metavar="SPEC_OR_CHECKPOINT", help="spec file or name, or .pth/.safetensors"
    )
    export.add_argument("out", metavar="OUT", help="output file: " + ", ".join(EXPORT_FORMATS))
    export.add_argument(
        "--dynamic",
        type=_dims,
        default=("batch",),
        metavar="DIMS",
        help="dimensions left free: batch (default) or batch,frames",
    )
    export.add_argument(
        "--check",
        action="store_true",
        help="run the file against eager on a fresh clip at batch 1 (and twice the frames "
        "where frames are dynamic) and print the differences",
    )
    export.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec value (repeatable), e.g. input.frames=8",
    )
    export.add_argument("--seed", type=int, default=0, help="seed of a spec's weights (default 0)")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    import torch

    try:
        format_for(args.out)
    except ExportError as exc:  # a usage error: nothing was built
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    model = resolve_model(args.source, overrides=args.overrides)
    exported = export_model(model, args.out, dynamic=args.dynamic)
    opset = f", opset {exported.opset}" if exported.opset is not None else ""
    print(
        f"wrote {exported.path} ({_size(exported.size_bytes)}, {exported.format}{opset}, "
        f"dynamic: {', '.join(exported.dynamic) or 'none'}) in {exported.seconds:.1f} s"
    )
    if not args.check:
        return 0
    reports = [check_export(exported.path, model)]
    if "frames" in exported.dynamic:
        reports.append(check_export(exported.path, model, frames=check_frames(model)))
    for report in reports:
        print(report.summary())
    return 0 if all(report.ok for report in reports) else 1
