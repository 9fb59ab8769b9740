"""The spec stage: file -> plain dict (omegaconf) -> validated ``ArchitectureSpec`` (jsonschema).

omegaconf and jsonschema are used here and nowhere else.
"""

from ._limits import DEFAULT_LIMITS, Limits, current_limits, raised_limits
from ._lookup import architecture_roots as architecture_roots
from ._lookup import find_spec_file as find_spec_file
from ._lookup import known_spec_names
from ._schema import architecture_schema
from ._schema import export_schema as export_schema
from ._schema import schema_text as schema_text
from ._source import Location as Location
from ._source import SourceMap as SourceMap
from ._source import read_document as read_document
from ._spec import ARCHITECTURE_KEYS as ARCHITECTURE_KEYS
from ._spec import ArchitectureSpec, ClipShape, SpecSource, load_spec
from ._validate import document_problems as document_problems
from ._validate import resolve_preprocess

__all__ = [
    "DEFAULT_LIMITS",
    "ArchitectureSpec",
    "ClipShape",
    "Limits",
    "SpecSource",
    "architecture_schema",
    "current_limits",
    "known_spec_names",
    "load_spec",
    "raised_limits",
    "resolve_preprocess",
]
