"""R3D-18, MC3-18, R(2+1)D-18: each spec builds torchvision's architecture, weights, init and
outputs included."""

from __future__ import annotations

import pytest

from .zoo_parity import (
    check_init_matches,
    check_key_map_covers_every_key,
    check_outputs_match,
    check_parameter_count,
    check_published_macs,
    check_weight_modules_match,
)

ARCHS = ["r3d_18", "mc3_18", "r2plus1d_18"]


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_count_equals_torchvision(arch: str) -> None:
    check_parameter_count(arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_macs_equal_torchvision_published_figure(arch: str) -> None:
    check_published_macs(arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_key_map_renames_every_torchvision_key_onto_the_spec(arch: str) -> None:
    check_key_map_covers_every_key(arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_weight_module_has_torchvision_settings(arch: str) -> None:
    check_weight_modules_match(arch)


@pytest.mark.parametrize("arch", ARCHS)
def test_resnet_init_draws_weights_as_torchvision_does(arch: str) -> None:
    check_init_matches(arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_equal_torchvision_after_import(arch: str) -> None:
    check_outputs_match(arch)
