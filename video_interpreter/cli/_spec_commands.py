"""``validate``, ``build``, ``schema`` and ``layers``: the spec stage from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..layers import LAYERS, LayerEntry, Layout
from ..model import build_model
from ..spec import export_schema, load_spec, schema_text
from ._arguments import EXIT_FAILURE, EXIT_INVALID, check_output_file

__all__ = ["DEFAULT_SCHEMA_PATH", "register"]

DEFAULT_SCHEMA_PATH = Path("architectures/schema/architecture.schema.json")


def register(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check specs; print every problem")
    validate.add_argument("specs", nargs="+", metavar="SPEC", help="spec files or names")
    validate.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value (repeatable)",
    )
    validate.add_argument(
        "--allow-external-extends",
        action="store_true",
        help="let `extends` read files outside the spec's folder and the architectures folders",
    )
    validate.set_defaults(handler=_validate)

    build = commands.add_parser("build", help="build a spec; print module tree and parameters")
    build.add_argument("spec", metavar="SPEC")
    build.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a value (repeatable)",
    )
    build.add_argument(
        "--meta", action="store_true", help="build on the meta device (no weights allocated)"
    )
    build.add_argument(
        "--allow-external-extends",
        action="store_true",
        help="let `extends` read files outside the spec's folder and the architectures folders",
    )
    build.set_defaults(handler=_build)

    schema = commands.add_parser("schema", help="write or print the spec JSON Schema")
    schema.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEFAULT_SCHEMA_PATH,
        help=f"where to write it (default {DEFAULT_SCHEMA_PATH}); '-' prints",
    )
    schema.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the file differs from the registered layers' schema",
    )
    schema.set_defaults(handler=_schema)

    layers = commands.add_parser("layers", help="list the registered layer types")
    layers.set_defaults(handler=_layers)


def _validate(args: argparse.Namespace) -> int:
    failed = 0
    for spec in args.specs:
        try:
            resolved = load_spec(
                spec,
                overrides=args.overrides,
                allow_external_extends=args.allow_external_extends,
            )
        except SpecError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        print(f"ok  {spec}  ({resolved.name} {resolved.version}, {resolved.fingerprint[:12]})")
    return EXIT_INVALID if failed else 0


def _build(args: argparse.Namespace) -> int:
    spec = load_spec(
        args.spec,
        overrides=args.overrides,
        check_shapes=False,
        allow_external_extends=args.allow_external_extends,
    )
    model = build_model(spec, device="meta" if args.meta else None)
    print(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"\n{model.spec.name} {model.spec.version}: {total:,} parameters ({trainable:,} trainable)"
    )
    print(f"fingerprint {model.spec.fingerprint}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    if str(args.output) == "-":
        sys.stdout.write(schema_text())
        return 0
    check_output_file(args.output)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != schema_text():
            print(f"{args.output} is out of date; run `video-interpreter schema`", file=sys.stderr)
            return EXIT_FAILURE
        print(f"{args.output} is up to date")
        return 0
    print(f"wrote {export_schema(args.output)}")
    return 0


def _takes(entry: LayerEntry) -> str:
    """What a layer takes, in a word: its layouts, ``any``, or ``merge``; ``?`` when it declares
    no output (it is run once on meta to find it)."""
    if entry.output is None:
        return "?"
    if entry.arity == "many":
        return "merge"
    if entry.accepts is None or len(entry.accepts) == len(Layout):
        return "any"
    return "|".join(layout.value for layout in Layout if layout in entry.accepts)


def _layers(args: argparse.Namespace) -> int:
    print(f"{'layer':22} {'takes':19} description")
    for entry in LAYERS.entries():
        print(f"{entry.name:22} {_takes(entry):19} {entry.description}")
    return 0
