"""``render_diagram``: a spec, checkpoint or model -> a file in one of four formats.

DOT and Mermaid are written as text; SVG and PNG are laid out by Graphviz's ``dot`` program,
looked up on ``PATH`` when needed, so the text formats work without Graphviz installed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import VideoInterpreterError
from ..summary import DEFAULT_DEPTH, InputShape, ModelSource, trace_shapes
from ._formats import to_dot, to_mermaid
from ._graph import Graph, build_graph

__all__ = [
    "FORMATS",
    "Diagram",
    "DiagramError",
    "DiagramFormatError",
    "GraphvizNotFoundError",
    "build_diagram",
    "format_for",
    "render_diagram",
]

logger = logging.getLogger(__name__)

FORMATS = ("svg", "png", "dot", "mermaid")
"""Output formats; ``dot`` is needed for the first two."""

_SUFFIXES: Mapping[str, str] = {
    ".svg": "svg",
    ".png": "png",
    ".dot": "dot",
    ".gv": "dot",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
}
_SUFFIX_OF: Mapping[str, str] = {"svg": ".svg", "png": ".png", "dot": ".dot", "mermaid": ".mmd"}
_ALIASES: Mapping[str, str] = {"mmd": "mermaid", "gv": "dot"}
_DOT_TIMEOUT_S = 120

INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: `apt-get install graphviz`; Fedora: `dnf install graphviz`; "
    "macOS: `brew install graphviz`; conda: `conda install -c conda-forge graphviz`), "
    "or write DOT (.dot) or Mermaid (.mmd), which need no Graphviz"
)


class DiagramError(VideoInterpreterError, RuntimeError):
    """A diagram could not be rendered (Graphviz missing or failing)."""


class GraphvizNotFoundError(DiagramError):
    """SVG or PNG was asked for but Graphviz's ``dot`` program is not on ``PATH``."""


class DiagramFormatError(VideoInterpreterError, ValueError):
    """An unknown diagram format or file suffix."""


def format_for(out: str | Path, format: str | None = None) -> str:
    """The format to write: ``format`` if given, else from ``out``'s suffix.

    A ``format`` that contradicts a known suffix (Mermaid into ``x.svg``) is refused; with an
    unknown suffix, ``format`` decides."""
    valid = ", ".join(FORMATS)
    suffixes = ", ".join(_SUFFIXES)
    suffix = Path(out).suffix.lower()
    if format is not None:
        name = _ALIASES.get(format.lower(), format.lower())
        if name not in FORMATS:
            raise DiagramFormatError(f"unknown diagram format {format!r}; valid formats: {valid}")
        implied = _SUFFIXES.get(suffix)
        if implied is not None and implied != name:
            raise DiagramFormatError(
                f"format {format!r} does not match {str(out)!r}, whose suffix {suffix!r} means "
                f"{implied}; name the file {Path(out).stem}{_SUFFIX_OF[name]} or drop the format"
            )
        return name
    if suffix not in _SUFFIXES:
        raise DiagramFormatError(
            f"cannot tell the diagram format of {str(out)!r} from its suffix {suffix or '(none)'!r}"
            f"; use one of {suffixes}, or pass format= one of {valid}"
        )
    return _SUFFIXES[suffix]


@dataclass(frozen=True)
class Diagram:
    """A drawing of one architecture, ready to be written in any format."""

    graph: Graph

    def to_dot(self) -> str:
        return to_dot(self.graph)

    def to_mermaid(self) -> str:
        return to_mermaid(self.graph)

    def to_svg(self) -> bytes:
        return _run_dot(self.to_dot(), "svg")

    def to_png(self, *, dpi: int = 144) -> bytes:
        return _run_dot(self.to_dot(), "png", f"-Gdpi={dpi}")

    def render(self, out: str | Path, *, format: str | None = None) -> Path:
        """Write the diagram to ``out`` (format from the suffix unless given); returns the path.

        The file is written whole or not at all.
        """
        kind = format_for(out, format)
        data: bytes
        if kind == "dot":
            data = self.to_dot().encode()
        elif kind == "mermaid":
            data = self.to_mermaid().encode()
        elif kind == "svg":
            data = self.to_svg()
        else:
            data = self.to_png()
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            partial.write_bytes(data)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        logger.debug("wrote %s diagram %s", kind, path)
        return path


def _run_dot(source: str, kind: str, *extra: str) -> bytes:
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFoundError(
            f"{kind.upper()} output needs Graphviz's `dot` program, which is not on PATH; "
            + INSTALL_HINT
        )
    try:
        done = subprocess.run(
            [program, f"-T{kind}", *extra],
            input=source.encode(),
            capture_output=True,
            timeout=_DOT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiagramError(f"running {program} -T{kind} failed: {exc}") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise DiagramError(
            f"{program} -T{kind} exited with status {done.returncode}: {message or 'no message'}"
        )
    return done.stdout


def build_diagram(
    source: ModelSource,
    *,
    depth: int = DEFAULT_DEPTH,
    input_shape: InputShape | None = None,
    device: torch.device | str = "meta",
) -> Diagram:
    """Trace a spec, checkpoint or model on the meta device and lay out its drawing.

    Examples:
        >>> from video_interpreter.diagram import build_diagram
        >>> diagram = build_diagram("tiny_r2plus1d", depth=1)
        >>> "flowchart TB" in diagram.to_mermaid()
        True
    """
    trace = trace_shapes(source, input_shape=input_shape, device=device)
    return Diagram(build_graph(trace, depth=depth))


def render_diagram(
    source: ModelSource,
    out: str | Path,
    *,
    format: str | None = None,
    depth: int = DEFAULT_DEPTH,
    input_shape: InputShape | None = None,
) -> Path:
    """Draw a spec, checkpoint or model to ``out`` as SVG, PNG, DOT or Mermaid.

    The format comes from ``out``'s suffix (``.svg``, ``.png``, ``.dot``/``.gv``,
    ``.mmd``/``.mermaid``) unless ``format`` is given. ``depth`` is how many levels below the
    backbone, neck and heads are opened (1: each part's top-level nodes as boxes).
    Nothing is allocated: the model is traced on the meta device.

    Examples:
        >>> from video_interpreter import render_diagram
        >>> render_diagram("tiny_r2plus1d", "tiny.mmd")     # .svg and .png need Graphviz
        PosixPath('tiny.mmd')
    """
    format_for(out, format)  # refuse a bad format before tracing anything
    return build_diagram(source, depth=depth, input_shape=input_shape).render(out, format=format)
