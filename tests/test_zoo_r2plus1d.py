"""R(2+1)D-18: the spec builds torchvision's architecture, weights and outputs included."""

from __future__ import annotations

import torch

from video_interpreter.model import build_model

from .zoo_parity import INPUT_SIZES, count_gmacs, imported_model, published_gmacs, torchvision_model


def test_r2plus1d_18_parameter_count_equals_torchvision() -> None:
    ours = build_model("r2plus1d_18", device="meta")
    reference = torchvision_model("r2plus1d_18")
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )


def test_r2plus1d_18_macs_equal_torchvision_published_figure() -> None:
    ours = build_model("r2plus1d_18", device="meta")
    assert round(count_gmacs(ours, INPUT_SIZES["r2plus1d_18"]), 3) == published_gmacs("r2plus1d_18")


def test_r2plus1d_18_outputs_equal_torchvision_after_import() -> None:
    reference, ours = imported_model("r2plus1d_18")
    clip = torch.randn(1, *INPUT_SIZES["r2plus1d_18"])
    with torch.inference_mode():
        torch.testing.assert_close(ours(clip)["action"], reference(clip), atol=1e-5, rtol=0)
