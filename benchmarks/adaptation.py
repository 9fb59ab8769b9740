"""2D -> 3D inflation, measured: an image ResNet's logits on one frame beside the inflated 3D
network's on a clip of that frame repeated, for centre and average inflation.

For each target spec, a torchvision ``resnet50`` (or ``resnet18``) with random weights and
batch-norm statistics that are not the identity (logits of about 10, as a trained network's) is
mapped by the zoo's ``torchvision_image`` key map and loaded with ``adapt=Adapt(inflation=...)``
into the spec with a 1000-class head. Prints the largest absolute logit difference on a clip of
``--frames`` copies of one ``--size`` frame (target: 1e-4 for centre inflation), the time the
adapting load took on the meta-built model, and what the report notes.

Then the same for an image ViT (transformers' ``ViTForImageClassification``, width 384, 12
blocks, 16x16 patches, random weights, logits scaled to about 10) into TimeSformer (from
transformers' names and from timm's layout) and ViViT specs of that size.

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
from transformers import ViTConfig, ViTForImageClassification

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


def image_vit(size: int) -> ViTForImageClassification:
    """A ViT-S-sized image classifier (random weights, logits of about 10), in eval mode."""
    torch.manual_seed(0)
    sizes: dict[str, Any] = {
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 6,
        "intermediate_size": 1536,
        "image_size": size,
        "patch_size": 16,
        "num_labels": 1000,  # a PretrainedConfig argument the signature does not list
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu_pytorch_tanh",  # ViViT's; the specs are switched to it below
    }
    config = ViTConfig(**sizes)
    vit = ViTForImageClassification(config)
    nn.Module.train(vit, False)
    with torch.no_grad():
        classifier = vit.get_submodule("classifier")
        assert isinstance(classifier, nn.Linear)
        classifier.weight.mul_(8.0)
    return vit


def timm_layout(vit: ViTForImageClassification) -> dict[str, torch.Tensor]:
    """The ViT's weights under timm's VisionTransformer names (qkv fused)."""
    s = {k.removeprefix("vit."): v for k, v in vit.state_dict().items()}
    out = {
        "cls_token": s["embeddings.cls_token"],
        "pos_embed": s["embeddings.position_embeddings"],
        "patch_embed.proj.weight": s["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": s["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": s["layernorm.weight"],
        "norm.bias": s["layernorm.bias"],
        "head.weight": s["classifier.weight"],
        "head.bias": s["classifier.bias"],
    }
    names = {"attn.proj": "attention.o_proj", "norm1": "layernorm_before"}
    names |= {"norm2": "layernorm_after", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    for i in range(vit.config.num_hidden_layers):
        for w in ("weight", "bias"):
            parts = [s[f"layers.{i}.attention.{p}_proj.{w}"] for p in "qkv"]
            out[f"blocks.{i}.attn.qkv.{w}"] = torch.cat(parts)
            for ours, theirs in names.items():
                out[f"blocks.{i}.{ours}.{w}"] = s[f"layers.{i}.{theirs}.{w}"]
    return out


def video_spec(name: str, frames: int, size: int) -> Any:
    blocks = 4
    overrides = [
        f"input.frames={frames}",
        f"input.height={size}",
        f"input.width={size}",
        "backbone.0.dim=384",
        f"backbone.{blocks}.layer.heads=6",
        f"backbone.{blocks}.layer.mlp_dim=1536",
        f"backbone.{blocks}.layer.activation=gelu_tanh",
        "heads.action.num_classes=1000",
    ]
    return load_spec(f"configs/{name}.yaml", overrides=overrides)


def vit_rows(frames: int, size: int) -> None:
    vit = image_vit(size)
    torch.manual_seed(1)
    frame = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = vit(pixel_values=frame).logits
    grid = (size // 16, size // 16)
    cases = [
        ("timesformer_base", "transformers_image", vit.state_dict(), frames, "centre"),
        ("timesformer_base", "timm_image", timm_layout(vit), frames, "centre"),
        ("vivit_b", "transformers_image", vit.state_dict(), 2, "centre"),
        ("vivit_b", "transformers_image", vit.state_dict(), 2, "average"),
        ("vivit_b", "transformers_image", vit.state_dict(), frames, "centre"),
    ]
    print(f"\nimage ViT (width 384, 12 blocks, {size}x{size}, 16x16 patches) into video specs")
    print("| target | from | frames | inflation | max abs logit diff | max abs logit | load ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for architecture, library, state, clip_frames, inflation in cases:
        mapped = convert_state_dict(architecture, state, library)
        model = build_meta(video_spec(architecture, clip_frames, size))
        table = "backbone.pos.space" if architecture == "timesformer_base" else "backbone.pos.table"
        options = Adapt(inflation=inflation, source_grids={table: grid})  # type: ignore[arg-type]
        start = time.perf_counter()
        load_weights(model, mapped.state_dict, adapt=options)
        millis = (time.perf_counter() - start) * 1000
        clip = frame.unsqueeze(2).expand(-1, -1, clip_frames, -1, -1).contiguous()
        with torch.no_grad():
            got = model.eval()(clip)["action"]
        diff = float((got - expected).abs().max())
        scale = float(expected.abs().max())
        print(
            f"| {architecture} | {library} | {clip_frames} | {inflation} | {diff:.2e} | "
            f"{scale:.1f} | {millis:.0f} |"
        )


if __name__ == "__main__":
    main()
    vit_rows(8, 112)
