"""Values a spec may hold: finite numbers, integers that are ints, module names torch accepts,
YAML merge keys, and ``extends`` honoured in mappings and kept inside trusted folders."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from video_interpreter import SpecError, build_model, load_spec
from video_interpreter.layers import Graph
from video_interpreter.spec._validate import reserved_name_reason

from .conftest import tiny_spec

WriteSpec = Callable[..., Path]

TINY = tiny_spec()


def _number_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _number_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _number_paths(v, (*path, i))]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [path]
    return []


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


RESOLVED = load_spec(TINY).to_dict()
NUMBER_PATHS = _number_paths(RESOLVED)


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    parent: Any = data
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return data


@settings(max_examples=40, deadline=None)
@given(
    path=st.sampled_from(NUMBER_PATHS),
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_a_non_finite_number_anywhere_is_a_located_problem(
    path: tuple[Any, ...], value: float
) -> None:
    spec = _set(RESOLVED, path, value)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert any(p.path == path for p in info.value.problems)


@pytest.mark.parametrize(
    ("suffix", "text"), [(".yaml", "eps: .nan"), (".yaml", "eps: -.inf"), (".json", "NaN")]
)
def test_non_finite_numbers_in_files_are_refused_at_their_line(
    write_spec: WriteSpec, suffix: str, text: str
) -> None:
    spec = tiny_spec()
    spec["backbone"][1]["eps"] = "PLACEHOLDER"
    if suffix == ".json":
        body = json.dumps(spec, indent=1).replace('"PLACEHOLDER"', text)
    else:
        body = yaml.safe_dump(spec, sort_keys=False).replace("eps: PLACEHOLDER", text)
    path = write_spec(body, f"spec{suffix}")
    with pytest.raises(SpecError, match=r"spec\.\w+:\d+:\d+: backbone\[1\]\.eps: .* not a finite"):
        load_spec(path)


def test_a_non_finite_override_is_refused() -> None:
    with pytest.raises(SpecError, match=r"--set backbone\[1\]\.eps=\.nan: .*not a finite number"):
        load_spec(TINY, overrides=["backbone[1].eps=.nan"])


@settings(max_examples=30, deadline=None)
@given(path=st.sampled_from([p for p in NUMBER_PATHS if isinstance(_get(RESOLVED, p), int)]))
def test_an_integral_float_where_an_integer_is_expected_is_refused(path: tuple[Any, ...]) -> None:
    value = _get(RESOLVED, path)
    with pytest.raises(SpecError, match=rf"expected .*got (number )?{value}\.0 \(write {value}"):
        load_spec(_set(RESOLVED, path, float(value)))


def test_where_a_number_is_expected_integral_floats_are_the_same_value() -> None:
    as_float = tiny_spec(dropout=0.5)
    as_float["backbone"][1]["eps"] = 1.0
    as_int = copy.deepcopy(as_float)
    as_int["backbone"][1]["eps"] = 1
    assert load_spec(as_float).fingerprint == load_spec(as_int).fingerprint


# Every name a child of a container cannot take, from the containers themselves.
GRAPH = Graph({"node": nn.Identity()}, {"node": ("input",)})
TAKEN = sorted(
    {
        n
        for c in (nn.Sequential(), nn.ModuleDict(), GRAPH)
        for n in dir(c)
        if n.isidentifier() and n not in c._modules
    }
)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(TAKEN))
def test_a_node_name_torch_would_refuse_is_refused_at_its_line(name: str) -> None:
    spec = copy.deepcopy(TINY)
    spec["backbone"][0]["name"] = name
    with pytest.raises(SpecError, match=rf"backbone\[0\]\.name: node name '{name}' cannot name"):
        load_spec(spec)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(TAKEN))
def test_a_head_name_torch_would_refuse_is_refused(name: str) -> None:
    spec = copy.deepcopy(TINY)
    spec["heads"] = {name: spec["heads"]["action"]}
    with pytest.raises(SpecError, match=rf"heads\.{name}: head name '{name}' cannot name"):
        load_spec(spec)


@settings(max_examples=60, deadline=None)
@given(name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True))
def test_every_name_the_spec_accepts_builds(name: str) -> None:
    if reserved_name_reason(name) is not None:
        return
    spec = copy.deepcopy(TINY)
    spec["backbone"][0]["name"] = name
    spec["heads"] = {name: spec["heads"]["action"]}
    model = build_model(spec, device="meta")
    assert name in dict(model.backbone.named_children())
    assert name in model.heads


@pytest.mark.parametrize("name", ["wiring", "output", "last_use", "run"])
def test_a_graph_node_named_like_a_graph_attribute_is_refused(name: str) -> None:
    spec = load_spec("tiny_two_pathway").to_dict()
    spec["backbone"][0]["name"] = name
    spec["backbone"][3]["inputs"] = [name]
    spec["heads"]["motion"]["inputs"] = [name]
    with pytest.raises(SpecError, match=rf"backbone\[0\]\.name: node name '{name}' cannot"):
        load_spec(spec)


def test_a_graph_with_ordinary_names_still_builds() -> None:
    spec = load_spec("tiny_two_pathway").to_dict()
    spec["backbone"][0]["name"] = "fast_path"
    spec["backbone"][3]["inputs"] = ["fast_path"]
    spec["heads"]["motion"]["inputs"] = ["fast_path"]
    assert "fast_path" in dict(build_model(spec, device="meta").backbone.named_children())


@pytest.mark.parametrize("name", ["training", "forward", "type", "__class__", "__foo__"])
def test_reserved_names_in_a_file_are_reported_at_their_line(
    write_spec: WriteSpec, name: str
) -> None:
    spec = copy.deepcopy(TINY)
    spec["backbone"][2]["name"] = name
    path = write_spec(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SpecError, match=r"spec\.yaml:\d+:\d+: backbone\[2\]\.name: node name"):
        load_spec(path)


MERGE = """
spec_version: 1
name: merged
version: v1
input: {channels: 3, frames: 4, height: 16, width: 16}
neck: &bn {type: BatchNorm3d, eps: 0.001, momentum: 0.2}
backbone:
  - {type: Conv3d, out_channels: 8, kernel_size: 3, padding: 1}
  - {<<: *bn, eps: 0.01}
  - {<<: [{type: ReLU, inplace: true}, {type: Tanh}]}
heads:
  action: {type: ClassificationHead, num_classes: 5}
"""


def test_merge_keys_merge_with_the_mappings_own_keys_winning(write_spec: WriteSpec) -> None:
    spec = load_spec(write_spec(MERGE), check_shapes=False)
    assert spec["backbone"][1] == {
        "type": "BatchNorm3d",
        "eps": 0.01,
        "momentum": 0.2,
        "affine": True,
        "track_running_stats": True,
    }
    assert spec["backbone"][2] == {"type": "ReLU", "inplace": True}  # the first merged wins


def test_merged_values_are_located_where_they_were_written(write_spec: WriteSpec) -> None:
    text = MERGE.replace("momentum: 0.2", "momentum: -1.0")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text), check_shapes=False)
    located = {p.spec_path: (p.line, p.message) for p in info.value.problems}
    assert set(located) == {"neck.momentum", "backbone[1].momentum"}
    assert located["backbone[1].momentum"][0] == located["neck.momentum"][0] == 5


def test_a_key_written_twice_is_still_reported(write_spec: WriteSpec) -> None:
    path = write_spec(MERGE.replace("{<<: *bn, eps: 0.01}", "{<<: *bn, eps: 0.01, eps: 0.1}"))
    with pytest.raises(SpecError, match=r"key 'eps' appears twice"):
        load_spec(path)


def test_extends_in_a_mapping_is_honoured() -> None:
    child = {"extends": "tiny_resnet", "name": "child", "heads": {"action": {"num_classes": 7}}}
    spec = load_spec(child)
    assert spec.name == "child"
    assert spec["heads"]["action"]["num_classes"] == 7
    assert spec["backbone"] == load_spec("tiny_resnet")["backbone"]


def test_extends_cannot_be_overridden() -> None:
    with pytest.raises(SpecError, match=r"--set extends=v1: extends: `extends` cannot be"):
        load_spec(TINY, overrides=["extends=v1"])


def test_an_overrides_unknown_key_is_blamed_on_the_override(write_spec: WriteSpec) -> None:
    path = write_spec(yaml.safe_dump(TINY, sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides=["heads.action.y=1"])
    assert [str(p) for p in info.value.problems] == [
        "--set heads.action.y=1: heads.action.y: unknown key 'y'; valid keys: dropout, inputs, "
        "name, num_classes, type"
    ]


def test_what_an_override_creates_is_blamed_on_the_override(write_spec: WriteSpec) -> None:
    path = write_spec(yaml.safe_dump(TINY, sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides=["heads.extra.num_classes=3"])
    assert [str(p) for p in info.value.problems] == [
        "--set heads.extra.num_classes=3: heads.extra: missing required key 'type'"
    ]


@pytest.mark.parametrize("how", ["absolute", "parent"])
def test_extends_outside_the_spec_folder_is_refused_unless_allowed(
    tmp_path: Path, how: str
) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text("name: hunter2\nversion: v9\n", encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    target = str(secret) if how == "absolute" else "../secret.yaml"
    child = project / "child.yaml"
    body = yaml.safe_dump({k: v for k, v in TINY.items() if k not in ("name", "version")})
    child.write_text(f"extends: {target}\n" + body, encoding="utf-8")
    with pytest.raises(SpecError, match=r"outside the spec's own folder.*it was not read") as info:
        load_spec(child)
    assert "hunter2" not in str(info.value)
    assert load_spec(child, allow_external_extends=True).name == "hunter2"


def test_extends_inside_the_spec_folder_and_by_name_still_work(tmp_path: Path) -> None:
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "base.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
    child = tmp_path / "child.yaml"
    child.write_text("extends: bases/base.yaml\nname: child\n", encoding="utf-8")
    assert load_spec(child).name == "child"
    named = tmp_path / "named.yaml"
    named.write_text("extends: tiny_resnet\nname: named\n", encoding="utf-8")
    assert load_spec(named).name == "named"
