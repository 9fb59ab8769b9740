"""Separable 3D Inception layers: Unit3d, SepConv3d, ConvClassificationHead, and an Inception
block written as a Concat of them."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import pytest
import torch
from torch import nn
from torchvision.models.video.s3d import SepInceptionBlock3D, TemporalSeparableConv
from torchvision.ops.misc import Conv3dNormActivation

from video_interpreter.errors import SpecError
from video_interpreter.layers import build_node, clip
from video_interpreter.layers.s3d import ConvClassificationHead, SepConv3d, Unit3d
from video_interpreter.model import build_model
from video_interpreter.spec import load_spec
from video_interpreter.zoo import convert_state_dict

INCEPTION_BN = partial(nn.BatchNorm3d, eps=0.001, momentum=0.001)


def _spec(backbone: list[dict[str, Any]], head: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "name": "tiny_s3d",
        "version": "v1",
        "input": {"channels": 3, "frames": 4, "height": 8, "width": 8},
        "backbone": backbone,
        "heads": {"action": head or {"type": "ConvClassificationHead", "num_classes": 5}},
    }


def _randomise_norms(module: nn.Module) -> None:
    """Non-trivial running statistics and affine weights, so eps and the affine map matter."""
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm3d):
            assert norm.running_mean is not None
            assert norm.running_var is not None
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.01, 0.05)  # small: eps=1e-3 vs 1e-5 is visible
            nn.init.uniform_(norm.weight, 0.5, 1.5)
            nn.init.uniform_(norm.bias, -0.5, 0.5)


def _same_outputs(ours: nn.Module, theirs: nn.Module, clip: torch.Tensor) -> None:
    _randomise_norms(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(clip), theirs(clip), atol=1e-6, rtol=0)


def test_unit3d_is_torchvision_conv3d_norm_activation_key_for_key() -> None:
    torch.manual_seed(0)
    theirs = Conv3dNormActivation(4, 6, kernel_size=3, norm_layer=INCEPTION_BN)
    _same_outputs(Unit3d(4, 6, kernel_size=3), theirs, torch.randn(2, 4, 3, 5, 5))


def test_unit3d_keeps_time_and_space_at_stride_one_for_odd_kernels() -> None:
    _, shape = build_node(
        {"type": "Unit3d", "out_channels": 6, "kernel_size": [3, 5, 5]}, clip(4, 3, 9, 9), ()
    )
    assert shape == clip(6, 3, 9, 9)


def test_unit3d_uses_inception_batch_norm_settings_by_default() -> None:
    norm = Unit3d(4, 6)[1]
    assert isinstance(norm, nn.BatchNorm3d)
    assert (norm.eps, norm.momentum) == (0.001, 0.001)


def test_sep_conv3d_is_torchvision_temporal_separable_conv_key_for_key() -> None:
    torch.manual_seed(0)
    theirs = TemporalSeparableConv(
        4, 6, kernel_size=3, stride=2, padding=1, norm_layer=INCEPTION_BN
    )
    _same_outputs(SepConv3d(4, 6, kernel_size=3, stride=2), theirs, torch.randn(2, 4, 5, 7, 7))


def test_sep_conv3d_splits_a_t_h_w_kernel_into_spatial_then_temporal() -> None:
    module = SepConv3d(4, 6, kernel_size=[3, 5, 5], stride=[2, 1, 1])
    # Each half is (conv, norm, ReLU).
    spatial, temporal = module.get_submodule("0.0"), module.get_submodule("1.0")
    assert isinstance(spatial, nn.Conv3d)
    assert isinstance(temporal, nn.Conv3d)
    assert (spatial.kernel_size, spatial.stride, spatial.padding) == (
        (1, 5, 5),
        (1, 1, 1),
        (0, 2, 2),
    )
    assert (temporal.kernel_size, temporal.stride, temporal.padding) == (
        (3, 1, 1),
        (2, 1, 1),
        (1, 0, 0),
    )
    assert module(torch.randn(1, 4, 6, 8, 8)).shape == (1, 6, 3, 8, 8)


def test_sep_conv3d_has_fewer_weights_than_the_full_3d_conv() -> None:
    separable = sum(p.numel() for p in SepConv3d(16, 16, kernel_size=3).parameters())
    full = sum(p.numel() for p in Unit3d(16, 16, kernel_size=3).parameters())
    assert separable < full


def test_conv_classification_head_averages_pointwise_class_scores() -> None:
    torch.manual_seed(0)
    head = ConvClassificationHead(8, 5).eval()
    features = torch.randn(2, 8, 2, 3, 3)
    conv = head.classifier[1]
    assert isinstance(conv, nn.Conv3d)
    assert conv.bias is not None
    expected = torch.einsum("bcthw,kc->bk", features, conv.weight.flatten(1)) / 18 + conv.bias
    torch.testing.assert_close(head(features), expected, atol=1e-6, rtol=1e-5)


def test_conv_classification_head_keeps_torchvision_key_names() -> None:
    keys = set(ConvClassificationHead(8, 5, dropout=0.2).state_dict())
    assert keys == {"classifier.1.weight", "classifier.1.bias"}


def test_conv_classification_head_refuses_pooled_features_with_a_hint() -> None:
    spec = _spec(
        [{"type": "Unit3d", "out_channels": 8}, {"type": "GlobalAvgPool3d"}],
    )
    with pytest.raises(
        SpecError,
        match=r"heads\.action: ConvClassificationHead takes a clip or feature map \(C, T, H, W\); "
        r"backbone\[1\] \(GlobalAvgPool3d\) gives a vector \(8,\)",
    ):
        load_spec(spec)


def test_unit3d_rejects_a_batch_norm_momentum_above_one() -> None:
    spec = _spec([{"type": "Unit3d", "out_channels": 8, "norm_momentum": 2}])
    with pytest.raises(SpecError, match=r"backbone\[0\]\.norm_momentum"):
        load_spec(spec)


def test_sep_conv3d_rejects_a_zero_kernel() -> None:
    spec = _spec([{"type": "SepConv3d", "out_channels": 8, "kernel_size": [0, 3, 3]}])
    with pytest.raises(SpecError, match=r"backbone\[0\]\.kernel_size"):
        load_spec(spec)


def test_resolved_spec_states_the_batch_norm_settings_it_defaulted() -> None:
    node = load_spec(_spec([{"type": "SepConv3d", "out_channels": 8}])).to_dict()["backbone"][0]
    assert (node["norm_eps"], node["norm_momentum"], node["padding"]) == (0.001, 0.001, None)


INCEPTION_BLOCK: dict[str, Any] = {
    "type": "Concat",
    "branches": [
        [{"type": "Unit3d", "out_channels": 4}],
        [{"type": "Unit3d", "out_channels": 3}, {"type": "SepConv3d", "out_channels": 5}],
        [{"type": "Unit3d", "out_channels": 2}, {"type": "SepConv3d", "out_channels": 3}],
        [
            {"type": "MaxPool3d", "kernel_size": 3, "stride": 1, "padding": 1},
            {"type": "Unit3d", "out_channels": 2},
        ],
    ],
}


def test_an_inception_block_in_a_spec_concatenates_its_branch_widths() -> None:
    _, shape = build_node(INCEPTION_BLOCK, clip(6, 4, 8, 8), ())
    assert shape == clip(4 + 5 + 3 + 2, 4, 8, 8)


def test_an_inception_block_in_a_spec_equals_torchvision_sep_inception_block() -> None:
    torch.manual_seed(0)
    theirs = SepInceptionBlock3D(3, 4, 3, 5, 2, 3, 2, norm_layer=INCEPTION_BN)
    ours = build_model(_spec([copy.deepcopy(INCEPTION_BLOCK)])).backbone.get_submodule("0")
    _randomise_norms(theirs)
    # The s3d key map's rules, on a block placed at index 0 of torchvision's `features`.
    mapped = convert_state_dict(
        "s3d", {f"features.0.{k}": v for k, v in theirs.state_dict().items()}
    )
    ours.load_state_dict(
        {k.removeprefix("backbone.0."): v for k, v in mapped.state_dict.items()}, strict=True
    )
    clip = torch.randn(2, 3, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(clip), theirs.eval()(clip), atol=1e-6, rtol=0)


def test_a_tiny_s3d_style_model_trains_one_step() -> None:
    torch.manual_seed(0)
    model = build_model(
        _spec(
            [
                {"type": "SepConv3d", "out_channels": 6, "kernel_size": 3, "stride": 2},
                copy.deepcopy(INCEPTION_BLOCK),
            ],
            {"type": "ConvClassificationHead", "num_classes": 5, "dropout": 0.2},
        )
    )
    logits = model(torch.randn(2, 3, 4, 8, 8))["action"]
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
