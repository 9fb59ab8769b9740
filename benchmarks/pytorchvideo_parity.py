"""pytorchvideo's models beside their specs: parameters, GMACs and the output difference.

    python benchmarks/pytorchvideo_parity.py                 # every model, at its own clip
    python benchmarks/pytorchvideo_parity.py --archs csn_r101

For each model, pytorchvideo 0.1.5's hub builder (``pretrained=False``, its own random
initialisation) is the reference: its state dict is imported into ``build_model(arch)`` through
the key map, both run one random clip of the spec's input size in eval mode, and the largest
absolute difference of the logits is printed (the softmax X3D's and R(2+1)D's heads end in is
removed from both, so the figure is not shrunk by it). Parameters are counted on both models,
GMACs are the summary's (meta device). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from pytorchvideo.models import hub
from torch import nn

from video_interpreter.model import build_model
from video_interpreter.summary import summarize
from video_interpreter.zoo import convert_state_dict

ARCHS = (
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "slow_r50",
    "c2d_r50",
    "i3d_r50",
    "slowfast_r50",
    "slowfast_r101",
    "csn_r101",
    "r2plus1d_r50",
    "mvit_base_16x4",
)
SOFTMAX_HEADS = {"x3d_xs": "blocks.5", "x3d_s": "blocks.5", "x3d_m": "blocks.5"}
SOFTMAX_HEADS["r2plus1d_r50"] = "blocks.5"
TOLERANCE = 1e-5


def row(arch: str) -> list[str]:
    torch.manual_seed(0)
    reference: nn.Module = getattr(hub, arch)(pretrained=False).eval()
    ours = build_model(arch).eval()
    mapped = convert_state_dict(arch, reference.state_dict(), source="pytorchvideo")
    ours.load_state_dict(mapped.state_dict, strict=True)
    if arch in SOFTMAX_HEADS:
        reference.get_submodule(SOFTMAX_HEADS[arch]).activation = nn.Identity()
        ours.get_submodule("heads.action").activation = nn.Identity()
    clip = torch.randn(1, *ours.spec.input)
    given = [clip[:, :, ::4], clip] if arch.startswith("slowfast") else clip
    with torch.inference_mode():
        diff = (ours(clip)["action"] - reference(given)).abs().max().item()
    theirs = sum(p.numel() for p in reference.parameters())
    mine = sum(p.numel() for p in ours.parameters())
    gmacs = summarize(arch, depth=0).macs / 1e9
    clip_size = "x".join(str(n) for n in ours.spec.input[1:])
    verdict = "ok" if mine == theirs and diff <= TOLERANCE else "MISMATCH"
    return [arch, clip_size, f"{mine:,}", f"{theirs:,}", f"{gmacs:.3f}", f"{diff:.1e}", verdict]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), metavar="ARCH")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    header = [
        "arch",
        "clip (TxHxW)",
        "parameters (spec)",
        "parameters (pytorchvideo)",
        "GMACs",
        "max abs diff (logits)",
        f"params equal, diff <= {TOLERANCE:g}",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for arch in args.archs:
        print("| " + " | ".join(row(arch)) + " |", flush=True)


if __name__ == "__main__":
    main()
