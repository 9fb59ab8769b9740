"""Renamed public names keep working for one minor release, with a ``DeprecationWarning`` that
names the replacement and points at the caller's line (the first frame outside the package)."""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "REMOVED_IN",
    "deprecated",
    "is_path",
    "reject_unknown",
    "renamed_option",
    "user_stacklevel",
]

REMOVED_IN = "0.3"
_PACKAGE = str(Path(__file__).resolve().parent)
T = TypeVar("T")


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning raised by the caller at the first frame outside
    this package (the user's line, whichever public function they called)."""
    level, frame = 1, inspect.currentframe()
    frame = frame.f_back if frame else None  # the function that will call warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    return level


def deprecated(message: str) -> None:
    """Warn that a call form is deprecated; ``message`` says what to write instead."""
    warnings.warn(
        f"{message} (deprecated in 0.2, removed in {REMOVED_IN})",
        DeprecationWarning,
        stacklevel=user_stacklevel(),
    )


def renamed_option(
    legacy: dict[str, Any], old: str, new: str, value: T, default: T, function: str
) -> T:
    """``value`` of the option ``new``, or the deprecated ``old`` keyword's if given instead."""
    if old not in legacy:
        return value
    if value != default:
        raise TypeError(f"{function}() got both {new}= and its deprecated name {old}=")
    deprecated(f"{function}({old}=...) is now {function}({new}=...)")
    result: T = legacy.pop(old)
    return result


def reject_unknown(legacy: dict[str, Any], function: str) -> None:
    """Python's own error for keywords that are neither options nor deprecated names."""
    if legacy:
        raise TypeError(
            f"{function}() got unexpected keyword argument(s): {', '.join(sorted(legacy))}"
        )


def is_path(value: object) -> bool:
    """Whether ``value`` is a file-system path (what a swapped argument order passes first)."""
    return isinstance(value, (str, os.PathLike))
