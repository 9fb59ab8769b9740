"""The build path rests on torch's public API alone: no numpy, no patched or private torch
function, nothing of torch replaced while a model is built."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import video_interpreter
from video_interpreter import build_model

PACKAGE = Path(video_interpreter.__file__).parent
# What the package must never name: numpy imports, torch's private check and device-context
# machinery, and torch-function modes (the means of answering torch ops in torch's place).
FORBIDDEN = re.compile(
    r"^\s*(import numpy|from numpy)|_check_with|DeviceContext|TorchFunctionMode|"
    r"torch\.utils\._device|torch\._prims|torch\._refs|torch\.overrides",
    re.MULTILINE,
)


def test_no_package_file_imports_numpy_or_names_a_private_torch_hook() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}: {match.group(0).strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for match in FORBIDDEN.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders


def test_building_leaves_torchs_own_functions_in_place() -> None:
    watched = {name: getattr(torch, name) for name in ("_check_with", "zeros", "ones", "empty")}
    model = build_model("tiny_transformer")
    assert all(getattr(torch, name) is fn for name, fn in watched.items())
    assert not any(p.is_meta for p in model.parameters())
