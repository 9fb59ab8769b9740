"""Summaries of an architecture: layer table, parameters, MACs/FLOPs and memory, for a spec, a
checkpoint or a model, without allocating weights (meta device). On top of the flow, beside the
diagrams; torchinfo is used here and nowhere else.

    >>> from video_interpreter.summary import summarize
    >>> s = summarize("v1")                   # built on meta: nothing allocated
    >>> s.total_params, round(s.macs / 1e9, 3)
    (31505325, 40.519)
    >>> print(s.to_markdown())                # or s.to_text(), s.to_json()
    **video_interpreter v1 (VideoInterpreter) on input (1, 3, 16, 112, 112), device meta, depth 2**
    ...
"""

from ..spec import ClipShape as ClipShape  # the spec's ClipShape, the only one
from ._report import LayerRow, ModelSummary
from ._report import format_bytes as format_bytes
from ._report import format_count as format_count
from ._source import CHECKPOINT_SUFFIXES as CHECKPOINT_SUFFIXES
from ._source import DEFAULT_DEPTH, InputShape, ModelSource, parse_clip_shape
from ._summarize import summarize
from ._trace import ShapeTrace, trace_shapes

__all__ = [
    "DEFAULT_DEPTH",
    "InputShape",
    "LayerRow",
    "ModelSource",
    "ModelSummary",
    "ShapeTrace",
    "parse_clip_shape",
    "summarize",
    "trace_shapes",
]


def __getattr__(name: str) -> object:
    if name == "Source":  # renamed in 0.2
        from .._deprecation import deprecated

        deprecated("video_interpreter.summary.Source is now ModelSource")
        return ModelSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
