"""Shared fixtures: tiny specs written to temporary files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def tiny_spec(
    *,
    name: str = "tiny",
    version: str = "v1",
    out_channels: int = 8,
    bias: bool = False,
    num_classes: int = 5,
    dropout: float = 0.0,
) -> dict[str, Any]:
    """A fresh tiny spec: Conv3d + BatchNorm3d + ReLU, pooled, one classification head, on
    3x4x16x16 clips."""
    head: dict[str, Any] = {"type": "ClassificationHead", "num_classes": num_classes}
    if dropout:
        head["dropout"] = dropout
    return {
        "spec_version": 1,
        "name": name,
        "version": version,
        "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
        "backbone": [
            {
                "type": "Conv3d",
                "out_channels": out_channels,
                "kernel_size": 3,
                "padding": 1,
                "bias": bias,
            },
            {"type": "BatchNorm3d"},
            {"type": "ReLU"},
        ],
        "neck": {"type": "GlobalAvgPool3d"},
        "heads": {"action": head},
    }


TINY_SPEC: dict[str, Any] = tiny_spec()


def spec_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a nested spec document (mappings and lists), the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += spec_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += spec_paths(item, (*prefix, index))
    return found


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented spec text to ``tmp_path/name`` and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
