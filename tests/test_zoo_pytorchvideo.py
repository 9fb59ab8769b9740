"""The X3D, Slow, SlowFast, C2D, I3D, CSN and R(2+1)D specs are pytorchvideo's models: the same
parameters, every key imported by the key map, and the same outputs. Nothing is downloaded: the
reference is pytorchvideo's builder with its own random initialisation, at a reduced clip so the
suite stays fast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pytorchvideo.models import hub
from pytorchvideo.models.csn import create_csn
from pytorchvideo.models.resnet import create_resnet
from pytorchvideo.models.slowfast import create_slowfast
from pytorchvideo.models.x3d import create_x3d
from torch import nn

from video_interpreter import build_model, load_model
from video_interpreter.checkpoint import import_state_dict
from video_interpreter.zoo import convert_state_dict

# pytorchvideo's hub builders differ in clip size and depth factor only.
X3D = {"x3d_xs": 2.2, "x3d_s": 2.2, "x3d_m": 2.2, "x3d_l": 5.0}
FRAMES, CROP = 4, 64  # pytorchvideo's head pools a fixed (frames, crop / 32, crop / 32) window


def _reference(arch: str) -> nn.Module:
    model: nn.Module = create_x3d(
        input_clip_length=FRAMES, input_crop_size=CROP, depth_factor=X3D[arch]
    )
    return model.eval()


@pytest.mark.parametrize("arch", X3D)
def test_x3d_imports_pytorchvideos_weights_and_gives_its_outputs(arch: str) -> None:
    reference = _reference(arch)
    overrides = [f"input.frames={FRAMES}", f"input.height={CROP}", f"input.width={CROP}"]
    ours = build_model(arch, overrides=overrides).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    mapped = convert_state_dict(arch, reference.state_dict(), source="pytorchvideo")
    assert not mapped.dropped
    ours.load_state_dict(mapped.state_dict, strict=True)
    clip = torch.randn(2, 3, FRAMES, CROP, CROP)
    with torch.no_grad():
        torch.testing.assert_close(ours(clip)["action"], reference(clip), rtol=0, atol=1e-6)
        # Without the softmax both end in, the logits agree as closely.
        reference.get_submodule("blocks.5").activation = nn.Identity()
        ours.get_submodule("heads.action").activation = nn.Identity()
        torch.testing.assert_close(ours(clip)["action"], reference(clip), rtol=0, atol=1e-5)


def test_a_pytorchvideo_state_dict_converts_from_the_command_line_api(tmp_path: Path) -> None:
    reference = hub.x3d_xs(pretrained=False).eval()
    source = tmp_path / "x3d_xs_pytorchvideo.pth"
    torch.save(reference.state_dict(), source)
    saved, report = import_state_dict(
        "x3d_xs", source, tmp_path / "x3d_xs.pth", library="pytorchvideo"
    )
    assert report.remapped
    model = load_model(saved.path).eval()
    clip = torch.randn(1, 3, 4, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(model(clip)["action"], reference(clip), rtol=0, atol=1e-6)


def _slow_and_slowfast(arch: str) -> nn.Module:
    """pytorchvideo's builders of the hub's ResNets and SlowFast, pooling (for the head) a
    (frames, crop / 32, crop / 32) window of each pathway at the reduced clip."""
    grid = (CROP // 32, CROP // 32)
    if arch in ("c2d_r50", "i3d_r50"):  # a temporal max-pool halves the frames after res2
        builder = getattr(hub, arch)
        model: nn.Module = builder(pretrained=False, head_pool_kernel_size=(FRAMES // 2, *grid))
    elif arch == "slowfast_r101":  # 23 blocks in res4 and a 5-frame fusion kernel
        model = create_slowfast(
            model_depth=101,
            slowfast_fusion_conv_kernel_size=(5, 1, 1),
            head_pool_kernel_sizes=((FRAMES // 4, *grid), (FRAMES, *grid)),
        )
    elif arch == "slow_r50":
        model = create_resnet(
            stem_conv_kernel_size=(1, 7, 7), head_pool_kernel_size=(FRAMES, *grid), model_depth=50
        )
    else:
        model = create_slowfast(
            model_depth=50,
            slowfast_fusion_conv_kernel_size=(7, 1, 1),
            head_pool_kernel_sizes=((FRAMES // 4, *grid), (FRAMES, *grid)),
        )
    return model.eval()


@pytest.mark.parametrize(
    "arch", ["c2d_r50", "i3d_r50", "slow_r50", "slowfast_r50", "slowfast_r101"]
)
def test_resnets_and_slowfast_import_pytorchvideos_weights_and_give_its_outputs(arch: str) -> None:
    reference = _slow_and_slowfast(arch)
    overrides = [f"input.frames={FRAMES}", f"input.height={CROP}", f"input.width={CROP}"]
    ours = build_model(arch, overrides=overrides).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    mapped = convert_state_dict(arch, reference.state_dict(), source="pytorchvideo")
    ours.load_state_dict(mapped.state_dict, strict=True)
    clip = torch.randn(2, 3, FRAMES, CROP, CROP)
    # pytorchvideo's SlowFast takes both pathways' clips; ours derives the slow one (every 4th).
    given = [clip[:, :, ::4], clip] if arch.startswith("slowfast") else clip
    with torch.no_grad():
        torch.testing.assert_close(ours(clip)["action"], reference(given), rtol=0, atol=1e-5)


# At the reduced clip both end in a (1, 2, 2) map: CSN strides time from res3 on (4 -> 1 frame),
# R(2+1)D from res4 on.
HEAD_POOL = {"csn_r101": (1, 2, 2), "r2plus1d_r50": (1, 2, 2)}


@pytest.mark.parametrize("arch", HEAD_POOL)
def test_csn_and_r2plus1d_import_pytorchvideos_weights_and_give_its_outputs(arch: str) -> None:
    reference: nn.Module = (
        # hub.csn_r101 fixes its head's pool, so its builder is called as the hub calls it
        create_csn(model_depth=101, stem_pool=nn.MaxPool3d, head_pool_kernel_size=HEAD_POOL[arch])
        if arch == "csn_r101"
        else hub.r2plus1d_r50(pretrained=False, head_pool_kernel_size=HEAD_POOL[arch])
    ).eval()
    overrides = [f"input.frames={FRAMES}", f"input.height={CROP}", f"input.width={CROP}"]
    ours = build_model(arch, overrides=overrides).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    mapped = convert_state_dict(arch, reference.state_dict(), source="pytorchvideo")
    assert not mapped.dropped
    ours.load_state_dict(mapped.state_dict, strict=True)
    if arch == "r2plus1d_r50":  # compare logits, not the softmax both end in
        reference.get_submodule("blocks.5").activation = nn.Identity()
        ours.get_submodule("heads.action").activation = nn.Identity()
    clip = torch.randn(2, 3, FRAMES, CROP, CROP)
    with torch.no_grad():
        torch.testing.assert_close(ours(clip)["action"], reference(clip), rtol=0, atol=1e-5)


def test_mvit_base_16x4_imports_pytorchvideos_weights_and_gives_its_outputs() -> None:
    # pytorchvideo sizes its position tables for the clip: build it for the reduced one.
    reference: nn.Module = hub.mvit_base_16x4(
        pretrained=False, spatial_size=CROP, temporal_size=FRAMES
    ).eval()
    overrides = [f"input.frames={FRAMES}", f"input.height={CROP}", f"input.width={CROP}"]
    ours = build_model("mvit_base_16x4", overrides=overrides).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    mapped = convert_state_dict("mvit_base_16x4", reference.state_dict(), source="pytorchvideo")
    assert not mapped.dropped
    ours.load_state_dict(mapped.state_dict, strict=True)
    clip = torch.randn(2, 3, FRAMES, CROP, CROP)
    with torch.no_grad():
        torch.testing.assert_close(ours(clip)["action"], reference(clip), rtol=0, atol=1e-5)


def test_mvit_base_16x4_has_pytorchvideos_parameters_at_full_size() -> None:
    reference = hub.mvit_base_16x4(pretrained=False)  # its builder cannot run on meta
    ours = build_model("mvit_base_16x4", device="meta")
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        target: reference.state_dict()[source].shape
        for source, target in convert_state_dict(
            "mvit_base_16x4", reference.state_dict(), source="pytorchvideo"
        ).renamed.items()
    }
