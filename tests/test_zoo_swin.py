"""Swin3D-T: the spec builds torchvision's architecture, weights, init, MACs and outputs included;
the tiny test spec matches torchvision's SwinTransformer3d configured the same way."""

from __future__ import annotations

import torch
from torchvision.models.video.swin_transformer import SwinTransformer3d

from video_interpreter.model import build_model
from video_interpreter.zoo import convert_state_dict

from .zoo_parity import (
    mapped_state_dict,
    meta_pair,
)


def test_swin3d_t_keys_differ_from_torchvision_by_a_prefix_only() -> None:
    reference, _ = meta_pair("swin3d_t")
    for source, target in mapped_state_dict("swin3d_t", reference).renamed.items():
        if source.startswith("head."):
            assert target == "heads.action.fc." + source.removeprefix("head.")
        else:
            assert target == "backbone." + source


def test_tiny_swin_equals_torchvision_swin_of_the_same_configuration() -> None:
    # 2x3x3 windows on 8x8 and 4x4 grids: padding and shifted-window masks on every block.
    torch.manual_seed(0)
    reference = SwinTransformer3d(
        patch_size=[2, 4, 4],
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 4],
        window_size=[2, 3, 3],
        num_classes=10,
    ).eval()
    ours = build_model("tiny_swin").eval()
    ours.load_state_dict(convert_state_dict("swin3d_t", reference.state_dict()).state_dict)
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(ours(clip)["action"], reference(clip), atol=1e-5, rtol=0)
