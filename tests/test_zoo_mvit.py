"""MViT v2-S: the spec builds torchvision's mvit_v2_s, parameters, MACs (attention matrix products
included), weights and outputs; the key map renames every key and loads strictly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from video_interpreter.zoo import convert_state_dict

from .zoo_parity import (
    INPUT_SIZES,
    check_init_matches,
    check_key_map_covers_every_key,
    check_parameter_count,
    check_published_macs,
    check_weight_modules_match,
    imported_model,
)

Pair = tuple[nn.Module, nn.Module]


@pytest.fixture(scope="module")
def mvit_v2_s() -> Pair:
    """(torchvision's mvit_v2_s, ours with its weights imported): built once, each takes seconds."""
    torch.manual_seed(0)
    return imported_model("mvit_v2_s")


def test_mvit_v2_s_parameter_count_equals_torchvision() -> None:
    check_parameter_count("mvit_v2_s")


def test_mvit_v2_s_macs_equal_torchvision_published_figure() -> None:
    check_published_macs("mvit_v2_s")


def test_mvit_v2_s_key_map_renames_every_key_and_loads_strictly() -> None:
    check_key_map_covers_every_key("mvit_v2_s")


def test_mvit_v2_s_key_map_changes_only_prefixes_and_the_pool_norm_name(mvit_v2_s: Pair) -> None:
    reference, _ = mvit_v2_s
    mapped = convert_state_dict("mvit_v2_s", reference.state_dict())
    for source, target in mapped.renamed.items():
        if source.startswith("head.1."):
            assert target == "heads.action.fc." + source.removeprefix("head.1.")
        elif source.startswith(("pos_encoding.", "blocks.")):
            expected = "backbone.encoder." + source.replace(".norm_act.0.", ".norm.")
            assert target == expected
        else:
            assert target == "backbone." + source


def test_mvit_v2_s_weight_modules_match_torchvision_in_order_and_settings() -> None:
    check_weight_modules_match("mvit_v2_s")


def test_mvit_v2_s_init_draws_weights_as_torchvision_does() -> None:
    check_init_matches("mvit_v2_s")


def test_mvit_v2_s_outputs_equal_torchvision_after_import(mvit_v2_s: Pair) -> None:
    reference, ours = mvit_v2_s
    clip = torch.randn(1, *INPUT_SIZES["mvit_v2_s"])
    with torch.inference_mode():
        torch.testing.assert_close(ours(clip)["action"], reference(clip), atol=1e-5, rtol=0)
