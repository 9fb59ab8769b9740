"""The spec's ``preprocess`` section: validation with located errors, a fingerprint apart from
the architecture's, checkpoints that carry it, and ``model.preprocess`` against the reference
libraries' processors."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from torchvision.models import get_model_weights
from torchvision.models.video import R2Plus1D_18_Weights
from transformers import VideoMAEImageProcessor

from tests.conftest import tiny_spec
from video_interpreter import (
    SpecError,
    build_model,
    load_model,
    load_spec,
    save_model,
)
from video_interpreter.model import Preprocess

# transformers' VideoMAE processor as the Kinetics checkpoints configure it (ImageNet mean and
# std; the class defaults are 0.5): shorter side 224, centre crop 224, bilinear, antialiased.
VIDEOMAE = {
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "value_range": [0, 255],
    "resize": 224,
    "crop": [224, 224],
    "antialias": True,
    "uint8_resize": "native",
    "crop_offset": "floor",
}


def _with_preprocess(section: dict[str, Any], height: int = 16, width: int = 16) -> dict[str, Any]:
    spec = tiny_spec()
    spec["input"].update(height=height, width=width)
    spec["preprocess"] = copy.deepcopy(section)
    return spec


def _clip(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("size", [(120, 160), (97, 223), (128, 171)])
def test_r2plus1d_preprocess_equals_torchvision_weights_transforms(size: tuple[int, int]) -> None:
    model = build_model("r2plus1d_18", device="meta")
    clip = _clip((2, 3, 4, *size))  # (B, C, T, H, W)
    reference = R2Plus1D_18_Weights.DEFAULT.transforms()(clip.transpose(1, 2).contiguous())
    torch.testing.assert_close(model.preprocess(clip), reference, atol=1e-5, rtol=0)
    floats = clip.float() / 255  # torchvision reads a float clip as 0-1
    reference = R2Plus1D_18_Weights.DEFAULT.transforms()(floats.transpose(1, 2).contiguous())
    torch.testing.assert_close(model.preprocess(floats), reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(120, 161), (97, 223), (240, 320)])
def test_videomae_section_equals_transformers_processor(size: tuple[int, int]) -> None:
    model = build_model(_with_preprocess(VIDEOMAE, 224, 224), device="meta")
    processor = VideoMAEImageProcessor(image_mean=VIDEOMAE["mean"], image_std=VIDEOMAE["std"])
    clip = _clip((2, 3, 3, *size), seed=1)
    videos: Any = [list(video.transpose(0, 1)) for video in clip]  # per video, (C, H, W) frames
    expected = processor(videos, return_tensors="pt")["pixel_values"]  # (B, T, C, H, W)
    got = model.preprocess(clip).transpose(1, 2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    floats: Any = [list(video.float().transpose(0, 1)) for video in clip]  # 0-255 floats
    expected = processor(floats, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(
        model.preprocess(clip.float()).transpose(1, 2), expected, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "name", ["r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s", "swin3d_t"]
)
def test_torchvision_zoo_specs_declare_their_weights_transforms(name: str) -> None:
    transforms = get_model_weights(name).DEFAULT.transforms()
    section = load_spec(name, check_shapes=False).preprocess
    assert section is not None
    assert section["mean"] == pytest.approx(transforms.mean)
    assert section["std"] == pytest.approx(transforms.std)
    resize = section["resize"]
    assert (resize if isinstance(resize, list) else [resize]) == transforms.resize_size
    assert section["crop"] == transforms.crop_size
    assert section["antialias"] is False  # the weights' transforms hard-code it
    assert section["uint8_resize"] == "round"  # torchvision.transforms.functional's path


def test_preprocess_exports_with_torch_export() -> None:
    model = build_model("r2plus1d_18", device="meta")
    clip = _clip((1, 3, 2, 120, 160))
    exported = torch.export.export(model.preprocess, (clip,))
    torch.testing.assert_close(exported.module()(clip), model.preprocess(clip), atol=0, rtol=0)


def test_bgr_and_float_value_range() -> None:
    section = {"mean": [0.5, 0.25, 0.0], "std": [0.5, 0.5, 1.0], "value_range": [0, 255]}
    rgb = Preprocess({**section, "channel_order": "RGB"})
    bgr = Preprocess({**section, "channel_order": "BGR"})
    clip = _clip((1, 3, 2, 4, 4)).float()
    torch.testing.assert_close(bgr(clip), rgb(clip.flip(1)))
    expected = (clip[:, 0] / 255 - 0.5) / 0.5
    torch.testing.assert_close(rgb(clip)[:, 0], expected)


def test_preprocess_refuses_a_clip_it_cannot_take() -> None:
    model = build_model("r2plus1d_18", device="meta")
    with pytest.raises(ValueError, match=r"C=3, got shape \(1, 4, 2, 120, 160\)"):
        model.preprocess(_clip((1, 4, 2, 120, 160)))
    with pytest.raises(ValueError, match=r"or floating-point clip, got torch\.int32"):
        model.preprocess(_clip((1, 3, 2, 120, 160)).int())
    crop_only = Preprocess({"mean": [0.0] * 3, "std": [1.0] * 3, "crop": [8, 8]})
    with pytest.raises(ValueError, match="cannot crop 8x8 from 4x6 frames"):
        crop_only(_clip((1, 3, 1, 4, 6)))


def test_model_without_preprocess_says_so() -> None:
    model = build_model(tiny_spec(), device="meta")
    with pytest.raises(SpecError, match="tiny/v1 declares no preprocess section"):
        _ = model.preprocess


def test_preprocess_is_fingerprinted_apart_from_the_architecture() -> None:
    plain = load_spec(tiny_spec())
    fed = load_spec(_with_preprocess({"mean": [0.5] * 3, "std": [0.25] * 3}))
    other = load_spec(_with_preprocess({"mean": [0.4] * 3, "std": [0.25] * 3}))
    assert plain.fingerprint == fed.fingerprint == other.fingerprint
    assert plain.preprocess_fingerprint is None
    assert fed.preprocess_fingerprint is not None
    assert fed.preprocess_fingerprint != other.preprocess_fingerprint
    assert fed.preprocess is not None
    assert fed.preprocess["crop_offset"] == "round"  # the defaults are written out


def test_checkpoints_carry_the_preprocess_section(tmp_path: Path) -> None:
    model = build_model(_with_preprocess({"mean": [0.5] * 3, "std": [0.25] * 3, "crop": 16}))
    for suffix in (".pth", ".safetensors"):
        save_model(model, tmp_path / f"m{suffix}")
        loaded = load_model(tmp_path / f"m{suffix}")
        assert loaded.spec.preprocess == model.spec.preprocess
        assert loaded.spec.preprocess_fingerprint == model.spec.preprocess_fingerprint


def _spec_file(tmp_path: Path, preprocess: str) -> Path:
    path = tmp_path / "fed.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            spec_version: 1
            name: fed
            version: v1
            input: {channels: 3, frames: 4, height: 16, width: 16}
            """
        )
        + textwrap.dedent(preprocess)
        + textwrap.dedent(
            """\
            backbone:
              - {type: Conv3d, out_channels: 4, kernel_size: 3, padding: 1}
            neck: {type: GlobalAvgPool3d}
            heads:
              action: {type: ClassificationHead, num_classes: 2}
            """
        )
    )
    return path


def test_missing_and_unknown_preprocess_keys_are_located(tmp_path: Path) -> None:
    path = _spec_file(
        tmp_path,
        """\
        preprocess:
          mean: [0.5, 0.5, 0.5]
          meen: [0.5, 0.5, 0.5]
        """,
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    problems = {p.message.split(";")[0]: p for p in caught.value.problems}
    missing = problems["missing required key 'std'"]
    assert (missing.file, missing.line, missing.column) == (str(path), 6, 3)
    unknown = problems["unknown key 'meen'"]
    assert (unknown.file, unknown.line, unknown.column) == (str(path), 7, 3)
    assert "valid keys: antialias, channel_order, crop" in unknown.message
    assert unknown.hint == "did you mean 'mean'?"


def test_preprocess_values_that_cannot_work_are_located(tmp_path: Path) -> None:
    path = _spec_file(
        tmp_path,
        """\
        preprocess:
          mean: [0.5, 0.5]
          std: [0.5, 0.5, 0.5]
          temporal_stride: 2
          fps: 15
          value_range: [1, 0]
        """,
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    found = {(p.line, p.message.split(";")[0]) for p in caught.value.problems}
    assert found == {
        (6, "mean has 2 values, the input has 3 channels"),
        (9, "give temporal_stride or fps, not both: a clip is sampled by one of them"),
        (10, "value_range [1, 0] is empty"),
    }


def test_a_section_given_on_its_own_is_validated() -> None:
    with pytest.raises(SpecError) as caught:
        Preprocess({"mean": [0.5] * 3, "sdt": [0.2] * 3, "crop": 8.5})
    messages = sorted(p.message for p in caught.value.problems)
    assert messages[0].startswith("expected centre crop: an integer (square) or [height, width]")
    assert messages[1] == "missing required key 'std'"
    assert messages[2].startswith("unknown key 'sdt'")
    with pytest.raises(SpecError, match="mean has 3 values and std 2"):
        Preprocess({"mean": [0.5] * 3, "std": [0.2] * 2})
