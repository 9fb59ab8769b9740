"""Parser assembly, error-to-exit-code mapping and the entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import SpecError, VideoInterpreterError
from . import (
    _checkpoint_commands,
    _demo_command,
    _distributed_commands,
    _export_command,
    _spec_commands,
    _store_commands,
    _view_commands,
)

__all__ = ["EXIT_FAILURE", "EXIT_INVALID", "build_parser", "main"]

EXIT_INVALID = 2
EXIT_FAILURE = 1

_GROUPS = (
    _spec_commands,
    _view_commands,
    _checkpoint_commands,
    _store_commands,
    _distributed_commands,
    _export_command,
    _demo_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="video-interpreter",
        description="Define video models in YAML/JSON, build, save, load and inspect them.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    except VideoInterpreterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return code


if __name__ == "__main__":
    sys.exit(main())
