"""adapt=True on the vision-transformer layers: joint tables with a class token (ViViT), separate
space and time tables (TimeSformer), separable tables (MViT v1), fixed sine-cosine tables
(VideoMAE) and per-frame patch projections, each compared with a reference F.interpolate."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from video_interpreter.checkpoint import load_model, load_weights, save_model
from video_interpreter.layers.vit import sinusoid_table
from video_interpreter.model import build_model
from video_interpreter.spec import load_spec

from .test_adaptation import _assert_every_change_reported

_BLOCKS = {"videomae_base": 3, "timesformer_base": 4, "vivit_b": 4}


def small(
    name: str,
    frames: int = 4,
    height: int = 32,
    width: int = 32,
    changes: Mapping[str, object] | None = None,
) -> Any:
    """A zoo transformer spec at width 32, 2 blocks, 8x8 patches, 5 classes."""
    blocks = _BLOCKS[name]
    tubelet = [1, 8, 8] if name == "timesformer_base" else [2, 8, 8]
    overrides = [
        f"input.frames={frames}",
        f"input.height={height}",
        f"input.width={width}",
        "backbone.0.dim=32",
        f"backbone.0.tubelet={tubelet}",
        f"backbone.{blocks}.times=2",
        f"backbone.{blocks}.layer.heads=2",
        f"backbone.{blocks}.layer.mlp_dim=64",
        "heads.action.num_classes=5",
        *(f"{key}={value}" for key, value in (changes or {}).items()),
    ]
    return load_spec(f"configs/{name}.yaml", overrides=overrides)


def _saved(tmp_path: Path, spec: Any, name: str = "source") -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    path = save_model(build_model(spec), tmp_path / f"{name}.safetensors").path
    return path, dict(load_model(path).state_dict())


def test_a_joint_table_with_a_class_token_resamples_its_rectangular_grid(tmp_path: Path) -> None:
    path, source = _saved(tmp_path, small("vivit_b", frames=4, height=32, width=16))
    model = build_model(small("vivit_b", frames=8, height=16, width=32))
    report = load_weights(model, path, adapt=True)
    table = source["backbone.pos.table"]  # (1, 1 + 2*4*2, 32)
    grid = table[:, 1:].reshape(1, 2, 4, 2, 32).permute(0, 4, 1, 2, 3)
    reference = F.interpolate(grid, size=(4, 2, 4), mode="trilinear", align_corners=False)
    got = model.state_dict()["backbone.pos.table"]
    torch.testing.assert_close(got[:, 1:], reference.permute(0, 2, 3, 4, 1).reshape(1, 32, 32))
    torch.testing.assert_close(got[:, :1], table[:, :1])  # the class token's row is kept
    (line,) = report.adapted
    assert (line.checkpoint, line.model) == ((1, 17, 32), (1, 33, 32))
    assert line.rule == (
        "position table resampled, grid (2, 4, 2) -> (4, 2, 4), trilinear, 1 prefix token kept"
    )
    _assert_every_change_reported(source, model, report)
    assert model(torch.randn(1, 3, 8, 16, 32))["action"].shape == (1, 5)


def test_timesformer_tables_resample_as_its_reference_does(tmp_path: Path) -> None:
    # transformers' TimesformerEmbeddings resizes both tables with F.interpolate(mode="nearest").
    path, source = _saved(tmp_path, small("timesformer_base", frames=8, height=32, width=16))
    model = build_model(small("timesformer_base", frames=16, height=16, width=32))
    report = load_weights(model, path, adapt=True)
    state = model.state_dict()
    time = F.interpolate(source["backbone.pos.time"].transpose(1, 2), size=16, mode="nearest")
    torch.testing.assert_close(state["backbone.pos.time"], time.transpose(1, 2))
    space = source["backbone.pos.space"]  # (1, 1 + 4*2, 32)
    plane = space[0, 1:].t().reshape(1, 32, 4, 2)
    reference = F.interpolate(plane, size=(2, 4), mode="nearest").reshape(32, 8).t()
    torch.testing.assert_close(state["backbone.pos.space"][0, 1:], reference)
    torch.testing.assert_close(state["backbone.pos.space"][:, :1], space[:, :1])
    rules = {a.key: a.rule for a in report.adapted}
    assert rules == {
        "backbone.pos.time": "position table resampled, grid (8,) -> (16,), nearest",
        "backbone.pos.space": (
            "position table resampled, grid (4, 2) -> (2, 4), nearest, 1 prefix token kept"
        ),
    }
    _assert_every_change_reported(source, model, report)


def test_8_to_16_to_8_frames_is_reported_each_way(tmp_path: Path) -> None:
    eight, _ = _saved(tmp_path, small("timesformer_base", frames=8), "eight")
    sixteen = small("timesformer_base", frames=16)
    up, report_up = load_model(eight, spec=sixteen, adapt=True, return_report=True)
    path = save_model(up, tmp_path / "sixteen.safetensors").path
    back, report_down = load_model(
        path, spec=small("timesformer_base", frames=8), adapt=True, return_report=True
    )
    assert [str(a) for a in report_up.adapted] == [
        "backbone.pos.time (1, 8, 32) -> (1, 16, 32): position table resampled, grid (8,) -> "
        "(16,), nearest"
    ]
    assert [str(a) for a in report_down.adapted] == [
        "backbone.pos.time (1, 16, 32) -> (1, 8, 32): position table resampled, grid (16,) -> "
        "(8,), nearest"
    ]
    # nearest doubles each row and takes every other one back: this round trip is exact
    torch.testing.assert_close(
        back.state_dict()["backbone.pos.time"], load_model(eight).state_dict()["backbone.pos.time"]
    )


def _tiny_mvit_v1(frames: int, height: int) -> dict[str, Any]:
    document = load_spec("configs/mvit_base_16x4.yaml").to_dict()
    document["input"].update(frames=frames, height=height, width=32)
    document["backbone"][0]["out_channels"] = 8
    document["backbone"][1].update(
        stride_kv=[1, 2, 2],
        stages=[
            {"depth": 1, "dim": 8, "heads": 1},
            {"depth": 1, "dim": 16, "heads": 2, "stride_q": [1, 2, 2]},
        ],
    )
    document["heads"]["action"]["layers"][-1]["out_features"] = 5
    return document


def test_mvit_v1_separable_tables_resample_time_and_a_rectangular_plane(tmp_path: Path) -> None:
    path, source = _saved(tmp_path, _tiny_mvit_v1(frames=8, height=64))
    model = build_model(_tiny_mvit_v1(frames=16, height=32))
    report = load_weights(model, path, adapt=True)
    state = model.state_dict()
    prefix = "backbone.encoder.cls_positional_encoding"
    time = source[f"{prefix}.pos_embed_temporal"]  # (1, 4, 8)
    reference = F.interpolate(time.transpose(1, 2), size=8, mode="linear", align_corners=False)
    torch.testing.assert_close(state[f"{prefix}.pos_embed_temporal"], reference.transpose(1, 2))
    plane = source[f"{prefix}.pos_embed_spatial"][0].t().reshape(1, 8, 16, 8)
    reference = F.interpolate(plane, size=(8, 8), mode="bicubic", align_corners=False)
    torch.testing.assert_close(
        state[f"{prefix}.pos_embed_spatial"][0], reference.reshape(8, 64).t()
    )
    for kept in ("cls_token", "pos_embed_class"):
        torch.testing.assert_close(state[f"{prefix}.{kept}"], source[f"{prefix}.{kept}"])
    rules = {a.key: a.rule for a in report.adapted}
    assert rules[f"{prefix}.pos_embed_spatial"] == (
        "position table resampled, grid (16, 8) -> (8, 8), bicubic"
    )
    assert rules[f"{prefix}.pos_embed_temporal"] == (
        "position table resampled, grid (4,) -> (8,), linear"
    )
    _assert_every_change_reported(source, model, report)


def test_a_sine_cosine_table_is_recomputed_for_the_new_clip_and_reported(tmp_path: Path) -> None:
    path, source = _saved(tmp_path, small("videomae_base", frames=16))
    model, report = load_model(
        path, spec=small("videomae_base", frames=8), adapt=True, return_report=True
    )
    table = model.get_submodule("backbone.pos").get_buffer("table")
    torch.testing.assert_close(table, sinusoid_table(4 * 4 * 4, 32)[None])
    (line,) = report.adapted
    assert str(line) == (
        "backbone.pos.table (1, 128, 32) -> (1, 64, 32): recomputed: sine-cosine table of 64 "
        "positions (not stored)"
    )
    assert report.ok
    assert not _changed_stored(source, model)
    # a source that carries the table (another library's export) has it dropped, said so
    carried = {**source, "backbone.pos.table": sinusoid_table(128, 32)[None]}
    report = load_weights(build_model(small("videomae_base", frames=8)), carried, adapt=True)
    assert report.dropped == ("backbone.pos.table",)
    assert report.adapted[0].rule.endswith("(not stored); the source's copy dropped")


def _changed_stored(source: dict[str, torch.Tensor], model: torch.nn.Module) -> list[str]:
    return [k for k, v in model.state_dict().items() if not torch.equal(source[k], v)]


def test_a_per_frame_projection_takes_other_input_channels_and_a_one_frame_tubelet(
    tmp_path: Path,
) -> None:
    path, source = _saved(tmp_path, small("timesformer_base"))
    depth = small("timesformer_base", changes={"input.channels": 4})
    model = build_model(depth)
    report = load_weights(model, path, adapt=True)
    kernel = source["backbone.embed.proj.weight"]  # (32, 3, 8, 8), a Conv2d's
    expected = torch.cat((kernel, kernel), dim=1)[:, :4] * (3 / 4)
    torch.testing.assert_close(model.state_dict()["backbone.embed.proj.weight"], expected)
    assert [a.rule for a in report.adapted] == [
        "input channels 3 -> 4, RGB repeated and scaled by 3/4"
    ]
    _assert_every_change_reported(source, model, report)

    tubelet, source = _saved(
        tmp_path, small("timesformer_base", changes={"backbone.0.per_frame": False}), "tubelet"
    )
    model = build_model(small("timesformer_base"))
    report = load_weights(model, tubelet, adapt=True)
    torch.testing.assert_close(
        model.state_dict()["backbone.embed.proj.weight"],
        source["backbone.embed.proj.weight"][:, :, 0],
    )
    assert [a.rule for a in report.adapted] == ["one-frame 3D kernel as a per-frame 2D kernel"]
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            model.eval()(clip)["action"], load_model(tubelet).eval()(clip)["action"]
        )
