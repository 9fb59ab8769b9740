"""torch.nn building blocks, usable by their torch names; input sizes are inferred."""

from __future__ import annotations

from typing import Any

from torch import nn

from ._params import BOOL, NUMBER, POSITIVE_INT, POSITIVE_NUMBER, PROBABILITY, enum, triple
from ._registry import channels, features, register_layer

__all__: list[str] = []

_PADDING: dict[str, Any] = {
    "anyOf": [triple(0), enum("same", "valid")],
    "description": "an integer >= 0, a list [T, H, W], or 'same' / 'valid'",
}
_CONV: dict[str, Any] = {
    "out_channels": POSITIVE_INT,
    "kernel_size": triple(1),
    "stride": triple(1),
    "padding": _PADDING,
    "dilation": triple(1),
    "groups": POSITIVE_INT,
    "bias": BOOL,
    "padding_mode": enum("zeros", "reflect", "replicate", "circular"),
}
_NORM = {"eps": POSITIVE_NUMBER}
_POOL = {
    "kernel_size": triple(1),
    "stride": {"anyOf": [triple(1), {"type": "null"}], "description": "default: kernel_size"},
    "padding": triple(0),
}
_OUTPUT_SIZE: dict[str, Any] = {
    "anyOf": [POSITIVE_INT, {"type": "array", "items": POSITIVE_INT, "minItems": 3, "maxItems": 3}],
    "description": "an integer >= 1, or a list [T, H, W] of such integers",
}

register_layer("Conv3d", params=_CONV, infer={"in_channels": channels})(nn.Conv3d)
register_layer(
    "ConvTranspose3d",
    params={k: v for k, v in _CONV.items() if k != "padding_mode"} | {"padding": triple(0)},
    infer={"in_channels": channels},
)(nn.ConvTranspose3d)
register_layer(
    "BatchNorm3d",
    params={**_NORM, "momentum": PROBABILITY, "affine": BOOL, "track_running_stats": BOOL},
    infer={"num_features": channels},
)(nn.BatchNorm3d)
register_layer(
    "BatchNorm1d",
    params={**_NORM, "momentum": PROBABILITY, "affine": BOOL, "track_running_stats": BOOL},
    infer={"num_features": channels},
)(nn.BatchNorm1d)
register_layer(
    "LayerNorm",
    params={**_NORM, "elementwise_affine": BOOL, "bias": BOOL},
    infer={"normalized_shape": features},
)(nn.LayerNorm)
register_layer(
    "GroupNorm",
    params={"num_groups": POSITIVE_INT, **_NORM, "affine": BOOL},
    infer={"num_channels": channels},
)(nn.GroupNorm)
register_layer(
    "Linear", params={"out_features": POSITIVE_INT, "bias": BOOL}, infer={"in_features": features}
)(nn.Linear)

for _act in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Mish):
    register_layer(_act.__name__, params={"inplace": BOOL})(_act)
for _fn in (nn.Sigmoid, nn.Tanh, nn.Identity):
    register_layer(_fn.__name__, params={})(_fn)
register_layer("GELU", params={"approximate": enum("none", "tanh")})(nn.GELU)
register_layer("LeakyReLU", params={"negative_slope": NUMBER, "inplace": BOOL})(nn.LeakyReLU)
register_layer("Softmax", params={"dim": {"type": ["integer", "null"]}})(nn.Softmax)
register_layer(
    "Flatten", params={"start_dim": {"type": "integer"}, "end_dim": {"type": "integer"}}
)(nn.Flatten)
for _drop in (nn.Dropout, nn.Dropout3d):
    register_layer(_drop.__name__, params={"p": PROBABILITY, "inplace": BOOL})(_drop)

register_layer("MaxPool3d", params={**_POOL, "dilation": triple(1), "ceil_mode": BOOL})(
    nn.MaxPool3d
)
register_layer("AvgPool3d", params={**_POOL, "ceil_mode": BOOL, "count_include_pad": BOOL})(
    nn.AvgPool3d
)
register_layer("AdaptiveAvgPool3d", params={"output_size": _OUTPUT_SIZE})(nn.AdaptiveAvgPool3d)
register_layer("AdaptiveMaxPool3d", params={"output_size": _OUTPUT_SIZE})(nn.AdaptiveMaxPool3d)
