"""The spec stage: file -> plain dict (omegaconf) -> validated ``ArchitectureSpec`` (jsonschema).

omegaconf and jsonschema are used here and nowhere else.
"""

from ._limits import DEFAULT_LIMITS, Limits, current_limits, raised_limits
from ._lookup import architecture_roots, find_spec_file, known_spec_names
from ._schema import architecture_schema, export_schema, schema_text
from ._spec import (
    ARCHITECTURE_KEYS,
    ArchitectureSpec,
    ClipShape,
    SpecSource,
    load_spec,
)
from ._validate import resolve_preprocess

__all__ = [
    "ARCHITECTURE_KEYS",
    "DEFAULT_LIMITS",
    "ArchitectureSpec",
    "ClipShape",
    "Limits",
    "SpecSource",
    "architecture_roots",
    "architecture_schema",
    "current_limits",
    "export_schema",
    "find_spec_file",
    "known_spec_names",
    "load_spec",
    "raised_limits",
    "resolve_preprocess",
    "schema_text",
]
