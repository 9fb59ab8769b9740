"""Every registered layer, tested for free: it builds on the meta device from a spec node,
initialises every tensor it owns, and runs on the CPU with the shape the builder predicted.

A new layer needs one line in EXAMPLES: its parameters and one sample's input shape.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from video_interpreter.layers import (
    LAYERS,
    BuildContext,
    SampleType,
    build_node,
    clip,
    grid,
    node_type,
    tokens,
    vector,
)
from video_interpreter.model import initialize

CLIP = clip(3, 4, 16, 16)
TOKENS = grid(2, 4, 4, 16)
ON_GRID = tokens(2 * 3 * 3, 12, token_grid=(2, 3, 3))
WITH_CLASS = tokens(1 + 2 * 3 * 3, 12, prefix=1, token_grid=(2, 3, 3))
CONV = {"out_channels": 8, "kernel_size": 3, "padding": 1}

EXAMPLES: dict[str, tuple[dict[str, Any], SampleType | tuple[SampleType, ...]]] = {
    "Add": ({}, (CLIP, CLIP)),
    "Multiply": ({}, (CLIP, clip(3, 1, 1, 1))),
    "Concatenate": ({"dim": 0}, (CLIP, clip(5, 4, 16, 16))),
    "Subsample": ({"stride": [2, 1, 2]}, CLIP),
    "SqueezeExcitation": ({"ratio": 0.25}, CLIP),
    "Swish": ({}, TOKENS),
    "BottleneckStage": (
        {"depth": 2, "out_channels": 8, "inner_channels": 4, "stride": 2, "temporal_kernel": 3},
        CLIP,
    ),
    "X3DStage": ({"depth": 2, "out_channels": 8, "inner_channels": 12, "stride": 2}, CLIP),
    "Bottleneck": (
        {"out_channels": 8, "inner_channels": 4, "stride": [2, 2, 2], "kernel_b": 3},
        CLIP,
    ),
    "AdaptiveAvgPool3d": ({"output_size": 1}, CLIP),
    "AdaptiveMaxPool3d": ({"output_size": [1, 2, 2]}, CLIP),
    "AvgPool3d": ({"kernel_size": 2}, CLIP),
    "BasicBlock3d": ({"out_channels": 8, "conv": "Conv2Plus1d", "stride": 2}, CLIP),
    "BatchNorm1d": ({}, vector(6)),
    "BatchNorm3d": ({}, CLIP),
    "Bottleneck3d": ({"out_channels": 16, "stride": 2}, CLIP),
    "ClassToken": ({}, tokens(1 + 8, 16, prefix=1)),
    "ClassificationHead": ({"num_classes": 5, "dropout": 0.1}, vector(12)),
    "Concat": ({"branches": [[{"type": "Conv3d", **CONV}], [{"type": "Identity"}]]}, CLIP),
    "Conv2Plus1d": ({"out_channels": 8, "stride": [1, 2, 2]}, CLIP),
    "Conv3d": (CONV, CLIP),
    "Conv3dNoTemporal": ({"out_channels": 8, "stride": 2}, CLIP),
    "ConvClassificationHead": ({"num_classes": 5}, CLIP),
    "ConvTranspose3d": ({"out_channels": 4, "kernel_size": 2, "stride": 2}, CLIP),
    "Dropout": ({"p": 0.5}, CLIP),
    "Dropout3d": ({"p": 0.5}, CLIP),
    "Flatten": ({}, CLIP),
    "GELU": ({}, CLIP),
    "GlobalAvgPool3d": ({}, CLIP),
    "GroupNorm": ({"num_groups": 2}, clip(4, 2, 8, 8)),
    "Hardswish": ({}, CLIP),
    "Identity": ({}, CLIP),
    "LayerNorm": ({}, TOKENS),
    "LeakyReLU": ({"negative_slope": 0.2}, CLIP),
    "Linear": ({"out_features": 7}, TOKENS),
    "MViTBlock": (
        {"dim": 32, "heads": 2, "grid": [2, 4, 4], "stride_q": [1, 2, 2]},
        tokens(1 + 2 * 4 * 4, 16, prefix=1, token_grid=(2, 4, 4)),
    ),
    "MViTv1Encoder": (
        {
            "stages": [
                {"depth": 1, "dim": 3, "heads": 1},
                {"depth": 2, "dim": 8, "heads": 2, "stride_q": [1, 2, 2]},
            ],
            "kernel": 3,
            "stride_kv": [1, 4, 4],
        },
        CLIP,
    ),
    "MViTEncoder": (
        {
            "stages": [
                {"depth": 1, "dim": 16, "heads": 1},
                {"depth": 1, "dim": 32, "heads": 2, "stride_q": [1, 2, 2]},
            ]
        },
        clip(16, 2, 4, 4),
    ),
    "MaxPool3d": ({"kernel_size": 3, "stride": 2, "padding": 1}, CLIP),
    "Mish": ({}, CLIP),
    "ReLU": ({}, CLIP),
    "ReLU6": ({}, CLIP),
    "Repeat": ({"times": 2, "layer": {"type": "Conv3d", **CONV}}, CLIP),
    "ResStage": ({"out_channels": 8, "depth": 2, "conv": "Conv3dNoTemporal", "stride": 2}, CLIP),
    "Residual": (
        {
            "body": [{"type": "Conv3d", "out_channels": 3, "kernel_size": 1}],
            "activation": {"type": "ReLU"},
        },
        CLIP,
    ),
    "SepConv3d": ({"out_channels": 8, "kernel_size": 3}, CLIP),
    "Sequential": ({"layers": [{"type": "Conv3d", **CONV}, {"type": "ReLU"}]}, CLIP),
    "SiLU": ({}, CLIP),
    "Sigmoid": ({}, CLIP),
    "Softmax": ({"dim": 1}, CLIP),
    "SwinBlock3d": ({"heads": 2, "window_size": [2, 2, 2], "shift_size": [1, 1, 1]}, TOKENS),
    "SwinEncoder3d": ({"depths": [2, 1], "heads": [2, 4], "window_size": [2, 2, 2]}, TOKENS),
    "SwinPatchEmbed3d": ({"dim": 16, "patch_size": [2, 4, 4]}, CLIP),
    "SwinPatchMerging3d": ({}, TOKENS),
    "SwinStage3d": ({"depth": 2, "heads": 2, "window_size": [2, 3, 3]}, TOKENS),
    "Tanh": ({}, CLIP),
    "TokenPool": ({}, TOKENS),
    "TransformerBlock": ({"heads": 4, "attention": "divided"}, TOKENS),
    "TubeletEmbedding": ({"dim": 16, "tubelet": [2, 4, 4]}, CLIP),
    "Unit3d": ({"out_channels": 8, "kernel_size": 3}, CLIP),
    "WindowAttention3d": ({"heads": 2, "window_size": [2, 2, 2], "shift_size": [1, 1, 1]}, TOKENS),
    "AddClassToken": ({}, ON_GRID),
    "AttentionPool": ({"heads": 2, "mlp_dim": 24}, ON_GRID),
    "LearnedPositions": ({}, WITH_CLASS),
    "QuickGELU": ({}, CLIP),
    "SinusoidalPositions": ({}, ON_GRID),
    "SpaceTimePositions": ({}, WITH_CLASS),
    "ViTBlock": ({"heads": 4, "attention": "divided", "fused_qkv": True}, WITH_CLASS),
}


@pytest.mark.parametrize("name", LAYERS.names())
def test_every_registered_layer_builds_initialises_and_runs(name: str) -> None:
    assert name in EXAMPLES, f"add an example of {name} to EXAMPLES in {__name__}"
    params, given = EXAMPLES[name]
    in_types = given if isinstance(given, tuple) else (given,)
    node = {"type": name, **params}
    if len(in_types) == 1:
        module, out_type = build_node(node, in_types[0], ("example",))
    else:  # a merge: its type from its declaration, its module as the builder makes it
        out_type = node_type(node, in_types)
        with torch.device("meta"):
            module = LAYERS.get(name).create(BuildContext(in_types[0], (), LAYERS), params)
    tensors = [*module.parameters(), *module.buffers()]
    assert all(t.is_meta for t in tensors)

    module.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.fill_(math.nan)
        initialize(module)
    for key, tensor in module.state_dict().items():
        if tensor.is_floating_point():
            assert not tensor.isnan().any(), f"{name}: {key} was not initialised"

    torch.manual_seed(0)
    with torch.no_grad():
        out = module.eval()(*(torch.randn(2, *t.sizes) for t in in_types))
    assert tuple(out.shape[1:]) == out_type.sizes
    assert torch.isfinite(out).all()
