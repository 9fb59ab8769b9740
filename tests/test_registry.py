"""The layer registry: refusals, suggestions, user layers, entry points, every layer's schema."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from torch import nn

from video_interpreter import (
    LAYERS,
    RegistrationError,
    RegistryError,
    build_model,
    channels,
    register_layer,
)
from video_interpreter.layers import LayerRegistry

from .conftest import TINY_SPEC


class PointwiseConv3d(nn.Conv3d):
    """A 1x1x1 convolution (a user's own layer)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)


@pytest.fixture
def restore_default_registry() -> Iterator[None]:
    """Undo registrations into the shared default registry (the schema is assembled from it)."""
    saved = dict(LAYERS._entries)
    yield
    LAYERS._entries.clear()
    LAYERS._entries.update(saved)
    LAYERS._derived.clear()


@pytest.mark.usefixtures("restore_default_registry")
def test_a_users_layer_is_usable_by_name_in_a_spec() -> None:
    register_layer(
        "TestPointwiseConv3d",
        params={"out_channels": {"type": "integer", "minimum": 1}},
        infer={"in_channels": channels},
    )(PointwiseConv3d)
    spec = dict(TINY_SPEC, backbone=[{"type": "TestPointwiseConv3d", "out_channels": 6}])
    model = build_model(spec)
    layer = model.get_submodule("backbone.0")
    assert isinstance(layer, PointwiseConv3d)
    assert layer.in_channels == 3
    assert model(torch.randn(2, 3, 4, 16, 16))["action"].shape == (2, 5)


def test_registering_the_same_object_twice_is_fine_another_is_refused() -> None:
    registry = LayerRegistry(entry_point_group=None)
    first = registry.register(nn.ReLU, name="Act", params={"inplace": {"type": "boolean"}})
    assert registry.register(nn.ReLU, name="Act", params={"inplace": {"type": "boolean"}}) is first
    with pytest.raises(RegistrationError, match=r"'Act' is already registered to .*ReLU.*GELU"):
        registry.register(nn.GELU, name="Act")


def test_the_default_registry_refuses_to_rebind_a_builtin_name() -> None:
    with pytest.raises(RegistrationError, match="'Conv3d' is already registered"):
        register_layer("Conv3d", params={})(nn.Identity)


def test_a_schema_naming_an_argument_the_layer_lacks_is_refused() -> None:
    registry = LayerRegistry(entry_point_group=None)
    with pytest.raises(RegistrationError, match=r"names 'kernel', which .* does not accept"):
        registry.register(
            PointwiseConv3d, params={"kernel": {"type": "integer"}}, infer={"in_channels": channels}
        )


def test_a_required_argument_outside_the_schema_is_refused() -> None:
    registry = LayerRegistry(entry_point_group=None)
    with pytest.raises(RegistrationError, match="'out_channels' is neither in the schema nor"):
        registry.register(PointwiseConv3d, infer={"in_channels": channels})


def test_defaults_come_from_the_signature() -> None:
    assert LAYERS.get("Conv3d").defaults()["stride"] == 1
    assert LAYERS.get("Conv3d").required == ("out_channels", "kernel_size")


def test_an_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(RegistryError, match="unknown layer type 'Conv2plus1D': did you mean"):
        LAYERS.get("Conv2plus1D")


def test_entry_points_register_third_party_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "vi_thirdparty_layers.py"
    package.write_text(
        textwrap.dedent("""
        from torch import nn

        def register(registry):
            registry.register(nn.Tanh, name="ThirdPartyTanh", params={})
    """)
    )
    dist = tmp_path / "vi_thirdparty-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vi-thirdparty\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[vi_test.layers]\nthirdparty = vi_thirdparty_layers:register\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = LayerRegistry(entry_point_group="vi_test.layers")
    assert "ThirdPartyTanh" in registry
    assert registry.get("ThirdPartyTanh").obj is nn.Tanh
    sys.modules.pop("vi_thirdparty_layers", None)


def test_a_broken_entry_point_names_itself() -> None:
    registry = LayerRegistry(entry_point_group="vi_test.broken")
    registry._entry_points_loaded = False
    from importlib import metadata

    broken = metadata.EntryPoint("oops", "vi_module_that_does_not_exist:go", "vi_test.broken")

    def entry_points(group: str) -> list[metadata.EntryPoint]:
        return [broken]

    original = metadata.entry_points
    metadata.entry_points = entry_points  # type: ignore[assignment]
    try:
        with pytest.raises(RegistrationError, match=r"entry point 'oops'.*failed to import"):
            registry.names()
    finally:
        metadata.entry_points = original


@pytest.mark.parametrize("name", LAYERS.names())
def test_every_registered_layer_has_a_valid_schema_whose_defaults_validate(name: str) -> None:
    entry = LAYERS.get(name)
    jsonschema.Draft202012Validator.check_schema(entry.schema)
    for key, default in entry.defaults().items():
        param: dict[str, Any] = dict(entry.params[key])
        if "$ref" in str(param):
            continue  # nested nodes are validated through the whole-spec schema
        errors = list(jsonschema.Draft202012Validator(param).iter_errors(default))
        assert not errors, f"{name}.{key}: default {default!r} does not fit its own schema"
    assert entry.description, f"{name} needs a docstring or description"


def test_the_layers_command_says_what_each_layer_takes(capsys: pytest.CaptureFixture[str]) -> None:
    from video_interpreter.cli import main

    assert main(["layers"]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert rows["Conv3d"] == "clip"
    assert rows["LayerNorm"] == "grid|tokens|vector"
    assert rows["ReLU"] == "any"
    assert rows["Concatenate"] == "merge"
