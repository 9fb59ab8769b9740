"""2D -> 3D inflation, measured: an image ResNet's logits on one frame beside the inflated 3D
network's on a clip of that frame repeated, for centre and average inflation.

For each target spec, a torchvision ``resnet50`` (or ``resnet18``) with random weights and
batch-norm statistics that are not the identity (logits of about 10, as a trained network's) is
mapped by the zoo's ``torchvision_image`` key map and loaded with ``adapt=Adapt(inflation=...)``
into the spec with a 1000-class head. Prints the largest absolute logit difference on a clip of
``--frames`` copies of one ``--size`` frame (target: 1e-4 for centre inflation), the time the
adapting load took on the meta-built model, and what the report notes.

    python benchmarks/adaptation.py [--frames 8] [--size 112]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from video_interpreter.checkpoint import Adapt, load_weights
from video_interpreter.model import build_meta
from video_interpreter.spec import load_spec
from video_interpreter.zoo import convert_state_dict

ROOT = Path(__file__).resolve().parents[1]
TARGETS = (
    ("slow_r50", "resnet50", "configs/slow_r50.yaml"),
    ("i3d_r50", "resnet50", "configs/i3d_r50.yaml"),
    ("c2d_r50", "resnet50", "configs/c2d_r50.yaml"),
    ("i3d_r18", "resnet18", str(ROOT / "examples" / "specs" / "i3d_r18.yaml")),
    ("r3d_18", "resnet18", "configs/r3d_18.yaml"),
)
TARGET = 1e-4


def image_net(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net: nn.Module = getattr(torchvision.models, name)(weights=None)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None
                assert module.running_var is not None
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 0.9)
                module.bias.uniform_(-0.1, 0.1)
        fc = net.fc
        assert isinstance(fc, nn.Linear)
        fc.weight.mul_(25.0)
    return net.eval()


def thousand_classes(spec: str) -> dict[str, Any]:
    document = load_spec(spec).to_dict()
    head = document["heads"]["action"]
    if head["type"] == "Sequential":
        head["layers"][-1]["out_features"] = 1000
    else:
        head["num_classes"] = 1000
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    args = parser.parse_args()
    torch.manual_seed(0)
    frame = torch.randn(1, 3, args.size, args.size)
    clip = frame.unsqueeze(2).expand(-1, -1, args.frames, -1, -1).contiguous()
    print(f"clip of {args.frames} copies of one {args.size}x{args.size} frame, float32")
    print("| target | from | inflation | max abs logit diff | max abs logit | load ms | notes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    nets = {name: image_net(name) for name in ("resnet18", "resnet50")}
    with torch.no_grad():
        expected = {name: net(frame) for name, net in nets.items()}
    for architecture, source, spec in TARGETS:
        mapped = convert_state_dict(architecture, nets[source].state_dict(), "torchvision_image")
        document = thousand_classes(spec)
        for inflation in ("centre", "average"):
            model = build_meta(load_spec(document))
            start = time.perf_counter()
            report = load_weights(model, mapped.state_dict, adapt=Adapt(inflation=inflation))
            millis = (time.perf_counter() - start) * 1000
            with torch.no_grad():
                got = model.eval()(clip)["action"]
            diff = float((got - expected[source]).abs().max())
            scale = float(expected[source].abs().max())
            flag = "" if inflation == "average" or diff <= TARGET else " (misses 1e-4)"
            notes = "; ".join(mapped.notes) or "-"
            print(
                f"| {architecture} | {source} | {inflation} | {diff:.2e}{flag} | {scale:.1f} | "
                f"{millis:.0f} | {notes} |"
            )
            assert len(report.adapted) > 0


if __name__ == "__main__":
    main()
