"""Video Swin layers: windowed attention (padding, shifts, masks, position bias), blocks, stages,
patch merging and embedding, checked against torchvision's modules with the same weights."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch import nn
from torchvision.models.swin_transformer import PatchMerging
from torchvision.models.video.swin_transformer import (
    PatchEmbed3d,
    ShiftedWindowAttention3d,
    _compute_attention_mask_3d,
)

from video_interpreter.errors import SpecError
from video_interpreter.layers import SampleType, build_node, grid, tokens
from video_interpreter.layers.swin import (
    StochasticDepth,
    SwinBlock3d,
    SwinEncoder3d,
    SwinPatchEmbed3d,
    SwinPatchMerging3d,
    SwinStage3d,
    WindowAttention3d,
    relative_position_index,
    shifted_window_mask,
)
from video_interpreter.model import build_model
from video_interpreter.spec import load_spec


def _reference_attention(ours: WindowAttention3d, dim: int) -> ShiftedWindowAttention3d:
    reference = ShiftedWindowAttention3d(
        dim, list(ours.window_size), list(ours.shift_size), ours.heads
    )
    reference.load_state_dict(ours.state_dict(), strict=True)
    return reference.eval()


def test_relative_position_index_gives_each_offset_its_table_row() -> None:
    window = (2, 3, 4)
    positions = list(itertools.product(*(range(n) for n in window)))
    offsets = list(itertools.product(*(range(-(n - 1), n) for n in window)))  # table order
    row_of = {offset: row for row, offset in enumerate(offsets)}
    expected = torch.tensor(
        [
            [row_of[tuple(a - b for a, b in zip(i, j, strict=True))] for j in positions]
            for i in positions
        ]
    )
    assert torch.equal(relative_position_index(window), expected)


@pytest.mark.parametrize(
    ("grid", "window", "shift"),
    [
        ((2, 4, 4), (2, 2, 2), (1, 1, 1)),
        ((4, 6, 3), (2, 3, 3), (0, 1, 1)),
        ((1, 4, 4), (1, 2, 2), (0, 1, 0)),
    ],
)
def test_shift_mask_equals_torchvision_mask(
    grid: tuple[int, int, int], window: tuple[int, int, int], shift: tuple[int, int, int]
) -> None:
    x = torch.empty(0)
    expected = _compute_attention_mask_3d(x, grid, window, shift)
    ours = shifted_window_mask(grid, window, shift, dtype=torch.float32, device=x.device)
    assert torch.equal(ours, expected)


def test_shift_mask_blocks_only_tokens_the_wraparound_brought_together() -> None:
    # One frame, 4x4 grid, 2x2 windows shifted by 1 along H and W: the first window holds
    # neighbours only; the last one holds one token from each of four corners of the grid.
    mask = shifted_window_mask((1, 4, 4), (1, 2, 2), (0, 1, 1), dtype=torch.float32, device="cpu")
    assert mask.shape == (4, 4, 4)
    assert torch.equal(mask[0], torch.zeros(4, 4))
    assert torch.equal(mask[3] == 0, torch.eye(4, dtype=torch.bool))
    assert set(torch.unique(mask).tolist()) == {-100.0, 0.0}


@pytest.mark.parametrize(
    ("grid", "window", "shift"),
    [
        ((4, 6, 6), (2, 3, 3), (1, 1, 1)),  # whole windows, shifted
        ((3, 5, 7), (2, 3, 3), (1, 1, 1)),  # padded on every axis, shifted
        ((3, 5, 7), (2, 3, 3), (0, 0, 0)),  # padded, not shifted
        ((2, 2, 5), (4, 3, 3), (2, 1, 1)),  # window larger than T and H: those axes unshifted
    ],
)
def test_window_attention_equals_torchvision_with_padding_and_shifts(
    grid: tuple[int, int, int], window: tuple[int, int, int], shift: tuple[int, int, int]
) -> None:
    torch.manual_seed(0)
    ours = WindowAttention3d(8, 2, window, shift).eval()
    reference = _reference_attention(ours, 8)
    x = torch.randn(2, *grid, 8)
    with torch.no_grad():  # the in-place softmax path; the gradient test covers the other
        out = ours(x)
        assert out.shape == x.shape
        torch.testing.assert_close(out, reference(x), atol=1e-6, rtol=0)


def test_window_attention_ignores_a_shift_on_axes_that_fit_in_one_window() -> None:
    torch.manual_seed(0)
    shifted = WindowAttention3d(8, 2, (8, 7, 7), (4, 3, 3)).eval()
    plain = WindowAttention3d(8, 2, (8, 7, 7), 0).eval()
    plain.load_state_dict(shifted.state_dict())
    x = torch.randn(1, 2, 4, 4, 8)  # smaller than the window on every axis
    torch.testing.assert_close(shifted(x), plain(x), atol=0, rtol=0)


def test_window_attention_gradients_equal_torchvision() -> None:
    # The bias and mask are added in place; autograd must still see the same function.
    torch.manual_seed(0)
    ours = WindowAttention3d(8, 2, (2, 3, 3), (1, 1, 1))
    reference = _reference_attention(ours, 8).train()
    x = torch.randn(2, 3, 5, 6, 8)
    weights = torch.randn(2, 3, 5, 6, 8)
    (ours(x) * weights).sum().backward()
    (reference(x) * weights).sum().backward()
    for name, param in ours.named_parameters():
        expected = reference.get_parameter(name).grad
        assert param.grad is not None
        assert expected is not None
        assert param.grad.abs().sum() > 0
        torch.testing.assert_close(param.grad, expected, atol=1e-5, rtol=1e-5)


def test_window_attention_runs_on_meta_tensors() -> None:
    with torch.device("meta"):
        attention = WindowAttention3d(16, 4, (2, 3, 3), (1, 1, 1))
        out = attention(torch.empty(2, 3, 5, 7, 16))
    assert out.is_meta
    assert out.shape == (2, 3, 5, 7, 16)


def test_reset_parameters_recomputes_the_index_after_to_empty() -> None:
    with torch.device("meta"):
        attention = WindowAttention3d(8, 2, (2, 3, 3))
    attention.to_empty(device="cpu")
    attention.reset_parameters()
    assert torch.equal(attention.relative_position_index, relative_position_index((2, 3, 3)))
    assert attention.relative_position_bias_table.abs().max() > 0


def test_index_and_table_are_in_the_state_dict_under_torchvision_names() -> None:
    keys = set(WindowAttention3d(8, 2, 2).state_dict())
    assert {"relative_position_bias_table", "relative_position_index"} <= keys
    assert {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"} <= keys


def test_stochastic_depth_is_identity_in_eval_and_drops_whole_samples_in_training() -> None:
    layer = StochasticDepth(0.5)
    x = torch.ones(64, 3, 4)
    assert layer.eval()(x) is x
    torch.manual_seed(0)
    out = layer.train()(x)
    per_sample = out.flatten(1)
    assert set(torch.unique(per_sample).tolist()) == {0.0, 2.0}  # dropped, or kept and rescaled
    assert torch.equal(per_sample.min(dim=1).values, per_sample.max(dim=1).values)


def test_stochastic_depth_refuses_a_probability_outside_0_1() -> None:
    with pytest.raises(ValueError, match=r"must be in \[0, 1\], got 1.5"):
        StochasticDepth(1.5)


def test_swin_block_keeps_the_grid_shape_and_names_mlp_weights_like_torchvision() -> None:
    block = SwinBlock3d(16, 2, (2, 3, 3), (1, 1, 1))
    assert block(torch.randn(1, 2, 5, 5, 16)).shape == (1, 2, 5, 5, 16)
    assert {"mlp.0.weight", "mlp.3.weight", "norm1.weight", "norm2.bias"} <= set(block.state_dict())


def test_stage_shifts_every_other_block_by_half_a_window() -> None:
    stage = SwinStage3d(16, 4, 2, (8, 7, 7))
    shifts = [block.attn.shift_size for block in stage if isinstance(block, SwinBlock3d)]
    assert shifts == [(0, 0, 0), (4, 3, 3), (0, 0, 0), (4, 3, 3)]


def test_stage_refuses_a_rate_list_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match=r"lists 3 rates for depth=2 blocks"):
        SwinStage3d(16, 2, 2, 2, stochastic_depth=[0.0, 0.1, 0.2])


def test_encoder_doubles_width_between_stages_and_raises_drop_rate_linearly() -> None:
    encoder = SwinEncoder3d(
        8, depths=[2, 1, 2], heads=[1, 2, 4], window_size=2, stochastic_depth=0.2
    )
    assert [type(m).__name__ for m in encoder] == [
        "SwinStage3d",
        "SwinPatchMerging3d",
        "SwinStage3d",
        "SwinPatchMerging3d",
        "SwinStage3d",
    ]
    rates = [m.p for m in encoder.modules() if isinstance(m, StochasticDepth)]
    assert rates == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    assert encoder(torch.randn(1, 2, 8, 8, 8)).shape == (1, 2, 2, 2, 32)


def test_patch_merging_equals_torchvision_and_pads_odd_sizes() -> None:
    torch.manual_seed(0)
    ours = SwinPatchMerging3d(8)
    reference = PatchMerging(8, nn.LayerNorm)
    reference.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 3, 5, 7, 8)
    out = ours(x)
    assert out.shape == (2, 3, 3, 4, 16)
    torch.testing.assert_close(out, reference(x), atol=1e-6, rtol=0)


def test_patch_embedding_equals_torchvision_and_pads_to_whole_patches() -> None:
    torch.manual_seed(0)
    ours = SwinPatchEmbed3d(3, 16, (2, 4, 4))
    reference = PatchEmbed3d([2, 4, 4], 3, 16, nn.LayerNorm)
    reference.load_state_dict(ours.state_dict(), strict=True)
    clip = torch.randn(1, 3, 3, 9, 10)
    out = ours(clip)
    assert out.shape == (1, 2, 3, 3, 16)  # (T, H, W, D), each axis rounded up
    torch.testing.assert_close(out, reference(clip), atol=1e-6, rtol=0)


def test_patch_embedding_without_norm_has_no_norm_weights() -> None:
    keys = set(SwinPatchEmbed3d(3, 16, 2, norm=False).state_dict())
    assert keys == {"proj.weight", "proj.bias"}


def _node_error(node: dict[str, Any], in_type: SampleType) -> str:
    with pytest.raises(SpecError) as info:
        build_node(node, in_type, ("backbone", 1))
    return str(info.value)


def test_heads_that_do_not_divide_the_width_are_refused_with_valid_counts() -> None:
    message = _node_error({"type": "SwinBlock3d", "heads": 5}, grid(2, 4, 4, 16))
    assert "backbone[1]" in message
    assert "width 16 is not divisible by heads=5" in message
    assert "[1, 2, 4, 8, 16]" in message


def test_encoder_checks_each_stage_width_against_its_heads() -> None:
    node = {"type": "SwinEncoder3d", "depths": [1, 1], "heads": [2, 3], "window_size": 2}
    assert "width 32 is not divisible by heads=3" in _node_error(node, grid(2, 4, 4, 16))


def test_encoder_refuses_depths_and_heads_of_different_lengths() -> None:
    node = {"type": "SwinEncoder3d", "depths": [2, 2], "heads": [2]}
    assert "must list one value per stage" in _node_error(node, grid(2, 4, 4, 16))


def test_a_shift_as_large_as_the_window_is_refused() -> None:
    node = {"type": "WindowAttention3d", "heads": 2, "window_size": [2, 3, 3], "shift_size": 3}
    assert "shift_size [3, 3, 3] must be smaller than window_size [2, 3, 3]" in _node_error(
        node, grid(2, 4, 4, 16)
    )


def test_patch_merging_refuses_an_input_that_is_not_a_token_grid() -> None:
    message = _node_error({"type": "SwinPatchMerging3d"}, tokens(12, 8))
    assert "SwinPatchMerging3d takes a token grid (T, H, W, D); its input gives" in message


def _tiny_spec(**encoder: Any) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "name": "swin_case",
        "version": "v1",
        "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
        "backbone": [
            {"type": "SwinPatchEmbed3d", "dim": 8, "patch_size": [2, 4, 4]},
            {"type": "SwinEncoder3d", "depths": [1], "heads": [2], **encoder},
        ],
        "neck": {"type": "TokenPool"},
        "heads": {"action": {"type": "ClassificationHead", "num_classes": 3}},
    }


@pytest.mark.parametrize(
    ("encoder", "match"),
    [
        ({"window_size": [2, 3]}, r"backbone\[1\]\.window_size: \[2, 3\]: .* too short"),
        ({"window_size": 0}, r"backbone\[1\]\.window_size: 0: 0 is less than the minimum of 1"),
        ({"stochastic_depth": 1.5}, r"backbone\[1\]\.stochastic_depth: .* maximum of 1"),
        ({"depth": [1]}, r"unknown key 'depth'.*did you mean 'depths'"),
    ],
)
def test_bad_encoder_parameters_fail_validation_at_their_path(
    encoder: dict[str, Any], match: str
) -> None:
    with pytest.raises(SpecError, match=match):
        load_spec(_tiny_spec(**encoder))


def test_tiny_swin_spec_builds_trains_and_initialises_like_torchvision() -> None:
    torch.manual_seed(0)
    model = build_model("tiny_swin")
    clip = torch.randn(2, 3, 4, 32, 32)
    out = model(clip)["action"]
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert all(m.bias is None or not m.bias.any() for m in linears)
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert 0.018 < weights.std().item() < 0.022  # trunc_normal(std=0.02)
    for attention in model.modules():
        if isinstance(attention, WindowAttention3d):
            window = attention.window_size
            assert torch.equal(attention.relative_position_index, relative_position_index(window))
