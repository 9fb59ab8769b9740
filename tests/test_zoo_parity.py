"""torchvision's six video models: each spec builds the same architecture (parameters, published
MACs, weight modules and their settings, init), and torchvision's weights import strictly and give
the same outputs. Architecture-specific checks live in tests/test_zoo_<arch>.py."""

from __future__ import annotations

import pytest
import torch

from video_interpreter.zoo import list_models

from .zoo_parity import (
    check_init_matches,
    check_key_map_covers_every_key,
    check_outputs_match,
    check_parameter_count,
    check_published_macs,
    check_weight_modules_match,
)

ARCHS = list_models(library="torchvision")


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
def test_init_draws_weights_as_torchvision_does(arch: str) -> None:
    check_init_matches(arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_outputs_equal_torchvision_after_import(arch: str) -> None:
    torch.manual_seed(0)
    check_outputs_match(arch)
