"""MViT v2 layers: grid pooling, pooling attention with relative positions, blocks, the encoder
and its class token, checked for shapes, errors, and against torchvision's MViT configured the
same way (outputs and gradients)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.video.mvit import MSBlockConfig, MViT

from video_interpreter.errors import SpecError
from video_interpreter.layers import INITS, build_node, clip, tokens, vector
from video_interpreter.layers.mvit import (
    ClassToken,
    ClassTokenEmbedding,
    GridPool,
    MViTBlock,
    MViTEncoder,
    PoolingAttention,
    _relative_offsets,
    pooled_grid,
)
from video_interpreter.model import VideoInterpreter, build_model
from video_interpreter.spec import load_spec
from video_interpreter.zoo import convert_state_dict

TINY_STAGES: list[dict[str, Any]] = [
    {"depth": 1, "dim": 16, "heads": 1, "stride_kv": [1, 4, 4]},
    {"depth": 2, "dim": 32, "heads": 2, "stride_q": [1, 2, 2], "stride_kv": [1, 2, 2]},
    {"depth": 1, "dim": 64, "heads": 4, "stride_q": [1, 2, 2]},
]


def _triple(value: int | list[int]) -> list[int]:
    return [value] * 3 if isinstance(value, int) else list(value)


def _torchvision_blocks(stages: list[dict[str, Any]], in_dim: int) -> list[MSBlockConfig]:
    """torchvision's per-block table for our stages (the first block of a stage widens)."""
    blocks = []
    width = in_dim
    for stage in stages:
        for index in range(stage["depth"]):
            blocks.append(
                MSBlockConfig(
                    num_heads=stage["heads"],
                    input_channels=width,
                    output_channels=stage["dim"],
                    kernel_q=_triple(stage.get("kernel_q", 3)),
                    kernel_kv=_triple(stage.get("kernel_kv", 3)),
                    stride_q=_triple(stage.get("stride_q", 1)) if index == 0 else [1, 1, 1],
                    stride_kv=_triple(stage.get("stride_kv", 1)),
                )
            )
            width = stage["dim"]
    return blocks


def _tiny_pair(overrides: list[str], **torchvision_options: Any) -> tuple[VideoInterpreter, MViT]:
    """Our tiny_mvit and torchvision's MViT with the same settings and weights, in eval."""
    torch.manual_seed(0)
    ours = build_model("tiny_mvit", overrides=overrides).eval()
    spec = ours.spec
    options: dict[str, Any] = {
        "residual_pool": True,
        "residual_with_cls_embed": False,
        "rel_pos_embed": True,
        "proj_after_attn": True,
        **torchvision_options,
    }
    reference = MViT(
        spatial_size=(spec.input.height, spec.input.width),
        temporal_size=spec.input.frames,
        block_setting=_torchvision_blocks(spec["backbone"][1]["stages"], 16),
        num_classes=10,
        **options,
    ).eval()
    mapped = convert_state_dict("mvit_v2_s", reference.state_dict())
    ours.load_state_dict(mapped.state_dict, strict=True)
    return ours, reference


def test_pooled_grid_follows_convolution_arithmetic() -> None:
    assert pooled_grid((8, 56, 56), (3, 3, 3), (1, 2, 2)) == (8, 28, 28)
    assert pooled_grid((8, 56, 56), (3, 3, 3), (1, 8, 8)) == (8, 7, 7)
    assert pooled_grid((2, 7, 5), (3, 3, 3), (1, 2, 2)) == (2, 4, 3)


def test_relative_offsets_give_the_middle_row_to_the_same_position() -> None:
    offsets = _relative_offsets(4, 4)
    assert offsets.shape == (4, 4)
    assert offsets.diagonal().tolist() == [3, 3, 3, 3]  # row 3 of 7: offset zero
    assert offsets[0].tolist() == [3, 2, 1, 0]
    # Keys twice as coarse: key j sits at query position 2j.
    coarse = _relative_offsets(4, 2)
    assert coarse[2, 1] == coarse[0, 0] == 2  # the middle row of 2 * 4 - 1 = 7


def test_grid_pool_applies_one_kernel_to_every_head_and_passes_the_class_token() -> None:
    torch.manual_seed(0)
    pool = GridPool(head_dim=4, heads=3, grid=(2, 4, 4), kernel=3, stride=(1, 2, 2), norm_eps=1e-6)
    tokens = torch.randn(2, 1 + 2 * 4 * 4, 3, 4)
    with torch.no_grad():
        out = pool(tokens)
    assert out.shape == (2, 1 + 2 * 2 * 2, 3, 4)
    assert pool.out_grid == (2, 2, 2)
    # Reference: each head pooled separately as a (B, head_dim, T, H, W) volume.
    for head in range(3):
        volume = tokens[:, 1:, head].reshape(2, 2, 4, 4, 4).permute(0, 4, 1, 2, 3)
        expected = F.conv3d(volume, pool.pool.weight, None, (1, 2, 2), 1, 1, 4)
        expected = expected.flatten(2).transpose(1, 2)
        expected = torch.cat((tokens[:, :1, head], expected), dim=1)
        torch.testing.assert_close(out[:, :, head], F.layer_norm(expected, (4,), eps=1e-6))


@pytest.mark.parametrize(
    ("device", "channels_last"),
    [("cpu", True), ("meta", False)],  # meta stands for CUDA: any device but the CPU
)
def test_grid_pool_gives_the_depthwise_kernel_the_layout_its_device_runs_fastest(
    device: str, channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Channels-last on the CPU; channels-first elsewhere, where channels-last input sends a
    depthwise 3D convolution to cuDNN's grouped kernel (five times slower on an H100)."""
    seen: list[torch.Tensor] = []
    real_conv3d = F.conv3d

    def conv3d(volume: torch.Tensor, *args: Any) -> torch.Tensor:
        seen.append(volume)
        return real_conv3d(volume, *args)

    monkeypatch.setattr(F, "conv3d", conv3d)
    with torch.device(device):
        pool = GridPool(head_dim=4, heads=2, grid=(2, 4, 4), kernel=3, stride=2, norm_eps=1e-6)
        pool(torch.randn(1, 1 + 2 * 4 * 4, 2, 4))
    (volume,) = seen
    assert volume.is_contiguous(memory_format=torch.channels_last_3d) is channels_last
    assert volume.is_contiguous() is not channels_last


def test_pooling_attention_pools_queries_and_keys_and_sizes_its_tables() -> None:
    attention = PoolingAttention(
        16, 32, heads=2, grid=(2, 8, 8), stride_q=(1, 2, 2), stride_kv=(1, 4, 4)
    )
    assert attention.q_grid == (2, 4, 4)
    assert attention.kv_grid == (2, 2, 2)
    assert attention.rel_pos_h is not None
    assert attention.rel_pos_t is not None
    assert attention.rel_pos_h.shape == (2 * 4 - 1, 16)
    assert attention.rel_pos_t.shape == (2 * 2 - 1, 16)
    out = attention(torch.randn(3, 1 + 2 * 8 * 8, 16))
    assert out.shape == (3, 1 + 2 * 4 * 4, 32)


def test_pooling_attention_without_pooling_or_positions_has_no_such_modules() -> None:
    attention = PoolingAttention(
        8, 8, heads=2, grid=(1, 2, 2), kernel_q=1, kernel_kv=1, relative_position=False
    )
    assert (attention.pool_q, attention.pool_k, attention.pool_v) == (None, None, None)
    assert attention.rel_pos_h is None
    assert attention(torch.randn(1, 5, 8)).shape == (1, 5, 8)


def test_attention_width_not_divisible_by_heads_is_refused_with_valid_counts() -> None:
    with pytest.raises(ValueError, match=r"width 30 is not divisible by heads=4.*\[1, 2, 3, 5"):
        PoolingAttention(16, 30, heads=4, grid=(1, 2, 2))


def test_mvit_block_widens_and_pools_its_tokens_and_shortcut() -> None:
    block, shape = build_node(
        {"type": "MViTBlock", "dim": 32, "heads": 2, "grid": [2, 8, 8], "stride_q": [1, 2, 2]},
        tokens(1 + 2 * 8 * 8, 16, prefix=1),
        ("backbone", 0),
    )
    assert shape == tokens(1 + 2 * 4 * 4, 32, prefix=1, token_grid=(2, 4, 4))
    assert isinstance(block, MViTBlock)
    assert block.project is not None
    assert block.pool_skip
    assert block.out_grid == (2, 4, 4)


def test_mvit_block_whose_grid_does_not_fit_the_tokens_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"backbone\[2\].*the grid \[2, 4, 4\]: \(1 \+ 32, D\)"):
        build_node(
            {"type": "MViTBlock", "dim": 16, "heads": 1, "grid": [2, 4, 4]},
            tokens(1 + 2 * 8 * 8, 16, prefix=1),
            ("backbone", 2),
        )


def test_mvit_encoder_derives_every_block_grid_from_its_input_map() -> None:
    encoder, shape = build_node(
        {"type": "MViTEncoder", "stages": TINY_STAGES}, clip(16, 2, 8, 8), ("backbone", 1)
    )
    assert isinstance(encoder, MViTEncoder)
    assert shape == tokens(1 + 2 * 2 * 2, 64, prefix=1, token_grid=(2, 2, 2))
    assert [block.grid for block in encoder.blocks] == [
        (2, 8, 8),
        (2, 8, 8),
        (2, 4, 4),
        (2, 4, 4),
    ]
    assert encoder.out_grid == (2, 2, 2)
    rates = [block.drop_path for block in encoder.blocks]
    assert rates == [0.0, 0.0, 0.0, 0.0]


def test_mvit_encoder_spreads_drop_path_linearly_over_its_blocks() -> None:
    encoder = MViTEncoder(16, (2, 8, 8), TINY_STAGES, drop_path=0.3)
    rates = [block.drop_path for block in encoder.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_mvit_encoder_stage_with_indivisible_heads_is_a_spec_error() -> None:
    stages = [{"depth": 1, "dim": 30, "heads": 4}]
    with pytest.raises(SpecError, match=r"stages\[0\]: width 30 is not divisible by heads=4"):
        build_node({"type": "MViTEncoder", "stages": stages}, clip(16, 2, 8, 8), ("backbone", 1))


def test_mvit_encoder_on_tokens_instead_of_a_feature_map_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"MViTEncoder takes a clip or feature map \(C, T, H, W\)"):
        build_node({"type": "MViTEncoder", "stages": TINY_STAGES}, tokens(65, 16), ("backbone", 1))


def test_unknown_stage_key_is_reported_with_a_suggestion() -> None:
    spec = load_spec("tiny_mvit", check_shapes=False).to_dict()
    spec["backbone"][1]["stages"][0]["stride_qq"] = 2
    with pytest.raises(SpecError, match=r"stages\[0\]\.stride_qq: unknown key.*'stride_q'"):
        load_spec(spec)


def test_stage_without_heads_is_reported() -> None:
    spec = load_spec("tiny_mvit", check_shapes=False).to_dict()
    del spec["backbone"][1]["stages"][1]["heads"]
    with pytest.raises(SpecError, match=r"stages\[1\]: missing required key 'heads'"):
        load_spec(spec)


def test_class_token_embedding_prepends_the_token_and_adds_separable_positions() -> None:
    embedding = ClassTokenEmbedding(8, (2, 3, 3), absolute_position=True)
    assert embedding.spatial_pos is not None
    assert embedding.temporal_pos is not None
    assert embedding.class_pos is not None
    assert embedding.spatial_pos.shape == (9, 8)
    assert embedding.temporal_pos.shape == (2, 8)
    feature_map = torch.randn(2, 8, 2, 3, 3)
    with torch.no_grad():
        tokens = embedding(feature_map)
        assert tokens.shape == (2, 1 + 18, 8)
        class_token = embedding.class_token + embedding.class_pos
        torch.testing.assert_close(tokens[:, 0], class_token.expand(2, 8))
        # Token (t=1, h=2, w=0) is grid position 1 * 9 + 2 * 3 + 0.
        expected = feature_map[:, :, 1, 2, 0] + embedding.temporal_pos[1] + embedding.spatial_pos[6]
        torch.testing.assert_close(tokens[:, 1 + 15], expected)


def test_class_token_neck_takes_the_first_token() -> None:
    tokens = torch.randn(2, 5, 8)
    assert torch.equal(ClassToken()(tokens), tokens[:, 0])


def test_class_token_neck_on_pooled_features_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"ClassToken takes a token sequence \(L, D\); its input"):
        build_node({"type": "ClassToken"}, vector(64), ("neck",))


def test_tiny_mvit_builds_on_the_meta_device_with_the_expected_shapes() -> None:
    model = build_model("tiny_mvit", device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    out = model(torch.empty(2, 3, 4, 32, 32, device="meta"))
    assert out["action"].shape == (2, 10)


def test_mvit_init_draws_linears_and_tables_and_zeros_biases() -> None:
    assert "mvit" in INITS
    torch.manual_seed(0)
    model = build_model("tiny_mvit")
    encoder = model.backbone.encoder
    assert isinstance(encoder, MViTEncoder)
    first, second = encoder.blocks[0], encoder.blocks[1]
    assert isinstance(first, MViTBlock)
    assert isinstance(second, MViTBlock)
    qkv = second.attn.qkv
    assert torch.equal(qkv.bias, torch.zeros_like(qkv.bias))
    assert 0.015 < qkv.weight.std().item() < 0.025  # N(0, 0.02), as torchvision draws them
    table = first.attn.rel_pos_h
    assert table is not None
    assert 0.015 < table.std().item() < 0.025
    assert encoder.pos_encoding.class_token.abs().sum().item() > 0
    norm = model.backbone.norm
    assert isinstance(norm, torch.nn.LayerNorm)
    assert torch.equal(norm.weight, torch.ones(64))


@pytest.mark.parametrize(
    ("overrides", "options"),
    [
        pytest.param([], {}, id="mvit-v2"),
        # 32x48: a non-square grid, whose relative tables are resampled to the pooled grids.
        pytest.param(["input.width=48"], {}, id="non-square"),
        pytest.param(
            [
                "backbone.1.relative_position=false",
                "backbone.1.absolute_position=true",
                "backbone.1.residual_pool=false",
            ],
            {"rel_pos_embed": False, "residual_pool": False},
            id="absolute-positions",
        ),
        pytest.param(
            ["backbone.1.residual_pool_class_token=true"],
            {"residual_with_cls_embed": True},
            id="residual-with-class-token",
        ),
    ],
)
def test_tiny_mvit_equals_torchvision_mvit_of_the_same_configuration(
    overrides: list[str], options: dict[str, Any]
) -> None:
    ours, reference = _tiny_pair(overrides, **options)
    size = load_spec("tiny_mvit", overrides=overrides, check_shapes=False).input
    clip = torch.randn(2, 3, size.frames, size.height, size.width)
    with torch.inference_mode():
        torch.testing.assert_close(ours(clip)["action"], reference(clip), atol=1e-5, rtol=0)


def test_tiny_mvit_gradients_equal_torchvision_mvit() -> None:
    ours, reference = _tiny_pair([])
    clip = torch.randn(2, 3, 4, 32, 32)
    ours(clip)["action"].square().sum().backward()
    reference(clip).square().sum().backward()
    mapped = convert_state_dict("mvit_v2_s", dict(reference.named_parameters()))
    ours_params = dict(ours.named_parameters())
    assert set(mapped.state_dict) == set(ours_params)
    for key, theirs in mapped.state_dict.items():
        assert theirs.grad is not None
        torch.testing.assert_close(ours_params[key].grad, theirs.grad, atol=1e-5, rtol=1e-4)


def test_tiny_mvit_trains_with_stochastic_depth_and_is_deterministic_in_eval() -> None:
    torch.manual_seed(0)
    model = build_model("tiny_mvit", overrides=["backbone.1.drop_path=0.5"])
    clip = torch.randn(4, 3, 4, 32, 32)
    loss = model.train()(clip)["action"].logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(clip)["action"], model(clip)["action"], atol=0, rtol=0)
