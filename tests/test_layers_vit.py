"""The vision-transformer vocabulary: what each layer holds (parameters, buffers, biases), and
the spec errors a wrong token type gets, at the node's path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

from video_interpreter import SpecError, build_model
from video_interpreter.layers import SampleType, build_node, clip, tokens
from video_interpreter.layers.vit import SinusoidalPositions, sinusoid_table

ON_GRID = tokens(2 * 2 * 2, 8, token_grid=(2, 2, 2))
WITH_CLASS = tokens(1 + 2 * 2 * 2, 8, prefix=1, token_grid=(2, 2, 2))


def spec(*backbone: dict[str, object], neck: str = "TokenPool") -> dict[str, object]:
    return {
        "spec_version": 1,
        "name": "vit",
        "version": "t",
        "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
        "backbone": [
            {"name": "embed", "type": "TubeletEmbedding", "dim": 8, "tubelet": [2, 8, 8],
             "position": "none"},
            {"type": "Flatten", "start_dim": 0, "end_dim": 2},
            *backbone,
        ],
        "neck": {"type": neck},
        "heads": {"action": {"type": "ClassificationHead", "num_classes": 3}},
    }  # fmt: skip


def test_sinusoidal_positions_are_a_buffer_outside_the_state_dict() -> None:
    model = build_model(spec({"name": "pos", "type": "SinusoidalPositions"}))
    pos = model.get_submodule("backbone.pos")
    assert isinstance(pos, SinusoidalPositions)
    assert not list(pos.parameters())
    assert not any(key.startswith("backbone.pos") for key in model.state_dict())
    torch.testing.assert_close(pos.table, sinusoid_table(8, 8)[None], rtol=0, atol=0)


def test_the_sinusoid_table_is_videomaes() -> None:
    torch.testing.assert_close(
        sinusoid_table(196, 96)[None],
        get_sinusoid_encoding_table(196, 96),  # type: ignore[no-untyped-call]  # untyped upstream
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize(
    ("bias", "with_bias"),
    [("all", {"query", "key", "value"}), ("qv", {"query", "value"}), ("none", set())],
)
def test_qkv_bias_sets_which_projections_have_a_bias(bias: str, with_bias: set[str]) -> None:
    block, _ = build_node({"type": "ViTBlock", "heads": 2, "qkv_bias": bias}, ON_GRID, ("b",))
    found = {
        name for name in ("query", "key", "value") if getattr(block.attn, name).bias is not None
    }
    assert found == with_bias


def test_in_divided_attention_the_class_token_reads_the_grid_tokens() -> None:
    torch.manual_seed(0)
    block, _ = build_node({"type": "ViTBlock", "heads": 2, "attention": "divided"}, WITH_CLASS, ())
    block.to_empty(device="cpu")
    for parameter in block.parameters():
        torch.nn.init.normal_(parameter)
    x = torch.randn(2, 9, 8)
    out = block(x)
    changed = x.clone()
    changed[:, 1:] += torch.randn(2, 8, 8)
    assert not torch.allclose(block(changed)[:, 0], out[:, 0])


@pytest.mark.parametrize(
    ("node", "given", "message"),
    [
        (
            {"type": "ViTBlock", "heads": 2, "attention": "divided"},
            ON_GRID,
            r"divided space-time attention needs 1 class token\(s\) in front, got 0",
        ),
        (
            {"type": "ViTBlock", "heads": 2, "rotary": True},
            WITH_CLASS,
            r"rotary positions needs 0 class token\(s\) in front, got 1",
        ),
        (
            {"type": "ViTBlock", "heads": 2, "rotary": True},
            tokens(8, 8),
            r"rotary positions needs tokens whose grid is known: make them with TubeletEmbedding",
        ),
        (
            {"type": "ViTBlock", "heads": 3},
            ON_GRID,
            r"width 8 is not divisible by heads=3",
        ),
        (
            {"type": "ViTBlock", "heads": 2, "fused_qkv": True, "qkv_bias": "qv"},
            ON_GRID,
            r"a fused qkv projection has a bias on all three or none",
        ),
        (
            {"type": "SpaceTimePositions"},
            ON_GRID,
            r"SpaceTimePositions needs 1 class token\(s\) in front, got 0",
        ),
        (
            {"type": "TubeletEmbedding", "dim": 8, "tubelet": [2, 4, 4], "per_frame": True},
            clip(3, 4, 8, 8),
            r"per_frame patches are one frame deep; got a tubelet of 2 frames",
        ),
    ],
)
def test_a_wrong_token_type_is_refused_at_the_node(
    node: dict[str, Any], given: SampleType, message: str
) -> None:
    with pytest.raises(SpecError, match=rf"here: {node['type']} cannot take .*{message}"):
        build_node(node, given, ("here",))


def test_converting_never_imports_transformers(tmp_path: Path) -> None:
    """The package reads transformers checkpoints as plain files: no import of the library."""
    from transformers import VivitConfig, VivitForVideoClassification

    config = VivitConfig(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
        image_size=16, tubelet_size=[2, 8, 8], num_frames=2,
    )  # fmt: skip
    config.num_labels = 2
    VivitForVideoClassification(config).save_pretrained(tmp_path / "hf")
    script = (
        "import sys\n"
        "from video_interpreter.checkpoint import import_transformers\n"
        f"import_transformers({str(tmp_path / 'hf')!r}, {str(tmp_path / 'out.pth')!r})\n"
        "assert 'transformers' not in sys.modules, 'transformers was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out.pth").is_file()
