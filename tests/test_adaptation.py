"""adapt=True: a checkpoint brought into a changed architecture by the rules its layers declare,
every adapted tensor a line of the load report, everything else as strict as ever."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from video_interpreter.checkpoint import (
    Adapt,
    LoadError,
    LoadReport,
    convert_checkpoint,
    load_model,
    load_weights,
    save_model,
)
from video_interpreter.cli import main
from video_interpreter.errors import AdaptationError, CheckpointError
from video_interpreter.layers.adaptation import (
    Derived,
    PositionTable,
    RelativeTable,
    adaptation_rules,
)
from video_interpreter.model import build_model
from video_interpreter.spec import load_spec

from .conftest import tiny_spec

POSITIONS = "backbone.encoder.pos_encoding"


def _saved(tmp_path: Path, spec: Any, name: str = "source", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    return save_model(build_model(spec), tmp_path / f"{name}.safetensors").path


def _changed_keys(source: dict[str, torch.Tensor], model: nn.Module) -> set[str]:
    """Model keys whose tensor is not the source's (absent, another shape or other values),
    and source keys the model has no place for."""
    state = model.state_dict()
    changed = {
        key
        for key, tensor in state.items()
        if key not in source
        or source[key].shape != tensor.shape
        or not torch.equal(source[key].to(tensor.dtype), tensor)
    }
    return changed | {key for key in source if key not in state}


def _assert_every_change_reported(
    source: dict[str, torch.Tensor], model: nn.Module, report: LoadReport
) -> None:
    changed = _changed_keys(source, model)
    assert changed == {a.key for a in report.adapted}
    text = str(report)
    for key in changed:  # one line each, with the rule
        lines = [line for line in text.splitlines() if f" {key} " in f"{line} "]
        assert len(lines) == 1, (key, lines)


def test_a_400_class_checkpoint_loads_into_a_10_class_spec_with_the_head_reinitialised(
    tmp_path: Path,
) -> None:
    path = _saved(tmp_path, tiny_spec(num_classes=400))
    source = dict(load_model(path).state_dict())
    model = build_model(tiny_spec(num_classes=10))
    report = load_weights(model, path, adapt=True)
    head = ("heads.action.fc.weight", "heads.action.fc.bias")
    assert report.ok
    assert report.reinitialized == head
    lines = {a.key: a for a in report.adapted}
    assert lines["heads.action.fc.weight"].checkpoint == (400, 8)
    assert lines["heads.action.fc.weight"].model == (10, 8)
    assert "head 'action' re-initialised by Linear's init (torch scheme)" in str(report)
    _assert_every_change_reported(source, model, report)
    torch.testing.assert_close(model.state_dict()["backbone.0.weight"], source["backbone.0.weight"])


def test_without_adapt_the_new_head_is_refused_naming_its_keys(tmp_path: Path) -> None:
    path = _saved(tmp_path, tiny_spec(num_classes=400))
    model = build_model(tiny_spec(num_classes=10))
    with pytest.raises(LoadError, match=r"heads\.action\.fc\.weight: checkpoint \(400, 8\)"):
        load_weights(model, path, allow_spec_change=True)
    with pytest.raises(
        CheckpointError, match=r"(?s)heads\.action\.fc\.weight \(400, 8\) -> \(10, 8\).*adapt=True"
    ):
        load_weights(model, path)
    with pytest.raises(CheckpointError, match="pass adapt=True"):
        load_model(path, spec=tiny_spec(num_classes=10))


def test_load_model_with_a_new_spec_adapts_and_runs(tmp_path: Path) -> None:
    path = _saved(tmp_path, tiny_spec(num_classes=400))
    model, report = load_model(path, spec=tiny_spec(num_classes=10), adapt=True, return_report=True)
    assert model(torch.randn(2, 3, 4, 16, 16))["action"].shape == (2, 10)
    assert [a.key for a in report.adapted] == ["heads.action.fc.weight", "heads.action.fc.bias"]


def test_a_head_absent_from_the_source_is_initialised_and_one_the_model_lacks_dropped(
    tmp_path: Path,
) -> None:
    two = tiny_spec()
    two["heads"]["extra"] = {"type": "ClassificationHead", "num_classes": 3}
    renamed = tiny_spec()
    renamed["heads"] = {"verb": {"type": "ClassificationHead", "num_classes": 5}}
    path = _saved(tmp_path, two)
    source = dict(load_model(path).state_dict())
    model = build_model(renamed)
    report = load_weights(model, path, adapt=True)
    rules = {a.key: a.rule for a in report.adapted}
    assert "not in the source" in rules["heads.verb.fc.weight"]
    assert rules["heads.extra.fc.weight"] == "a head of the source the model lacks: dropped"
    _assert_every_change_reported(source, model, report)


def _mvit(**sizes: int) -> Any:
    overrides = [f"input.{name}={value}" for name, value in sizes.items()]
    return load_spec(
        "configs/tiny_mvit.yaml", overrides=["backbone.1.absolute_position=true", *overrides]
    )


def test_a_rectangular_grid_becomes_a_square_one_of_the_same_token_count(tmp_path: Path) -> None:
    # (8, 2) and (4, 4) both have 16 rows: the shape is the same, the table is not.
    path = _saved(tmp_path, _mvit(height=32, width=8))
    source = dict(load_model(path).state_dict())
    model = build_model(_mvit(height=16, width=16))
    report = load_weights(model, path, adapt=True)
    table = source[f"{POSITIONS}.spatial_pos"]  # (8 * 2, D)
    reference = F.interpolate(
        table.t().reshape(1, -1, 8, 2), size=(4, 4), mode="bicubic", align_corners=False
    )
    got = model.state_dict()[f"{POSITIONS}.spatial_pos"]
    torch.testing.assert_close(got, reference.reshape(table.shape[1], 16).t())
    assert not torch.allclose(got, table)
    line = next(a for a in report.adapted if a.key == f"{POSITIONS}.spatial_pos")
    assert line.rule == "position table resampled, grid (8, 2) -> (4, 4), bicubic"
    assert line.checkpoint == line.model == (16, 16)
    _assert_every_change_reported(source, model, report)


def test_separable_tables_resample_time_linearly_and_the_class_position_is_kept(
    tmp_path: Path,
) -> None:
    path = _saved(tmp_path, _mvit(frames=4))
    source = dict(load_model(path).state_dict())
    model = build_model(_mvit(frames=8))
    report = load_weights(model, path, adapt=True)
    state = model.state_dict()
    reference = F.interpolate(
        source[f"{POSITIONS}.temporal_pos"].t()[None], size=4, mode="linear", align_corners=False
    )
    torch.testing.assert_close(state[f"{POSITIONS}.temporal_pos"], reference[0].t())
    torch.testing.assert_close(state[f"{POSITIONS}.class_pos"], source[f"{POSITIONS}.class_pos"])
    _assert_every_change_reported(source, model, report)


def _transformer(frames: int, height: int = 32) -> Any:
    return load_spec(
        "configs/tiny_transformer.yaml",
        overrides=[
            f"input.frames={frames}",
            f"input.height={height}",
            "heads.action.num_classes=7",
        ],
    )


def test_a_joint_table_equals_a_trilinear_interpolation_of_a_rectangular_grid(
    tmp_path: Path,
) -> None:
    path = _saved(tmp_path, _transformer(frames=4))
    source = dict(load_model(path).state_dict())
    model = build_model(_transformer(frames=8, height=16))
    report = load_weights(model, path, adapt=True)
    table = source["backbone.embed.position"]  # (1, 2, 4, 4, D)
    reference = F.interpolate(
        table.permute(0, 4, 1, 2, 3), size=(4, 2, 4), mode="trilinear", align_corners=False
    ).permute(0, 2, 3, 4, 1)
    torch.testing.assert_close(model.state_dict()["backbone.embed.position"], reference)
    assert [a.rule for a in report.adapted] == [
        "position table resampled, grid (2, 4, 4) -> (4, 2, 4), trilinear"
    ]
    _assert_every_change_reported(source, model, report)


def test_16_to_8_to_16_frames_is_reported_each_way(tmp_path: Path) -> None:
    sixteen = _saved(tmp_path, _transformer(frames=16), "sixteen")
    eight = save_model(
        load_model(sixteen, spec=_transformer(frames=8), adapt=True), tmp_path / "eight.pth"
    ).path
    back, report_back = load_model(
        eight, spec=_transformer(frames=16), adapt=True, return_report=True
    )
    _, report_down = load_model(
        sixteen, spec=_transformer(frames=8), adapt=True, return_report=True
    )
    assert "grid (8, 4, 4) -> (4, 4, 4), trilinear" in str(report_down)
    assert "grid (4, 4, 4) -> (8, 4, 4), trilinear" in str(report_back)
    assert back(torch.randn(1, 3, 16, 32, 32))["action"].shape == (1, 7)


def test_swin_relative_tables_follow_a_new_window_and_the_index_is_recomputed(
    tmp_path: Path,
) -> None:
    path = _saved(tmp_path, "configs/tiny_swin.yaml")
    source = dict(load_model(path).state_dict())
    spec = load_spec("configs/tiny_swin.yaml", overrides=["backbone.1.window_size=[2,4,4]"])
    model = build_model(spec)
    report = load_weights(model, path, adapt=True)
    key = "backbone.features.0.0.attn.relative_position_bias_table"
    heads = source[key].shape[1]
    reference = F.interpolate(
        source[key].t().reshape(1, heads, 3, 5, 5), size=(3, 7, 7), mode="trilinear"
    )
    torch.testing.assert_close(model.state_dict()[key], reference.reshape(heads, -1).t())
    rules = {a.key: a.rule for a in report.adapted}
    assert (
        rules[key] == "relative position table resampled, offsets (3, 5, 5) -> (3, 7, 7), trilinear"
    )
    index = "backbone.features.0.0.attn.relative_position_index"
    assert rules[index] == "recomputed: offset index of a [2, 4, 4] window"
    fresh = build_model(spec).state_dict()[index]
    assert torch.equal(model.state_dict()[index], fresh)
    _assert_every_change_reported(source, model, report)
    model(torch.randn(1, 3, 4, 32, 32))


def test_mvit_relative_tables_follow_a_new_input_size(tmp_path: Path) -> None:
    path = _saved(tmp_path, "configs/tiny_mvit.yaml")
    source = dict(load_model(path).state_dict())
    model = build_model(load_spec("configs/tiny_mvit.yaml", overrides=["input.height=64"]))
    report = load_weights(model, path, adapt=True)
    key = "backbone.encoder.blocks.0.attn.rel_pos_h"
    reference = F.interpolate(source[key].t()[None], size=31, mode="linear", align_corners=False)
    torch.testing.assert_close(model.state_dict()[key], reference[0].t())
    assert "offsets (15,) -> (31,), linear" in {a.key: a.rule for a in report.adapted}[key]
    _assert_every_change_reported(source, model, report)


def _timm_input_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """timm's adapt_input_conv for a 3-channel kernel, written out."""
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeated = torch.cat([weight] * (channels // 3 + 1), dim=1)[:, :channels]
    return repeated * (3 / channels)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_the_stem_takes_other_input_channels_as_timm_does(tmp_path: Path, channels: int) -> None:
    path = _saved(tmp_path, tiny_spec())
    source = dict(load_model(path).state_dict())
    spec = tiny_spec()
    spec["input"]["channels"] = channels
    model = build_model(spec)
    report = load_weights(model, path, adapt=True)
    torch.testing.assert_close(
        model.state_dict()["backbone.0.weight"],
        _timm_input_channels(source["backbone.0.weight"], channels),
    )
    assert [a.key for a in report.adapted] == ["backbone.0.weight"]
    _assert_every_change_reported(source, model, report)


def test_only_the_kernel_reading_the_clip_may_change_its_input_channels(tmp_path: Path) -> None:
    wider = tiny_spec()
    wider["backbone"].insert(3, {"type": "Conv3d", "out_channels": 4, "kernel_size": 1})
    narrower = tiny_spec(out_channels=6)
    narrower["backbone"].insert(3, {"type": "Conv3d", "out_channels": 4, "kernel_size": 1})
    rules = adaptation_rules(build_model(wider, device="meta"))
    assert rules["backbone.0.weight"].describe() == "convolution kernel reading the clip"
    assert rules["backbone.3.weight"].describe() == "convolution kernel"
    path = _saved(tmp_path, wider)
    with pytest.raises(AdaptationError, match="no rule changes a layer's width"):
        load_weights(build_model(narrower), path, adapt=True)


def test_a_tensor_without_a_rule_is_refused_as_without_adapt(tmp_path: Path) -> None:
    path = _saved(tmp_path, tiny_spec(out_channels=8))
    model = build_model(tiny_spec(out_channels=6))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises((LoadError, AdaptationError), match=r"backbone\.0\.weight"):
        load_weights(model, path, adapt=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_adapt_false_keeps_the_strict_loader(tmp_path: Path) -> None:
    path = _saved(tmp_path, _transformer(frames=4))
    with pytest.raises(LoadError, match=r"backbone\.embed\.position"):
        load_weights(build_model(_transformer(frames=8)), path, allow_spec_change=True)


def test_a_flat_table_without_a_source_spec_is_refused_rather_than_guessed() -> None:
    source = build_model(_mvit(height=32, width=8)).state_dict()
    model = build_model(_mvit(height=16, width=16))
    with pytest.raises(AdaptationError, match=r"spatial_pos .* does not say its grid"):
        load_weights(model, dict(source), adapt=True)


def test_rules_refuse_what_they_cannot_do() -> None:
    with pytest.raises(AdaptationError, match="prefix tokens"):
        PositionTable((4,), prefix=1, flat=True, mode="linear").resample(
            torch.zeros(5, 2), PositionTable((5,), flat=True, mode="linear")
        )
    with pytest.raises(Exception, match="mode 'bicubic' for 3 axes"):
        RelativeTable((3, 5, 5), mode="bicubic")
    with pytest.raises(AdaptationError, match="inflation must be one of"):
        Adapt(inflation="middle")  # type: ignore[arg-type]


def test_convert_with_a_new_spec_and_adapt_writes_the_adapted_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _saved(tmp_path, tiny_spec(num_classes=400))
    ten = tmp_path / "ten.yaml"
    ten.write_text(yaml.safe_dump(tiny_spec(num_classes=10)), encoding="utf-8")
    out = tmp_path / "ten.safetensors"
    assert main(["convert", str(path), str(out), "--spec", str(ten)]) != 0
    assert "pass adapt=True (CLI: --adapt)" in capsys.readouterr().err
    assert main(["convert", str(path), str(out), "--spec", str(ten), "--adapt"]) == 0
    printed = capsys.readouterr().out
    assert "heads.action.fc.weight (400, 8) -> (10, 8): head 'action' re-initialised" in printed
    assert load_model(out)(torch.randn(1, 3, 4, 16, 16))["action"].shape == (1, 10)
    saved, report = convert_checkpoint(
        path, tmp_path / "ten.pth", spec=ten, adapt=True, return_report=True
    )
    assert saved.path.is_file()
    assert len(report.adapted) == 2


def test_convert_refuses_inflate_without_adapt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _saved(tmp_path, tiny_spec())
    with pytest.raises(SystemExit):
        main(["convert", str(path), str(tmp_path / "out.pth"), "--inflate", "average"])
    assert "--inflate says how --adapt inflates 2D kernels; add --adapt" in capsys.readouterr().err


# Tensor names of learned absolute position tables across the layers (a class token's own
# (1, 1, D) position is not on a grid and is excluded by its size).
_POSITION_TABLES = {
    "position",
    "table",
    "space",
    "time",
    "temporal_pos",
    "spatial_pos",
    "pos_embed_spatial",
    "pos_embed_temporal",
}

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "architectures" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_zoo_spec_declares_rules_that_agree_with_its_tensors(config: Path) -> None:
    model = build_model(config, device="meta")
    state = model.state_dict()
    buffers = dict(model.named_buffers())  # non-persistent ones (fixed tables) included
    rules = adaptation_rules(model)
    assert set(rules) <= set(state) | set(buffers)
    for key, rule in rules.items():
        if isinstance(rule, PositionTable | RelativeTable):
            assert rule.expected_shape(state[key]), (key, rule)
        elif isinstance(rule, Derived):
            assert rule.compute().shape == buffers[key].shape, (key, rule)
    # every learned position table is declared, whatever layer holds it
    tables = {
        k
        for k, v in state.items()
        if k.rpartition(".")[2] in _POSITION_TABLES and v.dim() >= 2 and v.numel() > v.shape[-1]
    }
    assert tables <= {k for k, r in rules.items() if isinstance(r, PositionTable)}, tables
    stems = [k for k, r in rules.items() if r.describe().endswith("reading the clip")]
    assert stems, "no kernel reads the clip"
    heads = {k for k in state if k.startswith("heads.")}
    assert heads == {k for k, r in rules.items() if r.describe().startswith("head ")}


def test_a_2plus1d_stem_takes_other_input_channels_and_its_temporal_half_is_untouched(
    tmp_path: Path,
) -> None:
    path = _saved(tmp_path, "configs/tiny_r2plus1d.yaml")
    source = dict(load_model(path).state_dict())
    spec = load_spec("configs/tiny_r2plus1d.yaml", overrides=["input.channels=1"])
    model = build_model(spec)
    report = load_weights(model, path, adapt=True)
    (line,) = report.adapted
    assert line.rule == "input channels 3 -> 1, summed"
    assert line.key.endswith(".0.weight")
    torch.testing.assert_close(
        model.state_dict()[line.key], source[line.key].sum(dim=1, keepdim=True)
    )
    _assert_every_change_reported(source, model, report)


def test_an_image_table_becomes_a_video_table_plane_resampled_and_repeated_over_time() -> None:
    image = PositionTable((3, 3), prefix=1, flat=True, mode="bicubic")
    video = PositionTable((4, 2, 2), prefix=1, flat=True, mode="trilinear")
    table = torch.randn(1, 1 + 9, 6)  # (1, class token + 3 * 3, D)
    got, rule = video.resample(table, image)
    plane = F.interpolate(
        table[0, 1:].t().reshape(1, 6, 3, 3), size=(2, 2), mode="bicubic", align_corners=False
    )[0]  # (D, 2, 2)
    expected = plane.unsqueeze(1).expand(-1, 4, -1, -1).reshape(6, -1).t()
    assert got.shape == (1, 1 + 16, 6)
    torch.testing.assert_close(got[0, 1:], expected)
    torch.testing.assert_close(got[0, :1], table[0, :1])
    assert rule == (
        "position table resampled, grid (3, 3) -> (4, 2, 2), plane bicubic, repeated over 4 "
        "frames, 1 prefix token kept"
    )


def test_a_stated_source_grid_stands_in_for_a_missing_spec() -> None:
    source = build_model(_mvit(height=32, width=8)).state_dict()
    model = build_model(_mvit(height=16, width=16))
    grids = {f"{POSITIONS}.spatial_pos": (8, 2)}
    report = load_weights(model, dict(source), adapt=Adapt(source_grids=grids))
    rules = {a.key: a.rule for a in report.adapted}
    assert rules[f"{POSITIONS}.spatial_pos"] == (
        "position table resampled, grid (8, 2) -> (4, 4), bicubic"
    )


def test_a_head_is_reinitialised_whole_when_one_of_its_tensors_does_not_fit(
    tmp_path: Path,
) -> None:
    path = _saved(tmp_path, tiny_spec(out_channels=8))
    source = dict(load_model(path).state_dict())
    model = build_model(tiny_spec(out_channels=8))
    narrow = dict(source)
    narrow["heads.action.fc.weight"] = torch.zeros(5, 6)  # another backbone width
    report = load_weights(model, narrow, adapt=True)
    rules = {a.key: a.rule for a in report.adapted}
    assert rules["heads.action.fc.bias"].endswith("the rest of the head does not fit")
    assert report.reinitialized == ("heads.action.fc.weight", "heads.action.fc.bias")


@settings(max_examples=40, deadline=None)
@given(
    source=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    data=st.data(),
    prefix=st.integers(0, 2),
    lead=st.booleans(),
)
def test_any_flat_table_resamples_as_f_interpolate_with_its_prefix_kept(
    source: list[int], data: st.DataObject, prefix: int, lead: bool
) -> None:
    target = data.draw(st.lists(st.integers(1, 5), min_size=len(source), max_size=len(source)))
    mode = {1: "linear", 2: "bicubic", 3: "trilinear"}[len(source)]
    dim = 3
    table = torch.randn(*((1,) if lead else ()), prefix + math.prod(source), dim)
    got, _ = PositionTable(tuple(target), prefix, True, mode).resample(
        table, PositionTable(tuple(source), prefix, True, mode)
    )
    rows = table.reshape(-1, dim)
    grid = rows[prefix:].t().reshape(1, dim, *source)
    reference = F.interpolate(grid, size=tuple(target), mode=mode, align_corners=False)
    expected = torch.cat((rows[:prefix], reference.reshape(dim, -1).t()))
    assert got.shape == (*((1,) if lead else ()), prefix + math.prod(target), dim)
    torch.testing.assert_close(got.reshape(-1, dim), expected)


def _summary_counts(report: LoadReport) -> dict[str, int]:
    tail = report.summary().split(": ", 1)[1]
    return {label: int(count) for count, label in (part.split(" ", 1) for part in tail.split(", "))}


def test_the_summary_counts_each_tensor_once(tmp_path: Path) -> None:
    path = _saved(
        tmp_path,
        load_spec(_transformer(frames=4).to_dict(), overrides=["heads.action.num_classes=400"]),
    )
    model = build_model(_transformer(frames=8))
    report = load_weights(model, path, adapt=True)
    counts = _summary_counts(report)
    assert counts["re-initialised"] == 2  # the head, not also "adapted"
    assert counts["adapted"] == 1  # the position table, not also "loaded"
    assert counts["loaded"] + counts["re-initialised"] + counts["adapted"] == len(
        model.state_dict()
    )
    text = str(report)
    assert text.count("head 'action' re-initialised") == 2  # one line per head tensor
    tally = next(line for line in text.splitlines() if line.strip().startswith("heads.action"))
    assert tally.split()[1:] == ["2", "re-initialised"]
    tally = next(line for line in text.splitlines() if line.strip().startswith("backbone.embed"))
    assert "1 adapted" in tally


def test_a_stem_behind_a_subsample_takes_other_input_channels_too() -> None:
    # SlowFast's slow pathway reads every 4th frame of the clip through a Subsample node.
    sizes = ["input.frames=8", "input.height=64", "input.width=64"]
    sizes.append("heads.action.layers.1.out_features=5")
    torch.manual_seed(0)
    source = build_model(load_spec("configs/slowfast_r50.yaml", overrides=sizes)).state_dict()
    fourth = ["input.channels=4", "preprocess.mean=[0.45,0.45,0.45,0.5]"]
    fourth.append("preprocess.std=[0.225,0.225,0.225,0.25]")  # one value per channel
    four = load_spec("configs/slowfast_r50.yaml", overrides=[*sizes, *fourth])
    model = build_model(four, device="meta")
    report = load_weights(model, dict(source), adapt=True)
    stems = ("backbone.slow_stem.conv.weight", "backbone.fast_stem.conv.weight")
    assert sorted(a.key for a in report.adapted) == sorted(stems)
    for key in stems:
        assert next(a for a in report.adapted if a.key == key).rule == (
            "input channels 3 -> 4, RGB repeated and scaled by 3/4"
        )
        torch.testing.assert_close(model.state_dict()[key], _timm_input_channels(source[key], 4))
    _assert_every_change_reported(source, model, report)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 4, 8, 64, 64))["action"].shape == (1, 5)
