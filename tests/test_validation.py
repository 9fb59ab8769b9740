"""Validation: every problem found, located at file:line:col, with what would be valid."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from video_interpreter import SpecError, VideoInterpreterError, load_spec
from video_interpreter.cli import main
from video_interpreter.spec import schema_text

from .conftest import TINY_SPEC

WriteSpec = Callable[..., Path]

HEADER = """
spec_version: 1
name: probe
version: v1
input: {channels: 3, frames: 4, height: 32, width: 32}
"""


def problems_of(path: Path) -> list[tuple[int | None, int | None, str, str]]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [(p.line, p.column, p.spec_path, str(p)) for p in info.value.problems]


def test_spec_error_is_a_value_error_carrying_its_problems() -> None:
    with pytest.raises(ValueError, match="missing required key 'heads'") as info:
        load_spec({k: v for k, v in TINY_SPEC.items() if k != "heads"})
    assert isinstance(info.value, VideoInterpreterError)
    assert isinstance(info.value, SpecError)
    assert len(info.value.problems) == 1


def test_a_misspelt_key_is_located_and_gets_a_suggestion(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER
        + """
backbone:
  - {type: Conv3d, out_channels: 8, kernel_size: 3, strid: 2}
heads: {action: {type: ClassificationHead, num_classes: 2}}
"""
    )
    [(line, col, where, text)] = problems_of(path)
    assert (line, col, where) == (7, 53, "backbone[0].strid")
    assert "unknown key 'strid'" in text
    assert "did you mean 'stride'?" in text


def test_a_value_of_the_wrong_type_says_what_is_expected(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER
        + """
backbone:
  - type: Conv3d
    out_channels: eight
    kernel_size: [3, 3]
heads: {action: {type: ClassificationHead, num_classes: 2}}
"""
    )
    found = problems_of(path)
    assert [(line, col, where) for line, col, where, _ in found] == [
        (8, 19, "backbone[0].out_channels"),
        (9, 18, "backbone[0].kernel_size"),
    ]
    assert 'expected integer, got string "eight"' in found[0][3]
    assert "[3, 3] is too short" in found[1][3]


def test_an_unknown_layer_type_lists_the_closest_registered_names(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER
        + """
backbone:
  - {type: BatchNorm, eps: 0.1}
heads: {action: {type: ClassificationHead, num_classes: 2}}
"""
    )
    [(line, col, where, text)] = problems_of(path)
    assert (line, col, where) == (7, 12, "backbone[0].type")
    assert "unknown layer type 'BatchNorm': did you mean BatchNorm3d, BatchNorm1d" in text


def test_every_problem_in_a_file_is_reported_in_source_order(write_spec: WriteSpec) -> None:
    path = write_spec("""
spec_version: 2
name: probe
version: v1
input: {channels: 3, frames: 4, height: 32, widht: 32}
backbone:
  - {type: Conv3d, out_channels: 0, kernel_size: 3}
  - type: Sequential
    layers:
      - {type: ReLu}
heads:
  bad-name: {type: ClassificationHead}
""")
    found = problems_of(path)
    lines = [line or 0 for line, *_ in found]
    assert lines == sorted(lines)
    where = {path_ for _, _, path_, _ in found}
    assert {
        "spec_version",
        "input.widht",
        "input",
        "backbone[0].out_channels",
        "backbone[1].layers[0].type",
        "heads",
        "heads.bad-name",
    } <= where


def test_a_duplicate_key_is_reported_not_silently_overwritten(write_spec: WriteSpec) -> None:
    path = write_spec(HEADER + "name: again\nbackbone: []\nheads: {}\n")
    with pytest.raises(SpecError, match="key 'name' appears twice") as info:
        load_spec(path)
    assert info.value.problems[0].line == 5


def test_broken_yaml_and_json_are_located(write_spec: WriteSpec) -> None:
    yaml_path = write_spec("name: [unclosed\nversion: v1\n")
    with pytest.raises(SpecError, match="not valid YAML") as info:
        load_spec(yaml_path)
    assert info.value.problems[0].line is not None
    json_path = write_spec('{"name": "x",\n "version": }', "spec.json")
    with pytest.raises(SpecError, match="not valid JSON") as info:
        load_spec(json_path)
    assert (info.value.problems[0].line, info.value.problems[0].column) == (2, 13)


def test_json_specs_get_line_and_column_too(write_spec: WriteSpec) -> None:
    spec = dict(TINY_SPEC, heads={"action": {"type": "ClassificationHead", "num_classes": -1}})
    path = write_spec(json.dumps(spec, indent=2), "spec.json")
    with pytest.raises(SpecError, match="num_classes") as info:
        load_spec(path)
    [problem] = info.value.problems
    assert problem.spec_path == "heads.action.num_classes"
    assert problem.line is not None
    assert problem.line > 20


def test_a_non_mapping_or_empty_file_is_refused(write_spec: WriteSpec) -> None:
    with pytest.raises(SpecError, match="must be a mapping of keys, this file is empty"):
        load_spec(write_spec(""))
    with pytest.raises(SpecError, match="this file is a list"):
        load_spec(write_spec("- 1\n- 2\n"))


def test_yaml_values_that_are_not_json_like_are_refused(write_spec: WriteSpec) -> None:
    with pytest.raises(SpecError, match="value of type date is not allowed"):
        load_spec(write_spec("name: x\ndescription: 2024-01-01\n"))


def test_a_time_axis_that_collapses_names_the_node(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER.replace("frames: 4", "frames: 2")
        + """
backbone:
  - {type: Conv3d, out_channels: 8, kernel_size: 3, stride: 2, padding: 1}
  - {type: Conv3d, out_channels: 8, kernel_size: [3, 1, 1]}
heads: {action: {type: ClassificationHead, num_classes: 2}}
"""
    )
    [(line, _, where, text)] = problems_of(path)
    assert (line, where) == (8, "backbone[1]")
    assert "Conv3d" in text


def test_channels_that_do_not_fit_a_residual_name_the_node(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER
        + """
backbone:
  - type: Residual
    body: [{type: Conv3d, out_channels: 16, kernel_size: 1}]
heads: {action: {type: ClassificationHead, num_classes: 2}}
"""
    )
    [(line, _, where, text)] = problems_of(path)
    assert (line, where) == (7, "backbone[0]")
    assert "the body gives a clip (16, 4, 32, 32) and the shortcut a clip (3, 4, 32, 32)" in text


def test_attention_width_not_divisible_by_heads_is_reported(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER
        + """
backbone:
  - {type: TubeletEmbedding, dim: 30, tubelet: [2, 8, 8]}
  - {type: TransformerBlock, heads: 4}
neck: {type: TokenPool}
heads: {action: {type: ClassificationHead, num_classes: 2}}
"""
    )
    [(line, _, where, text)] = problems_of(path)
    assert (line, where) == (8, "backbone[1]")
    assert "width 30 is not divisible by heads=4" in text


def test_a_head_on_unpooled_features_suggests_a_neck(write_spec: WriteSpec) -> None:
    path = write_spec(
        HEADER
        + """
backbone: [{type: Conv3d, out_channels: 8, kernel_size: 1}]
heads: {action: {type: ClassificationHead, num_classes: 2}}
"""
    )
    [(_, _, where, text)] = problems_of(path)
    assert where == "heads.action"
    assert "GlobalAvgPool3d" in text


def test_the_cli_prints_every_problem_and_exits_2(
    write_spec: WriteSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(
        HEADER
        + """
backbone:
  - {type: Conv3D, out_channels: 8}
  - {type: ReLU, inplace: yes_please}
heads: {action: {type: ClassificationHead, num_clases: 2}}
"""
    )
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"{path}:7:12: backbone[0].type: unknown layer type 'Conv3D'")
    assert lines[1].startswith(f"{path}:8:27: backbone[1].inplace: expected boolean")
    assert lines[2].startswith(f"{path}:9:")
    assert "heads.action: missing required key 'num_classes'" in lines[2]
    assert "did you mean 'num_classes'?" in lines[3]


def test_the_cli_accepts_every_shipped_spec(capsys: pytest.CaptureFixture[str]) -> None:
    specs = sorted(str(p) for p in Path("architectures/configs").glob("*.yaml"))
    assert main(["validate", *specs]) == 0
    assert capsys.readouterr().out.count("ok ") == len(specs)


def test_the_exported_schema_is_valid_and_in_sync_with_the_registry() -> None:
    committed = Path("architectures/schema/architecture.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run `video-interpreter schema` and commit the result"
    schema = json.loads(committed)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "if" in json.dumps(schema["$defs"]["node"])  # dispatched on type, not a bare oneOf


def test_a_file_level_problem_prints_without_a_spec_path(write_spec: WriteSpec) -> None:
    path = write_spec("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML") as info:
        load_spec(path)
    assert str(info.value.problems[0]).startswith(f"{path}:2:1: not valid YAML")
