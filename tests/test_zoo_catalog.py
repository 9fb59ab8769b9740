"""The zoo metadata is true: every entry has its spec and key map, and its parameter and MAC
counts and clip are those of the spec built on the meta device."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from video_interpreter import RegistryError, build_model, list_models, model_info
from video_interpreter.zoo import ZOO, Library, known_key_maps


def test_every_entry_has_a_spec_and_a_key_map() -> None:
    shipped = set(list_models())
    for entry in ZOO.values():
        assert entry.name in shipped
        assert entry.key_map_name in known_key_maps(entry.library)


def test_list_models_filters_by_pattern_and_library() -> None:
    assert list_models("x3d_*") == ["x3d_l", "x3d_m", "x3d_s", "x3d_xs"]
    assert list_models("x3d_*", library="torchvision") == []
    libraries: tuple[Library, ...] = ("pytorchvideo", "torchvision", "transformers")
    assert {name for lib in libraries for name in list_models(library=lib)} == set(ZOO)
    assert "v1" in list_models()


def test_unknown_name_says_what_is_known() -> None:
    with pytest.raises(RegistryError, match=r"did you mean 'r3d_18'"):
        model_info("r3d_81")


@pytest.mark.slow  # builds every zoo spec on the meta device and counts its MACs
@pytest.mark.parametrize("name", list(ZOO))
def test_counts_match_the_spec(name: str) -> None:
    entry = model_info(name)
    model = build_model(name, device="meta")
    assert tuple(model.spec.input) == entry.clip
    assert sum(p.numel() for p in model.parameters()) == entry.parameters
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.empty((1, *entry.clip), device="meta"))
    assert counter.get_total_flops() // 2 == entry.macs
