"""Typed edges: a node that cannot take what the node before it gives is refused at its line,
naming both types, before any module exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from video_interpreter import SpecError, load_spec
from video_interpreter.cli import main
from video_interpreter.layers import Layout, SampleType, ShapeError, clip, grid, tokens, vector

WriteSpec = Callable[..., Path]

HEADER = """
spec_version: 1
name: probe
version: v1
input: {channels: 3, frames: 16, height: 112, width: 112}
"""
TUBELETS = "  - {type: TubeletEmbedding, dim: 192, tubelet: [2, 16, 16]}\n"


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["validate", str(path)]) == 2
    return capsys.readouterr().err


def test_an_mvit_encoder_after_tubelets_names_both_types_and_what_to_do(
    write_spec: WriteSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(
        HEADER
        + "backbone:\n"
        + TUBELETS
        + "  - {type: MViTEncoder, stages: [{depth: 1, dim: 192, heads: 2}]}\n"
        + "neck: {type: ClassToken}\n"
        + "heads: {action: {type: ClassificationHead, num_classes: 4}}\n"
    )
    err = _validate(path, capsys)
    assert (
        f"{path}:7:5: backbone[1]: MViTEncoder takes a clip or feature map (C, T, H, W); "
        "backbone[0] (TubeletEmbedding) gives a token grid (8, 7, 7, 192): "
        "move this layer before the one that made tokens" in err
    )


def test_a_clip_pool_after_tubelets_is_refused_instead_of_pooling_the_wrong_axes(
    write_spec: WriteSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(
        HEADER
        + "backbone:\n"
        + TUBELETS
        + "neck: {type: GlobalAvgPool3d}\n"
        + "heads: {action: {type: ClassificationHead, num_classes: 4}}\n"
    )
    err = _validate(path, capsys)
    assert (
        f"{path}:7:7: neck: GlobalAvgPool3d takes a clip or feature map (C, T, H, W); "
        "backbone[0] (TubeletEmbedding) gives a token grid (8, 7, 7, 192): "
        "move this layer before the one that made tokens, or use a layer that takes a token grid"
        in err
    )


def test_a_softmax_dimension_is_counted_within_one_sample(
    write_spec: WriteSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(
        HEADER
        + "backbone: [{type: Conv3d, out_channels: 4, kernel_size: 1}]\n"
        + "neck: {type: GlobalAvgPool3d}\n"
        + "heads:\n"
        + "  action:\n"
        + "    type: Sequential\n"
        + "    layers: [{type: Linear, out_features: 10}, {type: Softmax, dim: 2}]\n"
    )
    err = _validate(path, capsys)
    assert (
        "heads.action.layers[1]: Softmax cannot take a vector (10,): dim 2 is out of range" in err
    )
    assert "valid values are -1..0" in err

    fixed = write_spec(path.read_text().replace("dim: 2", "dim: -1"), "fixed.yaml")
    assert main(["validate", str(fixed)]) == 0


def test_every_shipped_spec_propagates_types_to_its_heads() -> None:
    for name in ["v1", "r3d_18", "s3d", "mvit_v2_s", "swin3d_t", "tiny_transformer"]:
        types = load_spec(name).types()
        assert types["input"].layout is Layout.CLIP
        assert all(types[key].layout is Layout.VECTOR for key in types if key.startswith("heads"))


def test_mvit_tokens_carry_their_class_token_and_grid() -> None:
    types = load_spec("mvit_v2_s").types()
    assert types["backbone"] == tokens(1 + 8 * 7 * 7, 768, prefix=1, token_grid=(8, 7, 7))
    assert str(types["backbone"]) == "a token sequence (393, 768) with 1 class token"


def test_a_residual_whose_branches_disagree_in_layout_is_refused() -> None:
    spec = {
        "spec_version": 1,
        "name": "probe",
        "version": "v1",
        "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
        "backbone": [
            {
                "type": "Residual",
                "body": [{"type": "TubeletEmbedding", "dim": 3, "tubelet": 1}],
            }
        ],
        "neck": {"type": "TokenPool"},
        "heads": {"action": {"type": "ClassificationHead", "num_classes": 2}},
    }
    with pytest.raises(SpecError, match=r"the body gives a token grid \(4, 16, 16, 3\)"):
        load_spec(spec)


def test_flatten_turns_a_grid_into_a_sequence_that_remembers_the_grid() -> None:
    spec = load_spec(
        {
            "spec_version": 1,
            "name": "probe",
            "version": "v1",
            "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
            "backbone": [
                {"type": "TubeletEmbedding", "dim": 8, "tubelet": [2, 4, 4]},
                {"type": "Flatten", "start_dim": 0, "end_dim": 2},
            ],
            "neck": {"type": "TokenPool"},
            "heads": {"action": {"type": "ClassificationHead", "num_classes": 2}},
        }
    )
    assert spec.types()["backbone"] == tokens(2 * 4 * 4, 8, token_grid=(2, 4, 4))


def test_a_sample_type_refuses_sizes_that_do_not_fit_its_layout() -> None:
    with pytest.raises(ShapeError, match=r"a token grid \(T, H, W, D\) has 4 sizes, got 2"):
        SampleType(Layout.GRID, (3, 4))
    with pytest.raises(ShapeError, match="do not fit 1 \\+ the grid \\[2, 2, 2\\]"):
        tokens(8, 4, prefix=1, token_grid=(2, 2, 2))
    assert str(clip(3, 4, 8, 8)) == "a clip (3, 4, 8, 8)"
    assert str(grid(2, 4, 4, 16)) == "a token grid (2, 4, 4, 16)"
    assert str(vector(10)) == "a vector (10,)"
