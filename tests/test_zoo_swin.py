"""Swin3D-T: the spec builds torchvision's architecture, weights, init, MACs and outputs included;
the tiny test spec matches torchvision's SwinTransformer3d configured the same way."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.video.swin_transformer import SwinTransformer3d

from video_interpreter.model import build_model
from video_interpreter.zoo import convert_state_dict

from .zoo_parity import (
    check_init_matches,
    check_key_map_covers_every_key,
    check_outputs_match,
    check_parameter_count,
    check_published_macs,
    check_weight_modules_match,
    mapped_state_dict,
    meta_pair,
)


def test_swin3d_t_parameter_count_equals_torchvision() -> None:
    check_parameter_count("swin3d_t")


def test_swin3d_t_macs_equal_torchvision_published_figure() -> None:
    check_published_macs("swin3d_t")


def test_swin3d_t_key_map_renames_every_torchvision_key_onto_the_spec() -> None:
    check_key_map_covers_every_key("swin3d_t")


def test_swin3d_t_keys_differ_from_torchvision_by_a_prefix_only() -> None:
    reference, _ = meta_pair("swin3d_t")
    for source, target in mapped_state_dict("swin3d_t", reference).renamed.items():
        if source.startswith("head."):
            assert target == "heads.action.fc." + source.removeprefix("head.")
        else:
            assert target == "backbone." + source


def test_swin3d_t_weight_modules_have_torchvision_settings() -> None:
    check_weight_modules_match("swin3d_t")


def test_swin3d_t_default_init_draws_weights_as_torchvision_does() -> None:
    check_init_matches("swin3d_t")


@pytest.mark.slow
def test_swin3d_t_outputs_equal_torchvision_after_import() -> None:
    torch.manual_seed(0)
    check_outputs_match("swin3d_t")


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
