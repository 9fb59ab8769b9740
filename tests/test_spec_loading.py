"""Loading specs: YAML and JSON, extends, overrides, interpolation, lookup, immutability."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from torch import nn

from video_interpreter import ArchitectureSpec, SpecError, build_model, load_spec
from video_interpreter.layers import LayerRegistry

from .conftest import TINY_SPEC

WriteSpec = Callable[..., Path]

BASE = """
spec_version: 1
name: base
version: v1
description: the base
input: {channels: 3, frames: 4, height: 16, width: 16}
backbone:
  - {type: Conv3d, out_channels: 8, kernel_size: 3, padding: 1}
  - {type: ReLU}
neck: {type: GlobalAvgPool3d}
heads:
  action: {type: ClassificationHead, num_classes: 5}
"""


def test_yaml_and_json_files_load_to_the_same_spec(write_spec: WriteSpec) -> None:
    from_yaml = load_spec(write_spec(BASE))
    from_json = load_spec(write_spec(json.dumps(from_yaml.to_dict()), "spec.json"))
    assert from_json == from_yaml
    assert from_json.fingerprint == from_yaml.fingerprint


def test_a_mapping_loads_like_a_file(write_spec: WriteSpec) -> None:
    assert load_spec(TINY_SPEC).to_dict()["backbone"][0]["out_channels"] == 8


def test_extends_merges_the_base_and_replaces_lists_whole(write_spec: WriteSpec) -> None:
    write_spec(BASE, "base.yaml")
    child = write_spec(
        """
        extends: base.yaml
        name: child
        backbone:
          - {type: Conv3d, out_channels: 4, kernel_size: 1}
        heads:
          action: {num_classes: 7}
        """,
        "child.yaml",
    )
    spec = load_spec(child)
    assert spec.name == "child"
    assert spec.description == "the base"
    assert [node["type"] for node in spec["backbone"]] == ["Conv3d"]
    assert spec["heads"]["action"]["num_classes"] == 7
    assert spec["heads"]["action"]["type"] == "ClassificationHead"


def test_extends_follows_a_chain_of_files(write_spec: WriteSpec, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_spec(BASE, "base.yaml")
    write_spec("extends: ../base.yaml\nversion: v2\n", "sub/middle.yaml")
    top = write_spec("extends: sub/middle.yaml\nname: top\n", "top.yaml")
    spec = load_spec(top)
    assert (spec.name, spec.version, spec.description) == ("top", "v2", "the base")


def test_an_extends_cycle_is_reported_with_the_chain(write_spec: WriteSpec) -> None:
    write_spec("extends: b.yaml\nname: a\n", "a.yaml")
    b = write_spec("extends: a.yaml\nname: b\n", "b.yaml")
    with pytest.raises(SpecError, match=r"`extends` cycle: b.yaml -> a.yaml -> b.yaml"):
        load_spec(b)


def test_a_missing_base_is_reported_at_the_extends_line(write_spec: WriteSpec) -> None:
    path = write_spec("name: x\nextends: nowhere.yaml\n")
    with pytest.raises(SpecError, match=r"nowhere\.yaml") as info:
        load_spec(path)
    assert (info.value.problems[0].line, info.value.problems[0].column) == (2, 10)


def test_overrides_change_nested_values_and_list_items(write_spec: WriteSpec) -> None:
    spec = load_spec(
        write_spec(BASE),
        overrides=[
            "heads.action.num_classes=10",
            "backbone[0].out_channels=6",
            "backbone.1.type=GELU",
        ],
    )
    assert spec["heads"]["action"]["num_classes"] == 10
    assert spec["backbone"][0]["out_channels"] == 6
    assert spec["backbone"][1]["type"] == "GELU"


def test_a_malformed_override_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"key\.path=value"):
        load_spec(TINY_SPEC, overrides=["heads.action.num_classes"])


def test_interpolation_refers_to_other_values_of_the_spec(write_spec: WriteSpec) -> None:
    text = BASE.replace("num_classes: 5", "num_classes: '${input.frames}'")
    assert load_spec(write_spec(text))["heads"]["action"]["num_classes"] == 4


def test_an_interpolation_to_a_missing_key_is_a_spec_error(write_spec: WriteSpec) -> None:
    text = BASE.replace("num_classes: 5", "num_classes: '${input.depth}'")
    with pytest.raises(SpecError, match="cannot resolve interpolation"):
        load_spec(write_spec(text))


def test_environment_resolvers_are_refused(write_spec: WriteSpec) -> None:
    text = BASE.replace("description: the base", "description: ${oc.env:HOME}")
    with pytest.raises(
        SpecError, match=r"resolver interpolation \$\{oc.env:HOME\} is not allowed"
    ) as info:
        load_spec(write_spec(text))
    assert info.value.problems[0].line == 4


@pytest.mark.filterwarnings("ignore:register_new_resolver:UserWarning")
def test_a_resolver_registered_by_other_code_never_runs(write_spec: WriteSpec) -> None:
    calls: list[str] = []

    def probe() -> str:
        calls.append("ran")
        return "x"

    OmegaConf.register_new_resolver("vi_test_probe", probe, replace=True)
    text = BASE.replace("description: the base", "description: ${vi_test_probe:}")
    with pytest.raises(SpecError, match="resolver interpolation"):
        load_spec(write_spec(text))
    with pytest.raises(SpecError, match="resolver interpolation"):
        load_spec(TINY_SPEC, overrides=["description=${vi_test_probe:}"])
    assert calls == []


def test_fingerprint_covers_the_architecture_not_its_labels() -> None:
    base = load_spec(TINY_SPEC)
    relabelled = load_spec(TINY_SPEC, overrides=["name=other", "version=v9", "description=x"])
    wider = load_spec(TINY_SPEC, overrides=["backbone[0].out_channels=9"])
    assert relabelled.fingerprint == base.fingerprint
    assert wider.fingerprint != base.fingerprint


def test_defaults_are_written_out_so_implicit_and_explicit_specs_match() -> None:
    explicit = load_spec(TINY_SPEC, overrides=["backbone[0].stride=1", "backbone[2].inplace=false"])
    implicit = load_spec(TINY_SPEC)
    assert implicit["backbone"][0]["stride"] == 1
    assert implicit == explicit
    assert implicit.fingerprint == explicit.fingerprint


def test_a_spec_is_immutable_and_to_dict_is_a_copy() -> None:
    spec = load_spec(TINY_SPEC)
    with pytest.raises(TypeError):
        spec["heads"]["action"]["num_classes"] = 3
    copy = spec.to_dict()
    copy["heads"]["action"]["num_classes"] = 3
    assert spec["heads"]["action"]["num_classes"] == 5


def test_a_spec_round_trips_through_its_yaml(write_spec: WriteSpec) -> None:
    spec = load_spec("tiny_resnet")
    again = load_spec(write_spec(spec.to_yaml()))
    assert again == spec
    assert again.fingerprint == spec.fingerprint


def test_specs_are_found_by_name_and_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no architectures/ here: the packaged copy is used
    model = build_model("configs/v1.yaml", device="meta")
    assert isinstance(model.spec, ArchitectureSpec)
    assert load_spec("v1").fingerprint == model.spec.fingerprint


def test_an_unknown_spec_name_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"spec 'v7' not found .*known specs: .*v1"):
        load_spec("v7")


def test_a_directory_or_unreadable_path_is_a_spec_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(bad)
    if os.name == "posix":
        assert bad.exists()  # nothing was touched


def test_keys_that_look_like_unicode_digits_are_not_list_indices() -> None:
    spec = dict(TINY_SPEC, heads={"²": {"type": "ClassificationHead", "num_classes": "${a.b"}})
    with pytest.raises(SpecError, match="cannot load"):
        load_spec(spec)


def test_an_edited_spec_file_is_read_again_even_at_the_same_size_and_time(
    write_spec: WriteSpec,
) -> None:
    path = write_spec(BASE)
    stamp = path.stat()
    assert load_spec(path)["heads"]["action"]["num_classes"] == 5
    path.write_text(path.read_text().replace("num_classes: 5", "num_classes: 7"))
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert path.stat().st_size == stamp.st_size
    assert load_spec(path)["heads"]["action"]["num_classes"] == 7


def test_an_edited_base_reaches_the_spec_that_extends_it(write_spec: WriteSpec) -> None:
    base = write_spec(BASE, "base.yaml")
    child = write_spec("extends: base.yaml\nname: child\n", "child.yaml")
    assert load_spec(child).description == "the base"
    base.write_text(base.read_text().replace("the base", "the new base"))
    assert load_spec(child).description == "the new base"
    base.unlink()
    with pytest.raises(SpecError, match=r"`extends` names 'base\.yaml', which was not found"):
        load_spec(child)


def test_specs_validate_against_their_own_registry_however_many_registries_come_and_go() -> None:
    """Registries made and dropped in a loop (their ids reused) never see another's schema."""
    for index in range(300):
        registry = LayerRegistry(entry_point_group=None)
        name = f"Layer{index % 7}"
        registry.register(
            type(name, (nn.Identity,), {}), name=name, params={}, output=lambda x, **_: x
        )
        node = {"type": name}
        data = {k: v for k, v in TINY_SPEC.items() if k != "neck"}
        spec = load_spec({**data, "backbone": [node], "heads": {"out": node}}, registry=registry)
        assert spec["backbone"][0]["type"] == name
