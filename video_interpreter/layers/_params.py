"""JSON Schema fragments for layer parameters, shared by the built-in layers and users' own."""

from __future__ import annotations

from typing import Any

__all__ = [
    "BOOL",
    "NODE",
    "NODE_LIST",
    "NON_NEGATIVE_INT",
    "NUMBER",
    "POSITIVE_INT",
    "POSITIVE_NUMBER",
    "PROBABILITY",
    "enum",
    "triple",
]

POSITIVE_INT: dict[str, Any] = {"type": "integer", "minimum": 1}
NON_NEGATIVE_INT: dict[str, Any] = {"type": "integer", "minimum": 0}
NUMBER: dict[str, Any] = {"type": "number"}
POSITIVE_NUMBER: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
PROBABILITY: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1}
BOOL: dict[str, Any] = {"type": "boolean"}

NODE: dict[str, Any] = {"$ref": "#/$defs/node"}
"""A nested node ``{type: ..., ...}``, validated against whichever layer its type names."""
NODE_LIST: dict[str, Any] = {"type": "array", "items": NODE, "minItems": 1}


def triple(minimum: int = 1) -> dict[str, Any]:
    """An integer for all of T, H, W, or a list ``[T, H, W]``."""
    item = {"type": "integer", "minimum": minimum}
    return {
        "anyOf": [item, {"type": "array", "items": item, "minItems": 3, "maxItems": 3}],
        "description": f"an integer >= {minimum}, or a list [T, H, W] of such integers",
    }


def enum(*values: str) -> dict[str, Any]:
    return {"enum": list(values)}
