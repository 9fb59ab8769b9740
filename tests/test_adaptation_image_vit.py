"""An image ViT (transformers' ViTModel / ViTForImageClassification, or a timm state dict) into
video transformer specs: key maps under zoo/key_maps/{transformers_image,timm_image}/, the patch
projection inflated, the image's position table brought onto the clip's grid by adapt=True."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file
from torch import nn
from transformers import ViTConfig, ViTForImageClassification, ViTModel

from video_interpreter.checkpoint import Adapt, import_state_dict, load_model, load_weights
from video_interpreter.cli import main
from video_interpreter.errors import CheckpointError
from video_interpreter.model import build_meta
from video_interpreter.zoo import convert_state_dict, export_state_dict, key_map

from .test_adaptation_vit import small

CLASSES = 5


def _config(**changes: Any) -> ViTConfig:
    """A small ViT matching ``small()``'s width, depth, heads and 8x8 patches of 32x32 frames."""
    sizes: dict[str, Any] = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": 32,
        "patch_size": 8,
        "num_labels": CLASSES,
        "layer_norm_eps": 1e-6,  # the zoo specs' (ViT's default is 1e-12)
    }
    return ViTConfig(**{**sizes, **changes})


def _classifier(seed: int = 0, **changes: Any) -> ViTForImageClassification:
    torch.manual_seed(seed)
    vit = ViTForImageClassification(_config(**changes))
    nn.Module.train(vit, False)
    with torch.no_grad():
        classifier = vit.get_submodule("classifier")
        assert isinstance(classifier, nn.Linear)
        classifier.weight.mul_(40.0)  # logits of a trained network's order, not 0.2
    return vit


def _timm_layout(vit: ViTForImageClassification) -> dict[str, torch.Tensor]:
    """The same weights under timm's VisionTransformer names (qkv fused, as timm stores it)."""
    s = {k.removeprefix("vit."): v for k, v in vit.state_dict().items()}
    out = {
        "cls_token": s["embeddings.cls_token"],
        "pos_embed": s["embeddings.position_embeddings"],
        "patch_embed.proj.weight": s["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": s["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": s["layernorm.weight"],
        "norm.bias": s["layernorm.bias"],
        "head.weight": s["classifier.weight"],
        "head.bias": s["classifier.bias"],
    }
    for i in range(vit.config.num_hidden_layers):
        at = f"layers.{i}"
        for w in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{w}"] = torch.cat(
                [s[f"{at}.attention.{p}_proj.{w}"] for p in "qkv"]
            )
            for ours, theirs in (
                ("attn.proj", "attention.o_proj"),
                ("norm1", "layernorm_before"),
                ("norm2", "layernorm_after"),
                ("mlp.fc1", "mlp.fc1"),
                ("mlp.fc2", "mlp.fc2"),
            ):
                out[f"blocks.{i}.{ours}.{w}"] = s[f"{at}.{theirs}.{w}"]
    return out


def _boring(frame: torch.Tensor, frames: int) -> torch.Tensor:  # (1, 3, H, W) -> (1, 3, T, H, W)
    return frame.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


def _saved_names(vit: ViTForImageClassification, tmp_path: Path) -> dict[str, torch.Tensor]:
    """The names save_pretrained writes (and the published checkpoints use)."""
    vit.save_pretrained(tmp_path / "vit")
    return load_file(str(tmp_path / "vit" / "model.safetensors"))


@pytest.mark.parametrize("layout", ["transformers_live", "transformers_file", "timm"])
def test_timesformer_from_an_image_vit_gives_its_logits_on_a_boring_video(
    layout: str, tmp_path: Path
) -> None:
    vit = _classifier()
    if layout == "timm":
        library, state = "timm_image", _timm_layout(vit)
    elif layout == "transformers_file":
        library, state = "transformers_image", _saved_names(vit, tmp_path)
        assert any(".encoder.layer.0.attention.attention.query." in k for k in state)
    else:
        library, state = "transformers_image", vit.state_dict()
    mapped = convert_state_dict("timesformer_base", state, library)
    model = build_meta(small("timesformer_base", frames=4))
    space = {"backbone.pos.space": (4, 4)}
    report = load_weights(model, mapped.state_dict, adapt=Adapt(source_grids=space))
    assert [str(a) for a in report.adapted] == [
        "backbone.pos.time (1, 1, 32) -> (1, 4, 32): position table resampled, grid (1,) -> "
        "(4,), nearest"
    ]
    state_now = model.state_dict()
    assert not state_now["backbone.blocks.1.time_proj.weight"].any()
    torch.testing.assert_close(
        state_now["backbone.blocks.1.attn_time.qkv.weight"],
        state_now["backbone.blocks.1.attn.qkv.weight"],
    )
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = vit(pixel_values=frame).logits
        got = model.eval()(_boring(frame, 4))["action"]
    assert expected.abs().max() > 3.0
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_vivit_from_an_image_vit_is_exact_on_one_tubelet_and_reported_on_more(
    tmp_path: Path,
) -> None:
    vit = _classifier(seed=1, hidden_act="gelu_pytorch_tanh")  # ViViT's activation
    mapped = convert_state_dict("vivit_b", vit.state_dict(), "transformers_image")
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = vit(pixel_values=frame).logits
    grids = Adapt(source_grids={"backbone.pos.table": (4, 4)})
    outputs = {}
    for frames in (2, 8):  # one tubelet of 2 frames, then four
        model = build_meta(small("vivit_b", frames=frames))
        report = load_weights(model, dict(mapped.state_dict), adapt=grids)
        rules = {a.key: str(a) for a in report.adapted}
        tubelets = frames // 2
        assert rules == {
            "backbone.embed.proj.weight": "backbone.embed.proj.weight (32, 3, 8, 8) -> "
            "(32, 3, 2, 8, 8): inflated 2D -> 3D, centre frame 1 of 2",
            "backbone.pos.table": f"backbone.pos.table (1, 17, 32) -> (1, {1 + tubelets * 16}, "
            f"32): position table resampled, grid (4, 4) -> ({tubelets}, 4, 4), plane bicubic, "
            f"repeated over {tubelets} frames, 1 prefix token kept",
        }
        with torch.no_grad():
            outputs[frames] = model.eval()(_boring(frame, frames))["action"]
    torch.testing.assert_close(outputs[2], expected, atol=1e-5, rtol=0)
    # tubelets neither overlap nor pad: averaging over two identical frames is exact too
    model = build_meta(small("vivit_b", frames=2))
    load_weights(
        model,
        dict(mapped.state_dict),
        adapt=Adapt(inflation="average", source_grids=dict(grids.source_grids)),
    )
    with torch.no_grad():
        averaged = model.eval()(_boring(frame, 2))["action"]
    torch.testing.assert_close(averaged, expected, atol=1e-5, rtol=0)
    # With several tubelets each patch is a key T times and the class token once: joint
    # attention weighs them differently from the image network.
    assert (outputs[8] - expected).abs().max() > 1e-3


def test_videomae_from_an_image_vit_reports_what_has_no_counterpart(tmp_path: Path) -> None:
    torch.manual_seed(2)
    vit = ViTModel(_config())  # with its pooler
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    saved, report = import_state_dict(
        "videomae_base",
        tmp_path / "vit.pth",
        tmp_path / "videomae.safetensors",
        library="transformers_image",
        spec=small("videomae_base", frames=4),
        adapt=Adapt(inflation="average"),
    )
    assert saved.path.is_file()
    assert report.reinitialized == ("heads.action.fc.weight", "heads.action.fc.bias")
    text = str(report)
    assert (
        "backbone.embed.proj.weight (32, 3, 8, 8) -> (32, 3, 2, 8, 8): inflated 2D -> 3D, "
        "average over 2 frames" in text
    )
    assert "'embeddings.cls_token' has no counterpart" in text
    assert "'attention.key.bias' has no counterpart" in text
    assert {
        "embeddings.cls_token",
        "embeddings.position_embeddings",
        "pooler.dense.weight",
        "layers.0.attention.k_proj.bias",
    } <= set(report.dropped)


def test_the_timm_videomae_map_cuts_qkv_and_drops_the_key_bias() -> None:
    vit = _classifier(seed=3)
    state = _timm_layout(vit)
    mapped = convert_state_dict("videomae_base", state, "timm_image")
    qkv = state["blocks.0.attn.qkv.weight"]
    torch.testing.assert_close(mapped.state_dict["backbone.blocks.0.attn.key.weight"], qkv[32:64])
    assert "backbone.blocks.0.attn.key.bias" not in mapped.state_dict
    model = build_meta(small("videomae_base", frames=4))
    report = load_weights(model, mapped.state_dict, adapt=True)
    assert report.ok
    assert [a.rule for a in report.adapted] == ["inflated 2D -> 3D, centre frame 1 of 2"]


def test_an_image_map_does_not_export_back() -> None:
    model = build_meta(small("timesformer_base", frames=4))
    with pytest.raises(CheckpointError, match="copy starts a model tensor from a source one"):
        export_state_dict(model.state_dict(), key_map("timesformer_base", "timm_image"))


def test_dropping_a_key_bias_changes_no_attention_output() -> None:
    # VideoMAE's keys have no bias; the image's key bias adds q . b to every score of a query.
    mapped = convert_state_dict("vivit_b", _classifier(seed=4).state_dict(), "transformers_image")
    state = dict(mapped.state_dict)
    for key in [k for k in state if k.endswith("attn.key.bias")]:
        state[key] = torch.randn_like(state[key])  # the init leaves biases at zero
    grids = Adapt(source_grids={"backbone.pos.table": (4, 4)})
    with_bias = build_meta(small("vivit_b", frames=4))
    load_weights(with_bias, state, adapt=grids)
    without = build_meta(small("vivit_b", frames=4, changes={"backbone.4.layer.qkv_bias": "qv"}))
    no_key_bias = {k: v for k, v in state.items() if not k.endswith("attn.key.bias")}
    load_weights(without, no_key_bias, adapt=grids)
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            without.eval()(clip)["action"], with_bias.eval()(clip)["action"], atol=1e-5, rtol=0
        )


def test_the_convert_command_imports_a_timm_vit_into_timesformer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vit = _classifier(seed=5)
    torch.save(_timm_layout(vit), tmp_path / "vit.pth")
    spec = tmp_path / "timesformer.yaml"
    spec.write_text(yaml.safe_dump(small("timesformer_base", frames=4).to_dict()), "utf-8")
    out = tmp_path / "timesformer.safetensors"
    command = ["convert", "--from", "timm_image", "timesformer_base", str(tmp_path / "vit.pth")]
    command += [str(out), "--spec", str(spec), "--adapt"]
    with pytest.raises(SystemExit):
        main([*command, "--source-grid", "backbone.pos.space=4by4"])
    assert "give KEY=GRID with positive sizes joined by x" in capsys.readouterr().err
    assert main(command) != 0  # the space table's grid is not said
    assert "backbone.pos.space" in capsys.readouterr().err
    assert main([*command, "--source-grid", "backbone.pos.space=4x4"]) == 0
    assert "grid (1,) -> (4,), nearest" in capsys.readouterr().out
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        got = load_model(out).eval()(_boring(frame, 4))["action"]
        torch.testing.assert_close(got, vit(pixel_values=frame).logits, atol=1e-5, rtol=0)
