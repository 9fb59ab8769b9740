"""Diagrams of an architecture: input, backbone stages, neck and each head with output shapes,
repeated blocks collapsed ("BasicBlock3d x 2"), as SVG/PNG (Graphviz) or DOT/Mermaid text.
On top of the flow, beside the summaries; traced on the meta device, so nothing is allocated.

    >>> from video_interpreter.diagram import render_diagram
    >>> render_diagram("v1", "v1.svg")         # or .png, .dot, .mmd; depth=3 opens one more level
"""

from ._formats import to_dot, to_mermaid
from ._graph import JOINT, Box, Edge, Graph, Group, build_graph, pathways
from ._render import (
    FORMATS,
    INSTALL_HINT,
    Diagram,
    DiagramError,
    DiagramFormatError,
    GraphvizNotFoundError,
    build_diagram,
    format_for,
    render_diagram,
)

__all__ = [
    "FORMATS",
    "INSTALL_HINT",
    "JOINT",
    "Box",
    "Diagram",
    "DiagramError",
    "DiagramFormatError",
    "Edge",
    "Graph",
    "GraphvizNotFoundError",
    "Group",
    "build_diagram",
    "build_graph",
    "format_for",
    "pathways",
    "render_diagram",
    "to_dot",
    "to_mermaid",
]
