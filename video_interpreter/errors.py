"""Errors of every stage, rooted at one base class; the first module of the flow.

Exception tree::

    VideoInterpreterError
    ├── SpecError(ValueError)          a spec failed to load, validate or propagate shapes;
    │                                  carries every Problem found (file:line:col, spec path)
    ├── RegistryError(KeyError)        an unknown layer or init name; lists the closest names
    ├── RegistrationError(ValueError)  a name taken by another object, or a parameter schema
    │                                  that disagrees with the layer's signature
    ├── BuildError(RuntimeError)       a validated spec could not be turned into modules
    ├── CheckpointError(ValueError)    a checkpoint is unreadable, corrupt, unsafe or mismatched
    │   ├── LoadError                  weights do not fit a model; carries the LoadReport
    │   │                              (defined in video_interpreter.checkpoint)
    │   ├── KeyMapError                a key-map file is invalid (carries every Problem, located),
    │   │                              or a key map cannot apply to, or invert, a state dict
    │   └── AdaptationError            a tensor that differs has no rule that adapts it to the
    │                                  changed architecture (adapt=True loads)
    ├── DiagramError(RuntimeError)     Graphviz missing or failing (video_interpreter.diagram)
    │   └── GraphvizNotFoundError
    ├── DiagramFormatError(ValueError) an unknown diagram format or suffix
    ├── ExportError(ValueError)        an unknown export format, a dimension the model cannot
    │                                  leave dynamic, a source without a spec, an exporter
    │                                  failure (video_interpreter.export)
    ├── StoreError(RuntimeError)       the saved-models store refused or found an inconsistency
    │   └── TrackerError               a tracker (MLflow, W&B) failed or is misconfigured
    │                                  (defined in video_interpreter.tracking)
    ├── TrainingError(ValueError)      a training run or its synthetic data cannot work as asked
    └── CompressionError(ValueError)   an unknown quantisation scheme, a model no scheme can
                                       quantise, or torchao missing (video_interpreter.compress)

Every error says what failed, where, and what would be valid or what to do next.

Warnings::

    SpecShadowWarning(UserWarning)     a local spec file stands where a different shipped spec
                                       of the same name exists (see the names-and-paths rule)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "AdaptationError",
    "BuildError",
    "CheckpointError",
    "CompressionError",
    "KeyMapError",
    "PathPart",
    "Problem",
    "RegistrationError",
    "RegistryError",
    "SpecError",
    "SpecShadowWarning",
    "StoreError",
    "TrainingError",
    "VideoInterpreterError",
    "format_spec_path",
]

PathPart = str | int


def format_spec_path(path: Iterable[PathPart]) -> str:
    """Render a spec path the way users write it: ``backbone[3].kernel_size``.

    Examples:
        >>> from video_interpreter.errors import format_spec_path
        >>> format_spec_path(["backbone", 2, "depth"])
        'backbone[2].depth'
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "<root>"


class VideoInterpreterError(Exception):
    """Base class of every error this package raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where it is and what would be valid."""

    message: str
    path: tuple[PathPart, ...] = ()
    file: str | None = None
    line: int | None = None
    column: int | None = None
    value: object = None
    hint: str | None = None

    @property
    def spec_path(self) -> str:
        return format_spec_path(self.path)

    @property
    def location(self) -> str:
        """``file:line:col`` (1-based), or as much of it as is known."""
        if self.file is None:
            return "<spec>"
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def __str__(self) -> str:
        where = f"{self.spec_path}: " if self.path else ""  # file-level: no spec path
        text = f"{self.location}: {where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class SpecError(VideoInterpreterError, ValueError):
    """A spec could not be loaded or is invalid; ``.problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in spec"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class RegistryError(VideoInterpreterError, KeyError):
    """An unknown layer or init name (the message lists the closest known names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RegistrationError(VideoInterpreterError, ValueError):
    """A layer registration was refused: a taken name, or a schema that disagrees with the code."""


class BuildError(VideoInterpreterError, RuntimeError):
    """A validated spec could not be turned into modules."""


class CheckpointError(VideoInterpreterError, ValueError):
    """A checkpoint file is unreadable, corrupt, unsafe to open or does not fit its target."""


class KeyMapError(CheckpointError):
    """A key map (weights from another library) is invalid, or cannot be applied to a state dict
    or inverted for export. ``.problems`` lists every problem of an invalid key-map file, each
    located (``file:line:col``, entry path); it is empty for a failure on tensors."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
            return
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in key map"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class AdaptationError(CheckpointError):
    """A checkpoint tensor cannot be adapted to a changed architecture: the layer declares no
    rule for the change (a width changed, a (2+1)D kernel from a 2D one, a flat position table
    whose source grid is unknown)."""


class CompressionError(VideoInterpreterError, ValueError):
    """A model cannot be quantised as asked, or a quantised model cannot be restored here
    (torchao, the optional ``compress`` extra, is not installed)."""


class SpecShadowWarning(UserWarning):
    """A spec path found a local file while a different shipped spec answers to the same name
    or path: the local file is used, and the warning says how to pick the shipped one."""


class StoreError(VideoInterpreterError, RuntimeError):
    """The saved-models store refused an operation or found an inconsistency."""


class TrainingError(VideoInterpreterError, ValueError):
    """A training run (``video_interpreter.training``) or its synthetic data
    (``video_interpreter.data``) was asked for something that cannot work."""
