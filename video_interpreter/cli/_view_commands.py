"""``summary`` and ``diagram``: look at an architecture from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..diagram import DiagramFormatError, build_diagram, format_for, render_diagram
from ..errors import SpecError
from ..summary import DEFAULT_DEPTH, parse_clip_shape, summarize
from ._arguments import (
    EXIT_INVALID,
    CommandError,
    check_output_dir,
    check_output_file,
    non_negative_int,
)
from ._progress import Progress

__all__ = ["DEFAULT_CONFIGS", "DEFAULT_DIAGRAMS", "register"]

DEFAULT_CONFIGS = Path("architectures/configs")
DEFAULT_DIAGRAMS = Path("architectures/diagrams")
_ZOO_FORMATS = (".svg", ".mmd")
_SPEC_SUFFIXES = (".yaml", ".yml", ".json")


def register(commands: Any) -> None:
    summary = commands.add_parser(
        "summary",
        help="layer table, parameters, MACs/FLOPs and memory of a spec or checkpoint",
        description="Summarise a spec or checkpoint on the meta device (no weights allocated).",
    )
    summary.add_argument("source", metavar="SPEC_OR_CKPT", help="spec file or name, or checkpoint")
    summary.add_argument(
        "--input",
        metavar="CxTxHxW",
        help="clip shape without batch, e.g. 3x16x112x112 (default: the spec's input)",
    )
    summary.add_argument("--batch-size", type=int, default=1, metavar="N", help="default 1")
    summary.add_argument(
        "--format", choices=("text", "md", "json"), default="text", help="default text"
    )
    summary.add_argument(
        "--depth",
        type=non_negative_int,
        default=DEFAULT_DEPTH,
        metavar="N",
        help=f"module levels listed (default {DEFAULT_DEPTH})",
    )
    summary.set_defaults(handler=_summary)

    diagram = commands.add_parser(
        "diagram",
        help="draw an architecture as SVG, PNG, DOT or Mermaid",
        description=(
            "Draw a spec or checkpoint: input, backbone, neck and heads with output shapes, "
            "repeated blocks collapsed. SVG and PNG need Graphviz's `dot`. With --zoo, write an "
            "SVG and a Mermaid file for every spec in architectures/configs."
        ),
    )
    diagram.add_argument(
        "source", nargs="?", metavar="SPEC_OR_CKPT", help="spec file or name, or checkpoint"
    )
    diagram.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="FILE.svg, .png, .dot or .mmd"
    )
    diagram.add_argument(
        "--format",
        choices=("svg", "png", "dot", "mermaid"),
        help="output format (default: from the file's suffix)",
    )
    diagram.add_argument(
        "--depth",
        type=non_negative_int,
        default=DEFAULT_DEPTH,
        metavar="N",
        help=f"levels opened (default {DEFAULT_DEPTH})",
    )
    diagram.add_argument(
        "--zoo",
        action="store_true",
        help=f"regenerate {DEFAULT_DIAGRAMS}/ from every spec in {DEFAULT_CONFIGS}/",
    )
    diagram.add_argument(
        "--configs", type=Path, default=DEFAULT_CONFIGS, metavar="DIR", help="with --zoo"
    )
    diagram.add_argument(
        "--out-dir", type=Path, default=DEFAULT_DIAGRAMS, metavar="DIR", help="with --zoo"
    )
    diagram.set_defaults(handler=_diagram, parser=diagram)


def _summary(args: argparse.Namespace) -> int:
    shape = parse_clip_shape(args.input) if args.input is not None else None
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    result = summarize(args.source, input_shape=shape, batch_size=args.batch_size, depth=args.depth)
    if args.format == "json":
        sys.stdout.write(result.to_json())
    elif args.format == "md":
        sys.stdout.write(result.to_markdown())
    else:
        sys.stdout.write(result.to_text())
    return 0


def _diagram(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.zoo:
        if args.source is not None or args.output is not None:
            parser.error("--zoo writes every spec's diagrams; give no SPEC_OR_CKPT or -o with it")
        return _zoo(args.configs, check_output_dir(args.out_dir), args.depth)
    if args.source is None or args.output is None:
        parser.error("give SPEC_OR_CKPT and -o FILE (or --zoo)")
    try:
        format_for(args.output, args.format)
    except DiagramFormatError as exc:
        raise CommandError(str(exc)) from None
    check_output_file(args.output)
    path = render_diagram(args.source, args.output, format=args.format, depth=args.depth)
    print(f"wrote {path}")
    return 0


def _zoo(configs: Path, out_dir: Path, depth: int) -> int:
    specs = sorted(
        p
        for p in configs.glob("*")
        if p.suffix.lower() in _SPEC_SUFFIXES and not p.name.startswith("_")
    )
    if not specs:
        raise CommandError(f"no spec files (*.yaml, *.yml, *.json) in {configs}")
    failed = 0
    shown = Progress(len(specs), "drawing")
    for done, spec in enumerate(specs, 1):
        shown.step(done, spec.stem)
        try:
            drawing = build_diagram(spec, depth=depth)
        except SpecError as exc:
            shown.close()
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        written = [drawing.render(out_dir / (spec.stem + suffix)) for suffix in _ZOO_FORMATS]
        shown.close()
        for path in written:
            print(f"wrote {path}")
    names = {p.stem for p in specs}
    stale = sorted(p for p in out_dir.glob("*") if p.suffix in _ZOO_FORMATS and p.stem not in names)
    for path in stale:
        print(f"warning: {path} has no spec in {configs}; delete it if it is obsolete")
    return EXIT_INVALID if failed else 0
