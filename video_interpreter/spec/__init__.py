"""The spec stage: file -> plain dict (omegaconf) -> validated ``ArchitectureSpec`` (jsonschema).

omegaconf and jsonschema are used here and nowhere else.
"""

from ._limits import DEFAULT_LIMITS, Limits, current_limits, raised_limits
from ._lookup import architecture_roots, find_spec_file, known_spec_names
from ._schema import architecture_schema, export_schema, schema_text
from ._source import Location, SourceMap, read_document
from ._spec import (
    ARCHITECTURE_KEYS,
    ArchitectureSpec,
    ClipShape,
    SpecSource,
    load_spec,
)
from ._validate import document_problems, resolve_preprocess

__all__ = [
    "ARCHITECTURE_KEYS",
    "DEFAULT_LIMITS",
    "ArchitectureSpec",
    "ClipShape",
    "Limits",
    "Location",
    "SourceMap",
    "SpecSource",
    "architecture_roots",
    "architecture_schema",
    "current_limits",
    "document_problems",
    "export_schema",
    "find_spec_file",
    "known_spec_names",
    "load_spec",
    "raised_limits",
    "read_document",
    "resolve_preprocess",
    "schema_text",
]
