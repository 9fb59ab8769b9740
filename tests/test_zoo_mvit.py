"""MViT v2-S: the spec builds torchvision's mvit_v2_s, parameters, MACs (attention matrix products
included), weights and outputs; the key map renames every key and loads strictly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from video_interpreter.zoo import convert_state_dict

from .zoo_parity import (
    imported_model,
)

Pair = tuple[nn.Module, nn.Module]


@pytest.fixture(scope="module")
def mvit_v2_s() -> Pair:
    """(torchvision's mvit_v2_s, ours with its weights imported): built once, each takes seconds."""
    torch.manual_seed(0)
    return imported_model("mvit_v2_s")


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
