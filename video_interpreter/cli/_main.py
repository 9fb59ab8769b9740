"""Parser assembly, error-to-exit-code mapping and the entry point.

Exit codes: 0 success; 1 a check failed or an operation failed (the package said why);
2 invalid input (spec problems, bad arguments, a file of the wrong kind); 3 an unexpected error
inside the package, reported in one line (``--traceback`` shows it); 130 interrupted.
No error prints a Python traceback unless ``--traceback`` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import KeyMapError, SpecError, VideoInterpreterError
from ..spec import raised_limits
from . import (
    _checkpoint_commands,
    _compress_command,
    _demo_command,
    _distributed_commands,
    _export_command,
    _share_commands,
    _spec_commands,
    _store_commands,
    _view_commands,
)
from ._arguments import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    CommandError,
    limit_assignment,
)

__all__ = ["EXIT_FAILURE", "EXIT_INTERNAL", "EXIT_INVALID", "build_parser", "main"]

_GROUPS = (
    _spec_commands,
    _view_commands,
    _checkpoint_commands,
    _compress_command,
    _store_commands,
    _distributed_commands,
    _export_command,
    _share_commands,
    _demo_command,
)


def build_parser() -> argparse.ArgumentParser:
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
    for group in _GROUPS:
        group.register(commands)
    return parser


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def _os_message(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    names = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
    return f"{reason}: {' -> '.join(names)}" if names else reason


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with raised_limits(**dict(args.limits)):
            code: int = args.handler(args)
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
