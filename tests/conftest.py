"""Shared fixtures: tiny specs written to temporary files."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TINY_SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "tiny",
    "version": "v1",
    "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
    "backbone": [
        {"type": "Conv3d", "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False},
        {"type": "BatchNorm3d"},
        {"type": "ReLU"},
    ],
    "neck": {"type": "GlobalAvgPool3d"},
    "heads": {"action": {"type": "ClassificationHead", "num_classes": 5}},
}


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented spec text to ``tmp_path/name`` and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
