"""Attributes of a package imported on first use (PEP 562), so that importing the package, or a
light part of it such as the command line's parser, does not import torch.

A package lists ``{name: submodule}``; ``from package import name`` and ``package.name`` import
the submodule then, and cache the value in the package's namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, origins: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose ``origins`` map each lazy name to the
    relative module defining it (``"build_model": ".model"``)."""

    def get_attribute(name: str) -> Any:
        origin = origins.get(name)
        if origin is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(origin, package), name)
        namespace[name] = value
        return value

    def list_attributes() -> list[str]:
        return sorted({*namespace, *origins})

    return get_attribute, list_attributes
