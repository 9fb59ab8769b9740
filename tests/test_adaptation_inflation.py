"""2D -> 3D inflation from torchvision's image ResNets: a clip of one repeated frame through the
inflated network gives the image network's logits on that frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from video_interpreter.checkpoint import Adapt, import_state_dict, load_model, load_weights
from video_interpreter.cli import main
from video_interpreter.errors import AdaptationError
from video_interpreter.model import build_meta
from video_interpreter.spec import load_spec
from video_interpreter.zoo import convert_state_dict

ROOT = Path(__file__).resolve().parents[1]
I3D_R18 = ROOT / "examples" / "specs" / "i3d_r18.yaml"


def _image_net(name: str, seed: int) -> nn.Module:
    """A torchvision image ResNet with random weights and batch-norm statistics that are not
    the identity, in eval mode."""
    torch.manual_seed(seed)
    net: nn.Module = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None
                assert module.running_var is not None
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 0.9)  # activations of an image scale
                module.bias.uniform_(-0.1, 0.1)
        fc = net.fc
        assert isinstance(fc, nn.Linear)
        fc.weight.mul_(25.0)  # logits of a trained network's order (about 10), not 0.5
    return net.eval()


def _thousand_classes(spec: str | Path) -> dict[str, Any]:
    """The spec with a 1000-class head, so the image network's classifier loads as it is."""
    document = load_spec(spec).to_dict()
    head = document["heads"]["action"]
    if head["type"] == "Sequential":
        head["layers"][-1]["out_features"] = 1000
    else:
        head["num_classes"] = 1000
    return document


def _inflated(
    architecture: str, image: nn.Module, inflation: str, spec: str | Path | None = None
) -> nn.Module:
    mapped = convert_state_dict(architecture, image.state_dict(), "torchvision_image")
    model = build_meta(load_spec(_thousand_classes(spec or f"configs/{architecture}.yaml")))
    report = load_weights(model, mapped.state_dict, adapt=Adapt(inflation=inflation))  # type: ignore[arg-type]
    kernels = [a for a in report.adapted if a.key.endswith("weight")]
    assert kernels
    assert all(f"inflated 2D -> 3D, {inflation}" in a.rule for a in kernels)
    return model.eval()


def _boring(frame: torch.Tensor, frames: int) -> torch.Tensor:  # (1, 3, H, W) -> (1, 3, T, H, W)
    return frame.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["slow_r50", "i3d_r50", "c2d_r50"])
def test_a_resnet50_inflated_at_the_centre_gives_its_logits_on_a_boring_video(
    architecture: str,
) -> None:
    image = _image_net("resnet50", seed=0)
    model = _inflated(architecture, image, "centre")
    frame = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = image(frame)
        got = model(_boring(frame, 4))["action"]
    assert expected.abs().max() > 5.0
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_a_resnet18_inflated_into_i3d_r18_gives_its_logits_on_a_boring_video() -> None:
    image = _image_net("resnet18", seed=1)
    frame = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = image(frame)
        for inflation in ("centre", "average"):
            model = _inflated("i3d_r18", image, inflation, I3D_R18)
            got = model(_boring(frame, 4))["action"]
            if inflation == "centre":
                torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
            else:  # zero temporal padding enters the average at the clip's borders
                assert (got - expected).abs().max() > 1e-3


@pytest.mark.slow
def test_average_inflation_is_exact_where_no_kernel_spans_frames() -> None:
    image = _image_net("resnet50", seed=2)
    model = _inflated("c2d_r50", image, "average")  # every C2D kernel is one frame deep
    frame = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model(_boring(frame, 4))["action"], image(frame), atol=1e-4, rtol=0
        )


@pytest.mark.parametrize("architecture", ["r3d_18", "mc3_18"])
def test_r3d_and_mc3_report_the_image_stems_max_pool_as_without_counterpart(
    tmp_path: Path, architecture: str
) -> None:
    image = _image_net("resnet18", seed=3)
    torch.save(image.state_dict(), tmp_path / "resnet18.pth")
    saved, report = import_state_dict(
        architecture,
        tmp_path / "resnet18.pth",
        tmp_path / f"{architecture}.safetensors",
        library="torchvision_image",
        spec=_thousand_classes(f"configs/{architecture}.yaml"),
        adapt=Adapt(inflation="average"),
    )
    assert saved.path.is_file()
    assert any(f"'maxpool' has no counterpart in {architecture}" in n for n in report.notes)
    assert "torchvision_image module 'maxpool' has no counterpart" in str(report)
    stem = next(a for a in report.adapted if a.key == "backbone.stem.0.weight")
    assert (stem.checkpoint, stem.model) == ((64, 3, 7, 7), (64, 3, 3, 7, 7))
    assert stem.rule == "inflated 2D -> 3D, average over 3 frames"


def test_a_2d_kernel_into_a_2plus1d_convolution_is_refused_with_the_reason() -> None:
    image = _image_net("resnet18", seed=4)
    mapped = convert_state_dict("v1", image.state_dict(), "torchvision_image")
    model = build_meta(load_spec(_thousand_classes("configs/v1.yaml")))
    with pytest.raises(
        AdaptationError,
        match=r"backbone\.stem\.0\.0\.weight .*cannot become a "
        r"\(2\+1\)D convolution.*45 channels",
    ):
        load_weights(model, mapped.state_dict, adapt=True)


def test_the_convert_command_inflates_an_image_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _image_net("resnet18", seed=5)
    torch.save(image.state_dict(), tmp_path / "resnet18.pth")
    out = tmp_path / "i3d_r18.safetensors"
    command = ["convert", "--from", "torchvision_image", "i3d_r18", str(tmp_path / "resnet18.pth")]
    command += [str(out), "--spec", str(I3D_R18), "--adapt", "--inflate", "average"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert (
        "backbone.stem.0.weight (64, 3, 7, 7) -> (64, 3, 3, 7, 7): inflated 2D -> 3D, " in printed
    )
    assert "average over 3 frames" in printed
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        got = load_model(out).eval()(_boring(frame, 4))["action"]
    assert got.shape == (1, 1000)
