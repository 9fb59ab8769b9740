"""Definitions that scale: spec arguments, block templates with typed parameters, per-index
patterns in repeats, and families written as a base spec plus scalar overrides."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from video_interpreter import SpecError, build_model, load_spec
from video_interpreter.layers import Graph
from video_interpreter.spec import Limits

WriteSpec = Callable[..., Path]
CONFIGS = Path(__file__).resolve().parents[1] / "architectures" / "configs"

TEMPLATED = """
spec_version: 1
name: templated
version: v1
input: {channels: 3, frames: 4, height: 16, width: 16}
arguments: {first_depth: 3}
blocks:
  stage:
    params:
      depth: {type: integer, minimum: 1}
      width: {type: integer, minimum: 1}
      stride: {type: integer, default: 2}
    node:
      type: Sequential
      layers:
        - name: res_blocks
          type: Repeat
          times: {arg: depth}
          layer:
            type: Bottleneck
            out_channels: {arg: width}
            inner_channels: 4
            stride: {first: [1, {arg: stride}, {arg: stride}], rest: 1}
            swish: true
            se_ratio: {cycle: [0.25, 0.0]}
backbone:
  - {name: res2, use: stage, args: {depth: {arg: first_depth}, width: 8}}
  - {name: res3, use: stage, args: {depth: 2, width: 16, stride: 1}}
neck: {type: GlobalAvgPool3d}
heads:
  action: {type: Linear, out_features: 5}
"""


def _block(width: int, stride: object, se: float) -> dict[str, object]:
    return {
        "type": "Bottleneck",
        "out_channels": width,
        "inner_channels": 4,
        "stride": stride,
        "swish": True,
        "se_ratio": se,
    }


def _written_out() -> dict[str, object]:
    """TEMPLATED with every block, argument and pattern written out by hand."""
    res2 = [_block(8, [1, 2, 2], 0.25), _block(8, 1, 0.0), _block(8, 1, 0.25)]
    res3 = [_block(16, [1, 1, 1], 0.25), _block(16, 1, 0.0)]
    return {
        "spec_version": 1,
        "name": "templated",
        "version": "v1",
        "input": {"channels": 3, "frames": 4, "height": 16, "width": 16},
        "backbone": [
            {
                "name": name,
                "type": "Sequential",
                "layers": [{"name": "res_blocks", "type": "Sequential", "layers": blocks}],
            }
            for name, blocks in (("res2", res2), ("res3", res3))
        ],
        "neck": {"type": "GlobalAvgPool3d"},
        "heads": {"action": {"type": "Linear", "out_features": 5}},
    }


def test_blocks_arguments_and_patterns_expand_to_the_spec_written_out(
    write_spec: WriteSpec,
) -> None:
    spec = load_spec(write_spec(TEMPLATED))
    assert spec == load_spec(_written_out())
    assert "blocks" not in spec.to_dict()
    assert "arguments" not in spec.to_dict()


def test_a_repeat_with_patterns_keeps_a_repeats_state_dict_keys(write_spec: WriteSpec) -> None:
    keys = build_model(write_spec(TEMPLATED)).state_dict()
    assert "backbone.res2.res_blocks.2.branch2.norm_b.1.block.0.weight" in keys  # SE on 0, 2
    assert "backbone.res2.res_blocks.1.branch2.norm_b.1.block.0.weight" not in keys
    assert "backbone.res2.res_blocks.0.branch1_conv.weight" in keys  # only block 0 projects
    assert "backbone.res2.res_blocks.1.branch1_conv.weight" not in keys


def test_spec_arguments_are_overridden_one_by_one(write_spec: WriteSpec) -> None:
    spec = load_spec(write_spec(TEMPLATED), overrides=["arguments.first_depth=5"])
    assert len(spec["backbone"][0]["layers"][0]["layers"]) == 5


def test_a_family_member_extends_its_base_with_scalar_overrides_only(
    write_spec: WriteSpec,
) -> None:
    write_spec(TEMPLATED, "base.yaml")
    deeper = write_spec("extends: base.yaml\nname: deeper\narguments: {first_depth: 4}\n")
    spec = load_spec(deeper)
    assert len(spec["backbone"][0]["layers"][0]["layers"]) == 4
    assert spec["backbone"][1] == load_spec(write_spec(TEMPLATED, "again.yaml"))["backbone"][1]


def _non_blank_non_comment(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_x3d_s_is_short_and_its_family_only_overrides_scalars() -> None:
    assert len(_non_blank_non_comment(CONFIGS / "x3d_s.yaml")) < 40
    scalar = re.compile(r"^(extends|name|description|input|arguments|preprocess): ")
    for member in ("x3d_xs", "x3d_m", "x3d_l"):
        for line in _non_blank_non_comment(CONFIGS / f"{member}.yaml"):
            assert scalar.match(line), f"{member}: {line}"
    depths = [len(stage["layers"][0]["layers"]) for stage in load_spec("x3d_l")["backbone"][1:]]
    assert depths == [5, 10, 25, 15]


def _problems(path: Path) -> list[tuple[int | None, int | None, str]]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [(p.line, p.column, f"{p.message} {p.hint or ''}") for p in info.value.problems]


def _position(text: str, marker: str) -> tuple[int, int]:
    """1-based (line, column) of the first ``marker`` in ``text`` as written to the file."""
    before = text.lstrip("\n")[: text.lstrip("\n").index(marker)]
    return before.count("\n") + 1, len(before) - before.rfind("\n")


@pytest.mark.parametrize(
    ("old", "new", "marker", "says"),
    [
        ("use: stage, args: {depth: 2", "use: stag, args: {depth: 2", "stag,", "'stage'?"),
        ("width: 16, stride: 1}", "width: 16, stried: 1}", "stried", "no parameter 'stried'"),
        ("depth: 2, width: 16", "depth: 2", "{depth: 2, s", "needs argument 'width'"),
        ("depth: 2, width: 16", "depth: 2.5, width: 16", "2.5", "not of type 'integer'"),
        ("first_depth: 3}", "first_depth: 0}", "0}", "less than the minimum of 1"),
        ("{arg: first_depth}", "{arg: first_dept}", "first_dept}", "names no spec argument"),
        ("out_channels: {arg: width}", "out_channels: {arg: widht}", "widht", "'width'?"),
        (
            "      type: Sequential",
            "      type: Sequentia",
            "Sequentia\n",
            "did you mean Sequential",
        ),
    ],
)
def test_definition_errors_are_reported_where_they_were_written(
    write_spec: WriteSpec, old: str, new: str, marker: str, says: str
) -> None:
    assert old in TEMPLATED
    text = TEMPLATED.replace(old, new, 1)
    problems = _problems(write_spec(text))
    assert any(
        (line, column) == _position(text, marker) and says in message
        for line, column, message in problems
    ), (problems, _position(text, marker))


def test_a_pattern_outside_a_repeat_is_refused_at_its_line(write_spec: WriteSpec) -> None:
    text = TEMPLATED.replace("out_features: 5}", "out_features: {cycle: [5, 6]}}")
    [(line, column, message)] = _problems(write_spec(text))
    assert (line, column) == _position(text, "{cycle: [5")
    assert "only allowed inside a Repeat" in message


def test_a_block_that_instantiates_itself_is_refused(write_spec: WriteSpec) -> None:
    layer = TEMPLATED[TEMPLATED.index("          layer:") : TEMPLATED.index("backbone:")]
    text = TEMPLATED.replace(layer, "          layer: {use: stage, args: {depth: 1, width: 1}}\n")
    with pytest.raises(SpecError, match="instantiates itself: stage -> stage"):
        load_spec(write_spec(text))


def test_a_parameter_schema_must_be_a_json_schema(write_spec: WriteSpec) -> None:
    text = TEMPLATED.replace("{type: integer, default: 2}", "{type: whole, default: 2}")
    [(line, column, message)] = _problems(write_spec(text))
    assert (line, column) == _position(text, "whole")
    assert "not a valid JSON Schema" in message


def test_expansion_stays_within_the_value_limit(write_spec: WriteSpec) -> None:
    text = TEMPLATED.replace("first_depth: 3", "first_depth: 400")
    with pytest.raises(SpecError, match="too many values"):
        load_spec(write_spec(text), limits=Limits(values=2_000))


def test_an_instance_keeps_its_name_and_inputs_in_a_graph(write_spec: WriteSpec) -> None:
    text = """
    spec_version: 1
    name: wired
    version: v1
    input: {channels: 3, frames: 4, height: 16, width: 16}
    blocks:
      unit:
        params: {width: {type: integer}}
        node: {name: ignored, type: Conv3d, out_channels: {arg: width}, kernel_size: 1}
    backbone:
      - {name: a, use: unit, args: {width: 4}}
      - {name: b, use: unit, args: {width: 4}, inputs: [input]}
      - {name: sum, type: Add, inputs: [a, b]}
    neck: {type: GlobalAvgPool3d}
    heads: {action: {type: Linear, out_features: 2}}
    """
    spec = load_spec(write_spec(text))
    assert [node.get("name") for node in spec["backbone"]] == ["a", "b", "sum"]
    assert spec["backbone"][1]["inputs"] == ("input",)
    backbone = build_model(spec).backbone
    assert isinstance(backbone, Graph)
    assert set(backbone.wiring["sum"]) == {"a", "b"}


def test_a_nested_repeats_patterns_index_its_own_copies(write_spec: WriteSpec) -> None:
    text = """
    spec_version: 1
    name: nested
    version: v1
    input: {channels: 3, frames: 4, height: 16, width: 16}
    backbone:
      - type: Repeat
        times: 2
        layer:
          type: Sequential
          layers:
            - {type: Conv3d, out_channels: {first: 4, rest: 6}, kernel_size: 1}
            - type: Repeat
              times: 3
              layer: {type: Conv3d, out_channels: {cycle: [5, 7]}, kernel_size: 1}
    neck: {type: GlobalAvgPool3d}
    heads: {action: {type: Linear, out_features: 2}}
    """
    outer = load_spec(write_spec(text))["backbone"][0]["layers"]
    assert [copy["layers"][0]["out_channels"] for copy in outer] == [4, 6]
    for copy in outer:
        assert [c["out_channels"] for c in copy["layers"][1]["layers"]] == [5, 7, 5]
