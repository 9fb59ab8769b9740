"""Parser assembly, error-to-exit-code mapping and the entry point.

Exit codes: 0 success; 1 a check failed or an operation failed (the package said why);
2 invalid input (spec problems, bad arguments, a file of the wrong kind); 3 an unexpected error
inside the package, reported in one line (``--traceback`` shows it); 130 interrupted.
No error prints a Python traceback unless ``--traceback`` is given.

``--help``, ``--version`` and ``models list`` answer without importing torch: the command groups
are imported only when their parser is needed, and those three need only the top-level parser
with the list of commands (``COMMANDS``, held equal to the groups' own by a test) or the store
group, whose listing reads the SQLite registry alone.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .._version import __version__
from ..errors import KeyMapError, SpecError, VideoInterpreterError
from ._arguments import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    CommandError,
    limit_assignment,
)

__all__ = ["EXIT_FAILURE", "EXIT_INTERNAL", "EXIT_INVALID", "build_parser", "main"]

# The command groups, in the order their commands are listed.
_GROUPS = (
    "_spec_commands",
    "_view_commands",
    "_checkpoint_commands",
    "_compress_command",
    "_store_commands",
    "_distributed_commands",
    "_export_command",
    "_share_commands",
    "_demo_command",
)

# Every command and its one-line help, as the groups register them (a test holds them equal):
# what `--help` lists without importing the groups.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("validate", "check specs; print every problem"),
    ("build", "build a spec; print module tree and parameters"),
    ("schema", "write or print the spec JSON Schema"),
    ("layers", "list the registered layer types"),
    ("summary", "layer table, parameters, MACs/FLOPs and memory of a spec or checkpoint"),
    ("diagram", "draw an architecture as SVG, PNG, DOT or Mermaid"),
    ("inspect", "show what a checkpoint holds (architecture, metrics, training state)"),
    ("convert", "convert between .pth and .safetensors, or import another library's weights"),
    ("compress", "write a smaller copy of a checkpoint (bf16/fp16 storage or int8 quantisation)"),
    ("models", "the saved-models store and its registry"),
    ("consolidate", "turn a sharded checkpoint directory into one .pth or .safetensors file"),
    ("export", "export a spec or checkpoint to torch.export (.pt2) or ONNX (.onnx)"),
    ("card", "write a model card (Markdown, YAML front matter) and its diagram"),
    ("pretrained", "write a checkpoint as a Hub-style model directory"),
    ("demo", "validate every spec; train, store, summarise, draw and reload a small model"),
)


def _group(name: str) -> ModuleType:
    return importlib.import_module(f".{name}", __package__)


def _top_parser() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="video-interpreter",
        description="Define video models in YAML/JSON, build, save, load and inspect them.",
        epilog=(
            "exit codes: 0 success, 1 a check or operation failed, 2 invalid input or usage, "
            "3 unexpected internal error, 130 interrupted"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--limit",
        dest="limits",
        action="append",
        default=[],
        type=limit_assignment,
        metavar="NAME=N",
        help="raise (or lower) one of the spec limits, e.g. --limit parameters=50000000000",
    )
    parser.add_argument(
        "--traceback", action="store_true", help="on an unexpected error, show the traceback"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, commands


def build_parser() -> argparse.ArgumentParser:
    """The full parser: every command group registered (this imports them all)."""
    parser, commands = _top_parser()
    for name in _GROUPS:
        _group(name).register(commands)
    return parser


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser ``argv`` needs: the full one, unless it asks only for help, the version or
    the store's listing, which light parsers answer without importing torch."""
    if list(argv) in ([], ["-h"], ["--help"], ["--version"]):
        parser, commands = _top_parser()
        for name, text in COMMANDS:
            commands.add_parser(name, help=text)
        return parser
    if list(argv[:2]) == ["models", "list"] and not any(a.startswith("--limit") for a in argv):
        parser, commands = _top_parser()
        _group("_store_commands").register(commands)
        return parser
    return build_parser()


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    return f"{reason}: {' -> '.join(names)}" if names else reason


def _run(args: argparse.Namespace) -> int:
    if not args.limits:
        code: int = args.handler(args)
        return code
    from ..spec import raised_limits  # the spec stage imports torch

    with raised_limits(**dict(args.limits)):
        limited: int = args.handler(args)
    return limited


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``video-interpreter`` command with ``argv`` (default: the process's arguments)
    and return its exit code; errors are printed, never raised.

    Examples:
        >>> from video_interpreter.cli import main
        >>> main(["validate", "v1"])
        ok  v1  (video_interpreter v1, ...)
        0
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser_for(arguments).parse_args(arguments)
    try:
        code = _run(args)
    except (SpecError, KeyMapError) as exc:
        if not exc.problems:  # a key map that does not fit the tensors: an operation failed
            _error(exc)
            return EXIT_FAILURE
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    except CommandError as exc:
        _error(exc)
        return exc.code
    except VideoInterpreterError as exc:
        _error(exc)
        return EXIT_FAILURE
    except OSError as exc:
        _error(_os_message(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line, the traceback only when asked for
        if args.traceback:
            raise
        _error(
            f"unexpected {type(exc).__name__}: {exc} (this is a bug in video-interpreter; "
            "rerun with --traceback and report it)"
        )
        return EXIT_INTERNAL
    return code


if __name__ == "__main__":
    sys.exit(main())
