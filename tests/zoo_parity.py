"""Shared checks that a zoo spec is the same architecture as torchvision's model of that name."""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from video_interpreter.model import build_model
from video_interpreter.zoo import convert_state_dict

# torchvision's published input sizes (C, T, H, W) for its video models' "_ops" figures.
INPUT_SIZES: dict[str, tuple[int, int, int, int]] = {
    "r3d_18": (3, 16, 112, 112),
    "mc3_18": (3, 16, 112, 112),
    "r2plus1d_18": (3, 16, 112, 112),
    "s3d": (3, 16, 224, 224),
    "mvit_v2_s": (3, 16, 224, 224),
    "swin3d_t": (3, 16, 224, 224),
}


def torchvision_model(arch: str, **kwargs: Any) -> nn.Module:
    model: nn.Module = torchvision.models.get_model(arch, weights=None, **kwargs)
    return model


def published_gmacs(arch: str) -> float:
    """torchvision's "GFLOPS" figure for the model's default weights (multiply-accumulates)."""
    weights = torchvision.models.get_model_weights(arch)
    first = next(iter(weights))
    return float(first.meta["_ops"])


def count_gmacs(model: nn.Module, input_size: tuple[int, ...]) -> float:
    """Multiply-accumulates for one clip, counted on the meta device (attention matmuls too)."""
    meta = model.to("meta") if next(model.parameters()).device.type != "meta" else model
    clip = torch.empty((1, *input_size), device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta.eval()(clip)
    return counter.get_total_flops() / 2 / 1e9


def imported_model(arch: str) -> tuple[nn.Module, nn.Module]:
    """(torchvision model, our model with its weights imported through the key map), in eval."""
    reference = torchvision_model(arch).eval()
    ours = build_model(arch).eval()
    mapped = convert_state_dict(arch, reference.state_dict())
    ours.load_state_dict(mapped.state_dict, strict=True)
    return reference, ours
