"""Bounded cost: aliases, interpolation, nesting, integers, modules and parameters are refused
beyond ``Limits`` before their cost is paid, with a located problem naming the limit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from video_interpreter import Limits, SpecError, build_model, load_spec, raised_limits
from video_interpreter.spec import DEFAULT_LIMITS, current_limits
from video_interpreter.spec._compose import TOP_LEVEL_KEYS
from video_interpreter.spec._schema import architecture_schema

from .conftest import tiny_spec

WriteSpec = Callable[..., Path]

TINY_YAML = yaml.safe_dump(tiny_spec(), sort_keys=False)


def _alias_bomb(levels: int, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def test_an_alias_bomb_is_refused_at_once_naming_the_values_limit(write_spec: WriteSpec) -> None:
    path = write_spec(TINY_YAML + "description: x\n" + _alias_bomb(levels=8), "bomb.yaml")
    assert path.stat().st_size < 2048

    def load() -> None:
        with pytest.raises(SpecError, match=r"bomb\.yaml:\d+:\d+: .*Limits\.values") as info:
            load_spec(path)
        assert "too many values" in str(info.value)

    assert _timed(load) < 2.0


def test_aliases_within_the_values_limit_still_load(write_spec: WriteSpec) -> None:
    spec = tiny_spec()
    text = yaml.safe_dump(spec, sort_keys=False).replace("heads:", "_: &x 1\nheads:", 1)
    path = write_spec(text)
    with pytest.raises(SpecError, match="unknown key '_'"):  # the alias itself is harmless
        load_spec(path)
    bounded = write_spec(TINY_YAML + _alias_bomb(levels=2, width=3), "small.yaml")
    with pytest.raises(SpecError, match="unknown key 'a0'"):
        load_spec(bounded)


@pytest.mark.parametrize("where", ["heads", "description"])
def test_an_interpolation_bomb_is_refused_before_resolving(where: str) -> None:
    spec = tiny_spec()
    keys: dict[str, Any] = spec["heads"] if where == "heads" else spec
    path = "heads." if where == "heads" else ""
    keys["x0"] = "abcdefgh"
    for level in range(1, 10):
        keys[f"x{level}"] = ("${" + f"{path}x{level - 1}" + "}") * 10

    def load() -> None:
        with pytest.raises(SpecError, match=r"(unknown key 'x\d'|Limits\.string_chars)"):
            load_spec(spec)

    assert _timed(load) < 2.0


def test_unknown_top_level_keys_are_refused_before_interpolation() -> None:
    spec = tiny_spec()
    spec["descripton"] = "${name}"
    with pytest.raises(SpecError, match=r"unknown key 'descripton'.*did you mean 'description'"):
        load_spec(spec)


def test_the_top_level_keys_checked_before_resolving_are_the_schemas() -> None:
    assert set(TOP_LEVEL_KEYS) == set(architecture_schema()["properties"])


def test_references_to_containers_count_every_copy_against_the_values_limit() -> None:
    spec = tiny_spec()
    spec["description"] = "lists"
    spec["heads"]["action"]["name"] = "action"
    doubling: dict[str, Any] = {"l0": list(range(9))}
    for level in range(1, 8):
        doubling[f"l{level}"] = ["${heads.extra.l" + str(level - 1) + "}"] * 9
    spec["heads"]["extra"] = doubling
    with pytest.raises(SpecError, match=r"heads\.extra.*Limits\.values"):
        load_spec(spec)


def test_long_reference_chains_are_refused_naming_the_nesting_limit() -> None:
    spec = tiny_spec()
    chain: dict[str, Any] = {"k0": 1}
    for index in range(1, 60):
        chain[f"k{index}"] = "${heads.c.k" + str(index - 1) + "}"
    spec["heads"]["c"] = chain
    with pytest.raises(SpecError, match=r"too many references.*Limits\.nesting"):
        load_spec(spec)


@pytest.mark.parametrize("text", ["${heads.${name}}", "x ${a.${b.${name}}}"])
def test_nested_interpolations_are_refused_before_resolving(text: str) -> None:
    spec = tiny_spec()
    spec["description"] = text
    with pytest.raises(SpecError, match=r"description: cannot read this interpolation"):
        load_spec(spec)


def test_relative_and_list_references_still_resolve() -> None:
    spec = tiny_spec()
    spec["heads"]["action"]["num_classes"] = "${backbone[0].out_channels}"
    spec["heads"]["action"]["dropout"] = 0.5
    spec["description"] = "${.name} ${version}"
    loaded = load_spec(spec)
    assert loaded["heads"]["action"]["num_classes"] == 8
    assert loaded.description == "tiny v1"


@pytest.mark.parametrize("depth", [40, 400, 5000])
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_a_located_problem_not_a_recursion_error(
    write_spec: WriteSpec, depth: int, suffix: str
) -> None:
    spec = tiny_spec()
    spec["description"] = "placeholder"
    text = json.dumps(spec).replace('"placeholder"', "[" * depth + "]" * depth)
    path = write_spec(text, f"deep{suffix}")
    # libyaml refuses flow nesting past its own bound while reading ahead: also located
    refused = r"(nest 33 deep.*Limits\.nesting|exceeded maximum nesting depth)"
    with pytest.raises(SpecError, match=rf"deep\{suffix}:1:\d+: .*{refused}"):
        load_spec(path)


def test_deep_nesting_through_aliases_is_refused(write_spec: WriteSpec) -> None:
    nested = "[" * 20 + "]" * 20
    text = TINY_YAML + f"a: &a {nested}\nb: &b [*a]\nc: [[[[[[[[[[[[[[*b]]]]]]]]]]]]]]\n"
    with pytest.raises(SpecError, match=r"Limits\.nesting"):
        load_spec(write_spec(text))


def test_deep_mappings_and_cyclic_mappings_are_refused() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(3000):
        inner["a"] = {}
        inner = inner["a"]
    spec = tiny_spec()
    spec["description"] = deep
    with pytest.raises(SpecError, match=r"Limits\.nesting"):
        load_spec(spec)
    cyclic = tiny_spec()
    cyclic["self"] = cyclic
    with pytest.raises(SpecError, match=r"Limits\.nesting"):
        load_spec(cyclic)


def test_nesting_at_the_limit_is_an_ordinary_problem(write_spec: WriteSpec) -> None:
    spec = tiny_spec()
    spec["description"] = "placeholder"
    depth = DEFAULT_LIMITS.nesting - 1  # the top mapping is the first level
    text = json.dumps(spec).replace('"placeholder"', "[" * depth + "]" * depth)
    for suffix in (".yaml", ".json"):
        with pytest.raises(SpecError, match=r"description: expected string, got array"):
            load_spec(write_spec(text, f"ok{suffix}"))


def test_deep_override_keys_and_values_are_refused() -> None:
    with pytest.raises(SpecError, match=r"--set .*Limits\.nesting"):
        load_spec(tiny_spec(), overrides=["description=" + "[" * 100 + "]" * 100])
    with pytest.raises(SpecError, match=r"--set .*Limits\.nesting"):
        load_spec(tiny_spec(), overrides=[".".join(["a"] * 100) + "=1"])
    bomb = "{" + _alias_bomb(6).strip().replace("\n", ", ") + "}"
    with pytest.raises(SpecError, match=r"Limits\.values"):
        load_spec(tiny_spec(), overrides=["description=" + bomb])


def test_an_oversized_file_is_refused_before_it_is_read(write_spec: WriteSpec) -> None:
    path = write_spec(TINY_YAML + "#" * 2000 + "\n")
    with pytest.raises(SpecError, match=r"has 2,\d+ bytes, over the limit of 1,000 .*file_bytes"):
        load_spec(path, limits=Limits(file_bytes=1000))


def test_modules_are_counted_while_building_too() -> None:
    spec = tiny_spec()  # 3 blocks by the document, but each block is several modules
    spec["backbone"].insert(1, {"type": "ResStage", "depth": 3, "out_channels": 8})
    tight = Limits(modules=8)
    assert load_spec(spec, limits=tight).name == "tiny"  # validation builds no module
    with pytest.raises(SpecError, match=r"too many modules.*Limits\.modules"):
        build_model(spec, device="meta", limits=tight)
    assert build_model(spec, device="meta").spec.name == "tiny"


@pytest.mark.parametrize(
    "node",
    [
        {"type": "Repeat", "times": 1_000_000, "layer": {"type": "ReLU"}},
        {"type": "ResStage", "depth": 100_000, "out_channels": 8},
        {
            "type": "Repeat",
            "times": 1000,
            "layer": {"type": "Repeat", "times": 1000, "layer": {"type": "ReLU"}},
        },
    ],
)
def test_repeats_and_depths_beyond_the_modules_limit_are_refused_before_building(
    node: dict[str, Any],
) -> None:
    spec = tiny_spec()
    spec["backbone"].insert(1, node)

    def load() -> None:
        with pytest.raises(SpecError, match=r"backbone: backbone asks for [\d,]+ blocks.*modules"):
            load_spec(spec)
        with pytest.raises(SpecError, match=r"Limits\.modules"):
            build_model(spec, device="meta")

    assert _timed(load) < 2.0


def test_parameters_are_counted_on_meta_and_refused_before_allocation() -> None:
    spec = tiny_spec(out_channels=1_048_576)
    spec["backbone"].insert(1, {"type": "Conv3d", "out_channels": 1_048_576, "kernel_size": 3})
    with pytest.raises(SpecError, match=r"parameters \(.* GiB in float32\).*Limits\.parameters"):
        build_model(spec)
    with pytest.raises(SpecError, match=r"Limits\.parameters"):
        build_model(spec, device="meta")


def test_a_raised_parameters_limit_lets_the_same_spec_through_on_meta() -> None:
    spec = tiny_spec(out_channels=8)
    small = Limits(parameters=100)
    with pytest.raises(SpecError, match=r"over the limit of 100 \(Limits\.parameters\)"):
        build_model(spec, device="meta", limits=small)
    with raised_limits(parameters=100), pytest.raises(SpecError, match=r"Limits\.parameters"):
        build_model(spec, device="meta")
    assert build_model(spec, device="meta", limits=Limits()).spec.name == "tiny"


@pytest.mark.parametrize("value", [10**21, -(10**21), 2**63, DEFAULT_LIMITS.integer + 1])
def test_integers_beyond_the_limit_are_refused_cleanly(value: int) -> None:
    refused = r"out_channels: -?\d+ is too large.*Limits\.integer"
    with pytest.raises(SpecError, match=refused) as info:
        load_spec(tiny_spec(out_channels=value))
    assert "frame #" not in str(info.value)


def test_limits_are_validated_and_replaced_by_name() -> None:
    assert Limits().replace(nesting=8).nesting == 8
    with pytest.raises(TypeError, match=r"unknown limit 'nodes'; known limits: .*parameters"):
        Limits().replace(nodes=1)
    with pytest.raises(ValueError, match=r"Limits\.values must be a positive integer, got 0"):
        Limits(values=0)


def test_raised_limits_applies_inside_its_block_only() -> None:
    assert current_limits() is DEFAULT_LIMITS
    with raised_limits(values=20) as inside:
        assert current_limits() is inside
        assert inside.values == 20
        with pytest.raises(SpecError, match=r"Limits\.values"):
            load_spec(tiny_spec())
    assert current_limits() is DEFAULT_LIMITS
    assert load_spec(tiny_spec()).name == "tiny"


def test_a_spec_cached_under_loose_limits_is_checked_again_under_strict_ones(
    write_spec: WriteSpec,
) -> None:
    path = write_spec(TINY_YAML)
    assert load_spec(path).name == "tiny"
    with pytest.raises(SpecError, match=r"Limits\.values"):
        load_spec(path, limits=Limits(values=20))


@pytest.mark.parametrize("axis", ["frames", "height", "width"])
def test_an_input_clip_beyond_the_size_limit_is_refused_at_its_axis(axis: str) -> None:
    spec = load_spec("tiny_mvit").to_dict()
    spec["input"][axis] = 131_072  # MViT would build a table of 32,768 x 32,768 for it
    with pytest.raises(SpecError, match=rf"input\.{axis}: {axis} 131072 is too large.*input_size"):
        load_spec(spec)
    with raised_limits(input_size=2**24):
        assert load_spec(spec, check_shapes=False)["input"][axis] == 131_072


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_many_values_or_a_long_string_are_refused_in_either_format(
    write_spec: WriteSpec, suffix: str
) -> None:
    spec = tiny_spec()
    spec["description"] = list(range(2000))
    text = json.dumps(spec) if suffix == ".json" else yaml.safe_dump(spec)
    path = write_spec(text, f"many{suffix}")
    with pytest.raises(SpecError, match=r"too many values.*over the limit of 1,000"):
        load_spec(path, limits=Limits(values=1000))
    spec["description"] = "x" * 2000
    text = json.dumps(spec) if suffix == ".json" else yaml.safe_dump(spec, width=10**6)
    path = write_spec(text, f"long{suffix}")
    with pytest.raises(SpecError, match=r"a string of 2,000 characters.*Limits\.string_chars"):
        load_spec(path, limits=Limits(string_chars=1000))
