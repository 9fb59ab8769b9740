"""``inspect`` and ``convert``: checkpoints from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..checkpoint import (
    Adapt,
    CheckpointMetadata,
    LoadReport,
    convert_checkpoint,
    import_state_dict,
    import_transformers,
    read_metadata,
    sha256_file,
)
from ._arguments import check_output_file, json_text

__all__ = ["register"]

_LIBRARIES = (
    "torchvision",
    "torchvision_image",
    "pytorchvideo",
    "transformers",
    "transformers_image",
    "timm_image",
)


def register(commands: Any) -> None:
    inspect = commands.add_parser(
        "inspect", help="show what a checkpoint holds (architecture, metrics, training state)"
    )
    inspect.add_argument("checkpoint", type=Path, metavar="CKPT")
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument("--sha256", action="store_true", help="also hash the file")
    inspect.set_defaults(handler=_inspect)

    convert = commands.add_parser(
        "convert",
        help="convert between .pth and .safetensors, or import another library's weights",
        description=(
            "convert IN OUT: re-write a checkpoint in the format of OUT's suffix. "
            "convert --from LIBRARY ARCH IN OUT: import a torchvision or pytorchvideo state dict "
            "of ARCH (mapped by the zoo's key map, loaded strictly) as a checkpoint of the "
            "spec ARCH (torchvision_image: an image resnet18/resnet50, inflated with --adapt; "
            "transformers_image, timm_image: an image ViT into timesformer_base, vivit_b or "
            "videomae_base with --adapt, its table's grid given by --source-grid). "
            "convert --from transformers DIR OUT: import a video classifier saved "
            "with save_pretrained; its spec is generated from DIR/config.json. "
            "convert --key-map FILE [--spec SPEC] IN OUT: import any state dict "
            "through your own key map (renames and tensor transforms), into SPEC or the "
            "architecture the key map names. "
            "convert IN OUT --spec NEW --adapt: bring a checkpoint into the changed "
            "architecture NEW (new head, clip size, input channels, window), printing every "
            "tensor adapted."
        ),
    )
    convert.add_argument("paths", nargs="+", metavar="[ARCH] IN OUT")
    convert.add_argument(
        "--from", dest="library", choices=_LIBRARIES, help="import another library's state dict"
    )
    convert.add_argument(
        "--key-map",
        type=Path,
        metavar="FILE",
        help="import another library's state dict through this key-map file (YAML or JSON)",
    )
    convert.add_argument(
        "--spec",
        help="the architecture to write (spec file or name): a plain state dict's, the one to "
        "import into, or with --adapt a changed one",
    )
    convert.add_argument(
        "--adapt",
        action="store_true",
        help="adapt tensors that differ by the rules their layers declare (heads re-initialised, "
        "position tables resampled, input channels changed, 2D kernels inflated)",
    )
    convert.add_argument(
        "--inflate",
        choices=("centre", "average"),
        help="with --adapt: a 2D kernel goes on the middle frame (centre, the default: exact on "
        "a clip of one repeated frame) or is averaged over the frames (average, as I3D)",
    )
    convert.add_argument(
        "--source-grid",
        action="append",
        default=[],
        metavar="KEY=GRID",
        help="with --adapt: the grid of a source position table its shape cannot say, e.g. an "
        "image ViT's backbone.pos.space=14x14 (repeatable)",
    )
    convert.add_argument(
        "--drop-training-state",
        action="store_true",
        help="allow dropping optimizer/scheduler state (required when writing .safetensors)",
    )
    convert.add_argument(
        "--trust-pickle",
        action="store_true",
        help="open a file holding arbitrary pickled objects (can run code: trusted files only)",
    )
    convert.set_defaults(handler=_convert, parser=convert)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} B"  # unreachable


def _inspect(args: argparse.Namespace) -> int:
    meta: CheckpointMetadata = read_metadata(args.checkpoint)
    digest = sha256_file(args.checkpoint) if args.sha256 else None
    if args.json:
        out = meta.to_dict()
        if digest:
            out["sha256"] = digest
        print(json_text(out))
        return 0
    rows: list[tuple[str, str]] = [
        ("file", f"{meta.path} ({_size(meta.size_bytes)}, {meta.format})"),
        ("kind", meta.kind + (f" (format {meta.format_version})" if meta.format_version else "")),
    ]
    if meta.name is not None:
        rows.append(("architecture", f"{meta.name} {meta.version}"))
    if meta.fingerprint is not None:
        rows.append(("fingerprint", meta.fingerprint))
    if meta.created is not None:
        rows.append(("created", meta.created))
    if meta.package_version is not None:
        rows.append(
            ("written by", f"video-interpreter {meta.package_version}, torch {meta.torch_version}")
        )
    for label, number in (("epoch", meta.epoch), ("step", meta.step), ("loss", meta.loss)):
        if number is not None:
            rows.append((label, str(number)))
    if meta.metrics:
        rows.append(("metrics", ", ".join(f"{k}={v}" for k, v in meta.metrics.items())))
    if meta.notes:
        rows.append(("notes", meta.notes))
    if meta.precision is not None:
        rows.append(("precision", f"parameters stored in {meta.precision}"))
    if meta.quantization is not None:
        q = meta.quantization
        rows.append(
            (
                "quantization",
                f"{q.get('scheme')} ({q.get('library')} {q.get('library_version')}), "
                f"{len(q.get('tensors') or {})} tensors",
            )
        )
    rows.append(("tensors", f"{meta.tensor_count} ({_size(meta.tensor_bytes)})"))
    rows.append(("training state", ", ".join(meta.training_state) or "none (weights only)"))
    if digest:
        rows.append(("sha256", digest))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


def _print_import(report: LoadReport, *, full: bool) -> None:
    """The summary line (or, ``full``, the whole report), then each transform the key map
    applied (renames are only counted)."""
    print(report if full else report.summary())
    for applied in report.transformed:
        print(f"  {applied}")


def _source_grids(args: argparse.Namespace) -> dict[str, tuple[int, ...]]:
    """``--source-grid KEY=14x14`` options as ``Adapt.source_grids``."""
    grids: dict[str, tuple[int, ...]] = {}
    for given in args.source_grid:
        key, _, grid = given.partition("=")
        try:
            sizes = tuple(int(n) for n in grid.split("x"))
        except ValueError:
            sizes = ()
        if not key or not sizes or min(sizes) < 1:
            args.parser.error(
                f"--source-grid {given!r}: give KEY=GRID with positive sizes joined by x, "
                "e.g. backbone.pos.space=14x14"
            )
        grids[key] = sizes
    return grids


def _adapt(args: argparse.Namespace) -> Adapt | bool:
    if args.source_grid and not args.adapt:
        args.parser.error("--source-grid tells --adapt a source table's grid; add --adapt")
    if not args.adapt:
        return False
    return Adapt(inflation=args.inflate or "centre", source_grids=_source_grids(args))


def _convert(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.inflate and not args.adapt:
        parser.error("--inflate says how --adapt inflates 2D kernels; add --adapt")
    if args.library and args.key_map:
        parser.error("give --from LIBRARY ARCH or --key-map FILE, not both")
    if args.library == "transformers":
        if len(args.paths) != 2:
            parser.error(
                "convert --from transformers takes DIR OUT (DIR: what save_pretrained wrote)"
            )
        if args.adapt:
            parser.error(
                "--adapt does not apply to --from transformers: convert DIR first, then adapt "
                "the result (convert OUT NEW_OUT --spec NEW.yaml --adapt)"
            )
        source, destination = args.paths
        check_output_file(Path(destination))
        saved, report = import_transformers(source, destination)
        _print_import(report, full=False)
    elif args.key_map:
        if len(args.paths) != 2:
            parser.error("convert --key-map FILE takes IN OUT (and --spec SPEC if FILE names none)")
        source, destination = args.paths
        check_output_file(Path(destination))
        saved, report = import_state_dict(
            args.spec, source, destination, key_map=args.key_map, adapt=_adapt(args)
        )
        _print_import(report, full=args.adapt)
    elif args.library:
        if len(args.paths) != 3:
            parser.error(f"convert --from {args.library} takes ARCH IN OUT")
        architecture, source, destination = args.paths
        check_output_file(Path(destination))
        saved, report = import_state_dict(
            architecture,
            source,
            destination,
            library=args.library,
            spec=args.spec,
            adapt=_adapt(args),
        )
        _print_import(report, full=args.adapt)
    else:
        if len(args.paths) != 2:
            parser.error("convert takes IN OUT (or --from LIBRARY ARCH IN OUT)")
        source, destination = args.paths
        check_output_file(Path(destination))
        saved, report = convert_checkpoint(
            source,
            destination,
            spec=args.spec,
            drop_training_state=args.drop_training_state,
            adapt=_adapt(args),
            trust_pickle=args.trust_pickle,
            return_report=True,
        )
        if args.adapt:
            print(report)
    print(f"wrote {saved.path} ({_size(saved.size_bytes)}, sha256 {saved.sha256})")
    if args.drop_training_state and Path(destination).suffix == ".safetensors":
        print("note: optimizer and scheduler state were not carried over", file=sys.stderr)
    return 0
