"""File names of the saved-models store: format, sanitise and parse them (a round trip).

Three kinds of file live in a store, all ending in ``.pth``::

    {name}_{version}_{metric}_{value}.pth     a saved model   video_interpreter_v1_acc_0.95.pth
    {name}_{version}_epoch_{epoch:04d}.pth    a training checkpoint   ..._v1_epoch_0012.pth
    {name}_{version}_best.pth                 the best model (an independent copy of one
                                              saved model)

A second file that would take a name already in use gets ``-2``, ``-3``... before ``.pth``
(``video_interpreter_v1_acc_0.95-2.pth``), so nothing is ever overwritten.

Names are parsed from the right, which is what makes them unambiguous: the version and metric
tokens never contain ``_`` (it becomes ``-``), the value always contains a ``.``, the epoch never
does, so the model name (which may contain ``_``, as ``video_interpreter`` does) is whatever is
left. ``parse_name(format_...(x))`` gives back the sanitised parts, and formatting a parsed name
gives back the same file name.

Values keep 4 decimal places with trailing zeros stripped and at least one kept: 0.95 -> ``0.95``,
0.951234 -> ``0.9512``, 1 -> ``1.0``, -0.5 -> ``-0.5``; magnitudes of 1e10 or more use
``1.2346e+12``. The name is for people: the exact value is kept in the file's metadata and the
registry.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from ..errors import StoreError

__all__ = [
    "SUFFIX",
    "FileKind",
    "ParsedName",
    "best_name",
    "checkpoint_name",
    "format_value",
    "model_name",
    "parse_name",
    "sanitize_metric",
    "sanitize_name",
    "sanitize_version",
    "with_duplicate",
]

SUFFIX = ".pth"
FileKind = Literal["model", "checkpoint", "best"]

_DECIMALS = 4
_SCIENTIFIC_FROM = 1e10  # beyond this a fixed-point value would make long, unreadable names
_MAX_STEM = 200  # file systems allow 255 bytes; leave room for "-NN" and ".pth"

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_TOKEN_BAD = re.compile(r"[^A-Za-z0-9.-]+")
_METRIC_BAD = re.compile(r"[^A-Za-z0-9-]+")
_VALUE = r"-?\d+\.\d+(?:e[+-]\d+)?"
_PATTERN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)_(?P<version>[A-Za-z0-9][A-Za-z0-9.-]*)_"
    r"(?:(?P<best>best)"
    r"|epoch_(?P<epoch>\d{4,})(?:-(?P<cdup>[2-9]|[1-9]\d+))?"
    rf"|(?P<metric>[A-Za-z0-9][A-Za-z0-9-]*)_(?P<value>{_VALUE})(?:-(?P<mdup>[2-9]|[1-9]\d+))?)"
    rf"{re.escape(SUFFIX)}$"
)


@dataclass(frozen=True)
class ParsedName:
    """What a store file name says. ``duplicate`` is 1 for the first file of a name, N for
    ``-N``; ``metric``/``value`` are set for models, ``epoch`` for checkpoints."""

    kind: FileKind
    name: str
    version: str
    metric: str | None = None
    value: float | None = None
    epoch: int | None = None
    duplicate: int = 1

    def format(self) -> str:
        if self.kind == "best":
            return best_name(self.name, self.version)
        if self.kind == "checkpoint" and self.epoch is not None:
            base = checkpoint_name(self.name, self.version, self.epoch)
        elif self.kind == "model" and self.metric is not None and self.value is not None:
            base = model_name(self.name, self.version, self.metric, self.value)
        else:
            raise StoreError(f"{self} lacks the epoch (checkpoint) or metric and value (model)")
        return with_duplicate(base, self.duplicate)


def _clean(text: str, bad: re.Pattern[str], what: str) -> str:
    # Leading dots would hide the file, leading dashes would read as a command-line flag.
    cleaned = bad.sub("-", text.strip()).strip("-._")
    if not cleaned:
        raise StoreError(
            f"{what} {text!r} has no character usable in a file name (letters, digits, "
            f"'-', '.'{', _' if what == 'model name' else ''}); give the spec a name such as 'v1'"
        )
    return cleaned


def sanitize_name(name: str) -> str:
    """The model-name token: letters, digits, ``_``, ``.`` and ``-``; anything else is ``-``."""
    return _clean(name, _NAME_BAD, "model name")


def sanitize_version(version: str) -> str:
    """The version token: like a name but without ``_`` (which separates the tokens)."""
    return _clean(version, _TOKEN_BAD, "version")


def sanitize_metric(metric: str) -> str:
    """The metric token: letters, digits and ``-`` (``val_loss`` -> ``val-loss``)."""
    return _clean(metric, _METRIC_BAD, "metric name")


def format_value(value: float) -> str:
    """A metric value as it appears in a file name (see the module docstring for the rule)."""
    if not math.isfinite(value):
        raise StoreError(
            f"metric value {value!r} is not finite; a NaN or infinite metric cannot name or rank "
            "a model (save a training checkpoint with save_checkpoint instead)"
        )
    if abs(value) >= _SCIENTIFIC_FROM:
        return f"{value:.{_DECIMALS}e}"
    text = f"{value:.{_DECIMALS}f}".rstrip("0")
    if text.endswith("."):
        text += "0"
    return "0.0" if text == "-0.0" else text


def _stem(*tokens: str) -> str:
    stem = "_".join(tokens)
    if len(stem) > _MAX_STEM:
        raise StoreError(
            f"file name {stem[:40]}... would be {len(stem)} characters; the store allows "
            f"{_MAX_STEM}: use a shorter model name, version or metric name"
        )
    return stem


def model_name(name: str, version: str, metric: str, value: float) -> str:
    """``{name}_{version}_{metric}_{value}.pth``.

    Examples:
        >>> from video_interpreter.store import model_name
        >>> model_name("video_interpreter", "v1", "acc", 0.95)
        'video_interpreter_v1_acc_0.95.pth'
    """
    tokens = (sanitize_name(name), sanitize_version(version), sanitize_metric(metric))
    return _stem(*tokens, format_value(value)) + SUFFIX


def checkpoint_name(name: str, version: str, epoch: int) -> str:
    """``{name}_{version}_epoch_{epoch:04d}.pth``; zero-padded so a listing sorts by epoch.

    Examples:
        >>> from video_interpreter.store import checkpoint_name
        >>> checkpoint_name("video_interpreter", "v1", 12)
        'video_interpreter_v1_epoch_0012.pth'
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise StoreError(f"epoch must be an integer >= 0, got {epoch!r}")
    return _stem(sanitize_name(name), sanitize_version(version), "epoch", f"{epoch:04d}") + SUFFIX


def best_name(name: str, version: str) -> str:
    """``{name}_{version}_best.pth``.

    Examples:
        >>> from video_interpreter.store import best_name
        >>> best_name("video_interpreter", "v1")
        'video_interpreter_v1_best.pth'
    """
    return _stem(sanitize_name(name), sanitize_version(version), "best") + SUFFIX


def with_duplicate(file_name: str, duplicate: int) -> str:
    """The ``duplicate``-th file of a name: ``x.pth``, ``x-2.pth``, ``x-3.pth``..."""
    if duplicate < 1:
        raise StoreError(f"duplicate number must be >= 1, got {duplicate}")
    if duplicate == 1:
        return file_name
    return f"{file_name[: -len(SUFFIX)]}-{duplicate}{SUFFIX}"


def parse_name(file_name: str) -> ParsedName | None:
    """What a store file name says, or None when it does not follow the naming convention.

    Only canonical names parse (``acc_0.9500`` does not: the store writes ``acc_0.95``), so
    ``parse_name(n).format() == n`` for every name that parses.

    Examples:
        >>> from video_interpreter.store import parse_name
        >>> parsed = parse_name("video_interpreter_v1_acc_0.95.pth")
        >>> parsed.kind, parsed.name, parsed.version, parsed.metric, parsed.value
        ('model', 'video_interpreter', 'v1', 'acc', 0.95)
    """
    match = _PATTERN.match(file_name)
    if match is None:
        return None
    name, version = match["name"], match["version"]
    parsed: ParsedName
    if match["best"]:
        parsed = ParsedName("best", name, version)
    elif match["epoch"] is not None:
        epoch, duplicate = int(match["epoch"]), int(match["cdup"] or 1)
        parsed = ParsedName("checkpoint", name, version, epoch=epoch, duplicate=duplicate)
    else:
        value, duplicate = float(match["value"]), int(match["mdup"] or 1)
        parsed = ParsedName(
            "model", name, version, metric=match["metric"], value=value, duplicate=duplicate
        )
    try:
        canonical = parsed.format()
    except StoreError:
        return None
    return parsed if canonical == file_name else None
