"""load_weights: strict by default, every key reported, intended changes declared."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from video_interpreter.checkpoint import (
    LoadError,
    LoadReport,
    ShapeMismatch,
    load_weights,
    save_model,
)
from video_interpreter.errors import CheckpointError
from video_interpreter.model import build_meta, build_model
from video_interpreter.spec import load_spec

from .test_checkpoint import outputs, tiny_model, tiny_spec


def _equal_state(a: nn.Module, b: nn.Module, prefix: str = "") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if k.startswith(prefix))


def test_matching_weights_load_and_every_key_is_reported_loaded(tmp_path: Path) -> None:
    source = tiny_model(seed=0)
    saved = save_model(source, tmp_path / "tiny.pth")
    target = tiny_model(seed=1)
    report = load_weights(target, saved.path)
    assert isinstance(report, LoadReport)
    assert report.ok
    assert report.loaded == tuple(source.state_dict())
    assert (report.missing, report.unexpected, report.mismatched) == ((), (), ())
    torch.testing.assert_close(outputs(target), outputs(source))


def test_strict_failure_raises_load_error_with_the_report_and_leaves_the_model_alone() -> None:
    source = tiny_model(seed=0).state_dict()
    source["heads.extra.weight"] = torch.zeros(3)
    del source["backbone.0.bias"]
    target = tiny_model(seed=1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(LoadError, match="weights do not fit the model") as caught:
        load_weights(target, source)
    assert isinstance(caught.value, CheckpointError)
    report = caught.value.report
    assert report.missing == ("backbone.0.bias",)
    assert report.unexpected == ("heads.extra.weight",)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_report_prints_keys_grouped_by_module() -> None:
    source = tiny_model(seed=0).state_dict()
    source["heads.action.fc.weight"] = torch.zeros(9, 4)
    del source["backbone.1.running_var"]
    report = load_weights(tiny_model(seed=1), source, strict=False)
    text = str(report)
    assert text.splitlines()[0] == (
        "state dict -> tiny/t1: 7 loaded, 1 missing, 0 unexpected, 1 shape mismatch"
    )
    assert "  backbone.0    2 loaded" in text
    assert "  backbone.1    4 loaded, 1 missing" in text
    assert "      missing         backbone.1.running_var (4,)" in text
    assert "heads.action.fc.weight: checkpoint (9, 4), model (5, 4)" in text
    assert report.mismatched == (ShapeMismatch("heads.action.fc.weight", (9, 4), (5, 4)),)


def test_non_strict_load_keeps_the_models_own_values_where_the_source_does_not_fit() -> None:
    source = tiny_model(seed=0).state_dict()
    source["heads.action.fc.weight"] = torch.zeros(9, 4)
    target = tiny_model(seed=1)
    kept = target.get_parameter("heads.action.fc.weight").detach().clone()
    load_weights(target, source, strict=False)
    assert torch.equal(target.get_parameter("heads.action.fc.weight"), kept)
    assert torch.equal(target.get_parameter("backbone.0.weight"), source["backbone.0.weight"])


def test_new_head_is_declared_with_reinit_and_reported(tmp_path: Path) -> None:
    saved = save_model(tiny_model(seed=0), tmp_path / "tiny.pth")
    target = build_model(tiny_spec(num_classes=7))
    report = load_weights(target, saved.path, reinit=["heads.action.*"], allow_spec_change=True)
    assert report.reinitialized == ("heads.action.fc.weight", "heads.action.fc.bias")
    assert report.spec_diff is not None
    assert "num_classes: 7" in report.spec_diff
    text = str(report)
    assert "heads.action.fc.weight checkpoint (5, 4) -> model (7, 4)" in text
    assert _equal_state(target, tiny_model(seed=0), "backbone.")
    assert target(torch.randn(2, 3, 4, 16, 16))["action"].shape == (2, 7)


def test_reinit_on_a_meta_model_initialises_only_the_declared_tensor(tmp_path: Path) -> None:
    source = tiny_model(seed=0)
    saved = save_model(source, tmp_path / "tiny.pth")
    target = build_meta(load_spec(tiny_spec()))
    report = load_weights(target, saved.path, reinit=["heads.action.fc.weight"])
    assert report.reinitialized == ("heads.action.fc.weight",)
    assert not any(t.is_meta for t in target.state_dict().values())
    # The bias shares the module with the fresh weight and still comes from the checkpoint.
    bias = "heads.action.fc.bias"
    assert torch.equal(target.get_parameter(bias), source.get_parameter(bias))
    weight = target.get_parameter("heads.action.fc.weight")
    assert bool(torch.isfinite(weight).all())
    assert not torch.equal(weight, source.get_parameter("heads.action.fc.weight"))


def test_reinit_pattern_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"reinit pattern 'heads\.acton\.\*' matches no key"):
        load_weights(tiny_model(), tiny_model().state_dict(), reinit=["heads.acton.*"])


def test_a_checkpoint_of_another_architecture_is_refused_with_a_spec_diff(tmp_path: Path) -> None:
    saved = save_model(tiny_model(dropout=0.0), tmp_path / "tiny.pth")
    target = tiny_model(dropout=0.5)
    with pytest.raises(CheckpointError, match="refusing to load weights of a different") as caught:
        load_weights(target, saved.path)
    assert "-  action: {type: ClassificationHead, num_classes: 5, dropout: 0.0}" in str(
        caught.value
    )
    report = load_weights(target, saved.path, allow_spec_change=True)
    assert report.ok
    assert report.spec_diff is not None


def test_distributed_and_compiled_prefixes_are_stripped_and_noted() -> None:
    source = tiny_model(seed=0)
    wrapped = {f"module._orig_mod.{k}": v for k, v in source.state_dict().items()}
    target = tiny_model(seed=1)
    report = load_weights(target, wrapped)
    assert report.notes == (
        "removed '_orig_mod.' (torch.compile) from 9 keys",
        "stripped prefix 'module.' (DistributedDataParallel / DataParallel) from 9 keys",
    )
    assert "note: stripped prefix 'module.'" in str(report)
    torch.testing.assert_close(outputs(target), outputs(source))


def test_weights_load_into_a_compiled_model_and_from_its_state_dict() -> None:
    source = tiny_model(seed=0)
    compiled: nn.Module = torch.compile(source)  # type: ignore[assignment]  # never run
    target = tiny_model(seed=1)
    wrapped: nn.Module = torch.compile(target)  # type: ignore[assignment]
    assert compiled.state_dict().keys() != source.state_dict().keys()  # "_orig_mod." prefix
    load_weights(wrapped, compiled.state_dict())
    torch.testing.assert_close(outputs(target), outputs(source))


def test_key_map_renames_and_drops_source_keys() -> None:
    source = {f"net.{k}": v for k, v in tiny_model(seed=0).state_dict().items()}
    source["net.aux.weight"] = torch.ones(2)

    def rename(key: str) -> str | None:
        return None if key.startswith("net.aux.") else key.removeprefix("net.")

    target = tiny_model(seed=1)
    report = load_weights(target, source, key_map=rename)
    assert report.remapped["net.backbone.0.weight"] == "backbone.0.weight"
    assert report.dropped == ("net.aux.weight",)
    assert "renamed         net.heads.action.fc.bias -> heads.action.fc.bias" in str(report)
    mapping = {"net.backbone.0.weight": "backbone.0.weight"}
    with pytest.raises(LoadError, match="8 missing, 9 unexpected"):
        load_weights(tiny_model(seed=1), source, key_map=mapping)


def test_key_map_collisions_are_refused() -> None:
    with pytest.raises(CheckpointError, match="key_map sends both"):
        load_weights(tiny_model(), tiny_model().state_dict(), key_map=lambda key: "same")


def test_two_dimensional_weights_are_inflated_when_declared() -> None:
    conv2d = nn.Conv2d(3, 4, kernel_size=3, padding=1)
    source = tiny_model(seed=0).state_dict()
    source["backbone.0.weight"] = conv2d.weight.detach()
    target = tiny_model(seed=1)
    with pytest.raises(LoadError, match="1 shape mismatch"):
        load_weights(target, source)
    report = load_weights(target, source, inflate=["backbone.0.*"])
    assert report.inflated == ("backbone.0.weight",)
    conv = target.get_submodule("backbone.0")
    assert isinstance(conv, nn.Conv3d)
    inflated = conv.weight
    assert inflated.shape == (4, 3, 3, 3, 3)
    torch.testing.assert_close(inflated.sum(dim=2), conv2d.weight.detach())
    # A clip of identical frames gives the 2D convolution's response (I3D's bootstrapping).
    image = torch.randn(1, 3, 16, 16)
    frames = image.unsqueeze(2).expand(-1, -1, 4, -1, -1)
    response = conv(frames)[:, :, 1]  # an inner frame: its neighbours are equal
    expected = nn.functional.conv2d(image, conv2d.weight, conv.bias, padding=1)
    torch.testing.assert_close(response, expected, atol=1e-5, rtol=1e-5)


def test_in_memory_source_cannot_be_verified() -> None:
    with pytest.raises(CheckpointError, match="in-memory dict"):
        load_weights(tiny_model(), tiny_model().state_dict(), verify="0" * 64)


def test_a_meta_model_takes_the_checkpoint_tensors_in_its_own_dtype(tmp_path: Path) -> None:
    saved = save_model(tiny_model().to(torch.float64), tmp_path / "double.pth")
    target = build_meta(load_spec(tiny_spec()))
    load_weights(target, saved.path)
    assert target.get_parameter("backbone.0.weight").dtype == torch.float32
    torch.testing.assert_close(outputs(target), outputs(tiny_model()))
