"""S3D: the spec builds torchvision's architecture, weights, init and outputs included."""

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


def test_s3d_parameter_count_equals_torchvision() -> None:
    check_parameter_count("s3d")


def test_s3d_macs_equal_torchvision_published_figure() -> None:
    check_published_macs("s3d")


def test_s3d_key_map_renames_every_torchvision_key_onto_the_spec() -> None:
    check_key_map_covers_every_key("s3d")


def test_s3d_batch_norms_and_convs_have_torchvision_settings() -> None:
    check_weight_modules_match("s3d")


def test_s3d_default_init_draws_weights_as_torchvision_does() -> None:
    check_init_matches("s3d")


@pytest.mark.slow
def test_s3d_outputs_equal_torchvision_after_import() -> None:
    check_outputs_match("s3d")
