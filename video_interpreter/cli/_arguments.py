"""Argument types and checks shared by the command groups, and the CLI's exit codes."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "CommandError",
    "check_output_dir",
    "check_output_file",
    "json_text",
    "limit_assignment",
    "non_negative_int",
    "positive_int",
]

EXIT_OK = 0
EXIT_FAILURE = 1  # a check failed (verify, schema --check) or an operation failed
EXIT_INVALID = 2  # invalid input: spec problems, bad arguments, a file of the wrong kind
EXIT_INTERNAL = 3  # an unexpected error inside the package (a bug: please report it)
EXIT_INTERRUPTED = 130  # Ctrl-C


class CommandError(Exception):
    """A command refused its arguments: printed as ``error: <message>``, exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.code = code


def _integer_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= {minimum}, got {text!r}"
        ) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 0, or a usage error that says what was given."""
    return _integer_at_least(0, text)


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1, or a usage error that says what was given."""
    return _integer_at_least(1, text)


def limit_assignment(text: str) -> tuple[str, int]:
    """An ``argparse`` type for ``--limit NAME=N``: a known limit and a positive integer."""
    from ..spec import Limits  # the spec stage imports torch: only when a limit is given

    limit_names = tuple(Limits.__dataclass_fields__)
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or name not in limit_names:
        raise argparse.ArgumentTypeError(
            f"expected NAME=N with NAME one of {', '.join(limit_names)}, got {text!r}"
        )
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"--limit {name} takes a positive integer, got {value!r}")
    return name, number


def check_output_file(path: Path) -> Path:
    """``path`` if a file can be written there; a ``CommandError`` saying why not otherwise.

    Missing folders are not created: a typo in a folder name is reported, not obeyed.
    """
    if path.is_dir():
        raise CommandError(f"{path} is a folder; give the name of a file to write")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise CommandError(f"cannot write {path}: the folder {parent} {what} (create it first)")
    return path


def check_output_dir(path: Path) -> Path:
    """``path`` if it is an existing folder; a ``CommandError`` otherwise."""
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise CommandError(
            f"cannot write files into the folder {path}: {path} {what} (create it first)"
        )
    return path


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """Strict JSON for printing: NaN and infinities (not JSON) are written as null."""
    return json.dumps(_finite(value), indent=2, default=str, allow_nan=False)
