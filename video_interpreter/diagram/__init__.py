"""Diagrams of an architecture: input, backbone stages, neck and each head with output shapes,
repeated blocks collapsed ("BasicBlock3d x 2"), as SVG/PNG (Graphviz) or DOT/Mermaid text.
On top of the flow, beside the summaries; traced on the meta device, so nothing is allocated.

    >>> from video_interpreter.diagram import render_diagram
    >>> render_diagram("v1", "v1.mmd")         # or .svg, .png, .dot; depth=3 opens one more level
    PosixPath('v1.mmd')
"""

from ._formats import to_dot, to_mermaid
from ._graph import Box, Edge, Group
from ._graph import Graph as Graph
from ._graph import build_graph as build_graph
from ._render import (
    FORMATS,
    Diagram,
    DiagramError,
    DiagramFormatError,
    GraphvizNotFoundError,
    build_diagram,
    render_diagram,
)
from ._render import INSTALL_HINT as INSTALL_HINT
from ._render import format_for as format_for

__all__ = [
    "FORMATS",
    "Box",
    "Diagram",
    "DiagramError",
    "DiagramFormatError",
    "Edge",
    "GraphvizNotFoundError",
    "Group",
    "build_diagram",
    "render_diagram",
    "to_dot",
    "to_mermaid",
]
